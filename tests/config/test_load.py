"""Valid pipeline files: defaults, resolved paths, interpolation, shorthands, helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config import (
    BearerAuth,
    ConfigError,
    MysqlConfig,
    PipelineConfig,
    PostgresConfig,
    RestConfig,
    SqliteConfig,
    load_pipeline,
)
from connectors.base import Binding
from tests.config.conftest import WriteConfig

MINIMAL = """\
pipeline: quickstart
endpoints:
  crm: {kind: sqlite, path: data/crm.db}
  billing: {kind: sqlite, path: ../shared/billing.db}
entities:
  customers:
    key: id
    endpoints: {crm: customers, billing: clients}
"""


def test_defaults_are_filled_in(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL)
    cfg = load_pipeline(path, env={})
    base = path.parent
    assert cfg.version == 1
    assert cfg.pipeline == "quickstart"
    assert cfg.state.url == f"sqlite:///{base}/.cdcsync/quickstart.db"
    assert cfg.broker.url == "memory://"
    assert (cfg.batch.size, cfg.batch.max_wait_ms, cfg.batch.snapshot_chunk) == (10000, 20, 50000)
    assert cfg.schedule == []
    entity = cfg.entities["customers"]
    assert entity.key == ["id"]
    assert entity.direction == "bidirectional"
    assert entity.source is None
    assert entity.include is None and entity.exclude == []
    assert entity.endpoints["crm"].table == "customers"
    assert entity.endpoints["crm"].columns == {}
    assert entity.conflict.policy == "last_writer_wins"
    assert entity.conflict.fallback == "manual"
    assert entity.conflict.on_delete == "policy"
    assert entity.quality.suite is None
    assert (entity.schema_changes, entity.truncate) == ("stop", "ignore")


def test_relative_paths_are_taken_from_the_config_directory(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        MINIMAL.replace("pipeline: quickstart", "pipeline: q\nstate: {url: 'sqlite:///st/s.db'}")
        + "    quality: {suite: gx/customers.json}\n"
    )
    monkeypatch.chdir(tmp_path)  # the working directory must not matter
    cfg = load_pipeline("project/pipeline.yaml", env={})
    base = tmp_path / "project"
    assert cfg.path == base / "pipeline.yaml"
    assert cfg.path.is_absolute()
    assert cfg.base_dir == base
    crm = cfg.endpoints["crm"]
    billing = cfg.endpoints["billing"]
    assert isinstance(crm, SqliteConfig) and isinstance(billing, SqliteConfig)
    assert crm.path == base / "data" / "crm.db"
    assert billing.path == tmp_path / "shared" / "billing.db"
    assert cfg.state.url == f"sqlite:///{base}/st/s.db"
    assert cfg.entities["customers"].quality.suite == base / "gx" / "customers.json"
    assert path == cfg.path


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("sqlite:////abs/state.db", "sqlite:////abs/state.db"),
        ("sqlite+pysqlite:///rel.db?timeout=5", "sqlite+pysqlite:///{base}/rel.db?timeout=5"),
        ("postgresql+psycopg://root@127.0.0.1/state", "postgresql+psycopg://root@127.0.0.1/state"),
    ],
)
def test_state_url_resolution(write_config: WriteConfig, url: str, expected: str) -> None:
    path = write_config(MINIMAL + f"state: {{url: '{url}'}}\n")
    cfg = load_pipeline(path, env={})
    assert cfg.state.url == expected.format(base=path.parent)


def test_env_interpolation_with_default_and_dollar_escape(write_config: WriteConfig) -> None:
    path = write_config(
        """\
pipeline: ${PIPELINE_NAME:-fallback}
batch: {size: "${BATCH_SIZE}", max_wait_ms: "${WAIT:-50}"}
endpoints:
  crm: {kind: sqlite, path: "${DATA_DIR}/crm.db"}
  billing:
    kind: postgres
    host: ${PGHOST:-127.0.0.1}
    port: ${PGPORT:-5432}
    user: root
    password: "pa$$word-${PGPASSWORD}"
    dbname: test
entities:
  customers:
    key: [id]
    endpoints:
      crm: customers
      billing: {table: "$$weird.${TABLE:-clients}"}
"""
    )
    env = {"BATCH_SIZE": "250", "DATA_DIR": "/srv/data", "PGPASSWORD": "s3cret", "PGHOST": ""}
    cfg = load_pipeline(path, env=env)
    assert cfg.pipeline == "fallback"
    assert (cfg.batch.size, cfg.batch.max_wait_ms) == (250, 50)
    crm = cfg.endpoints["crm"]
    assert isinstance(crm, SqliteConfig) and crm.path == Path("/srv/data/crm.db")
    billing = cfg.endpoints["billing"]
    assert isinstance(billing, PostgresConfig)
    assert billing.host == "127.0.0.1"  # an empty variable takes the default, as in a shell
    assert billing.port == 5432
    assert billing.password == "pa$word-s3cret"
    assert cfg.entities["customers"].endpoints["billing"].table == "$weird.clients"


def test_environment_defaults_to_os_environ(
    write_config: WriteConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDCSYNC_TEST_PIPELINE", "from_environ")
    path = write_config(MINIMAL.replace("quickstart", "${CDCSYNC_TEST_PIPELINE}"))
    assert load_pipeline(path).pipeline == "from_environ"
    monkeypatch.delenv("CDCSYNC_TEST_PIPELINE")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert caught.value.problems[0].message == (
        "environment variable CDCSYNC_TEST_PIPELINE is not set"
    )


def test_every_endpoint_kind(write_config: WriteConfig) -> None:
    path = write_config(
        """\
pipeline: kinds
endpoints:
  crm: {kind: sqlite, path: crm.db}
  billing: {kind: postgres, dsn: "postgresql://root@127.0.0.1:5432/test", schema: sales}
  shop:
    kind: mysql
    user: root
    database: test
    server_id: 4242
    flavor: mysql
  api:
    kind: rest
    base_url: https://api.example.com/v1
    auth: {type: bearer, token: abc}
    rate_limit_per_s: 2.5
    objects: {customers: {path: /customers, cursor: updated_at}}
  oauth:
    kind: rest
    base_url: https://erp.example.com
    auth:
      type: oauth2_client_credentials
      token_url: https://erp.example.com/oauth/token
      client_id: cdcsync
      client_secret: xyz
entities:
  customers:
    key: [id]
    endpoints: {crm: customers, billing: clients, shop: customers, api: customers}
"""
    )
    cfg = load_pipeline(path, env={})
    billing, shop, api = (cfg.endpoints[n] for n in ("billing", "shop", "api"))
    assert isinstance(billing, PostgresConfig)
    assert billing.schema_ == "sales" and billing.slot is None and billing.publication is None
    assert billing.connect_timeout == 10
    assert billing.conninfo() == "postgresql://root@127.0.0.1:5432/test"
    assert isinstance(shop, MysqlConfig)
    assert (shop.host, shop.port, shop.password, shop.server_id, shop.flavor) == (
        "127.0.0.1",
        3306,
        "",
        4242,
        "mysql",
    )
    assert isinstance(api, RestConfig)
    assert isinstance(api.auth, BearerAuth) and api.auth.token == "abc"
    assert api.rate_limit_per_s == 2.5
    assert api.objects == {"customers": {"path": "/customers", "cursor": "updated_at"}}
    oauth = cfg.endpoints["oauth"]
    assert isinstance(oauth, RestConfig) and oauth.auth.type == "oauth2_client_credentials"


def test_postgres_conninfo_from_fields_quotes_values() -> None:
    pg = PostgresConfig.model_validate(
        {"kind": "postgres", "user": "root", "password": "it's a secret", "dbname": "test"}
    )
    assert pg.conninfo() == (
        "host=127.0.0.1 port=5432 user=root password='it\\'s a secret' dbname=test"
        " connect_timeout=10"
    )


def test_conflict_settings_and_one_way_helpers(write_config: WriteConfig) -> None:
    path = write_config(
        """\
pipeline: policies
endpoints:
  crm: {kind: sqlite, path: crm.db}
  billing: {kind: sqlite, path: billing.db}
  shop: {kind: sqlite, path: shop.db}
entities:
  customers:
    key: [tenant, id]
    endpoints:
      crm: customers
      billing: {table: clients, columns: {id: client_id, email: mail}}
      shop: customers
    include: [email, name]
    conflict:
      policy: field_merge
      fallback: custom
      function: "hooks.conflicts:pick"
      on_delete: update_wins
      priority: [shop]
      columns:
        email: {policy: priority, priority: [crm, billing]}
        name: {policy: custom, function: hooks.conflicts.pick_name}
  orders:
    key: id
    direction: one-way
    source: shop
    endpoints: {shop: orders, crm: orders, billing: orders}
    exclude: [internal_note]
"""
    )
    cfg = load_pipeline(path, env={})
    customers, orders = cfg.entities["customers"], cfg.entities["orders"]
    assert customers.conflict.policy == "field_merge"
    assert customers.conflict.function == "hooks.conflicts:pick"
    assert customers.conflict.columns["email"].priority == ["crm", "billing"]
    assert customers.conflict.columns["name"].function == "hooks.conflicts.pick_name"
    assert customers.sources() == ["crm", "billing", "shop"]
    assert customers.sinks() == ["crm", "billing", "shop"]
    assert orders.sources() == ["shop"]
    assert orders.sinks() == ["crm", "billing"]
    assert customers.synced_columns() == frozenset({"tenant", "id", "email", "name"})
    assert orders.synced_columns() is None
    binding = cfg.binding("customers", "billing")
    assert binding == Binding(
        entity="customers",
        endpoint="billing",
        table="clients",
        key=("tenant", "id"),
        columns={"id": "client_id", "email": "mail"},
        only=frozenset({"tenant", "id", "email", "name"}),
        exclude=frozenset(),
    )
    assert binding.endpoint_key == ("tenant", "client_id")
    assert cfg.binding("orders", "crm").exclude == frozenset({"internal_note"})


def test_yaml_anchors_and_merge_keys(write_config: WriteConfig) -> None:
    path = write_config(
        """\
pipeline: anchors
endpoints:
  crm: &db {kind: sqlite, path: crm.db}
  billing: {<<: *db, path: billing.db}
entities:
  customers:
    key: [id]
    endpoints: {crm: customers, billing: clients}
    conflict: &strict {policy: manual}
  invoices:
    key: [id]
    endpoints: {crm: invoices, billing: invoices}
    conflict: *strict
"""
    )
    cfg = load_pipeline(path, env={})
    billing = cfg.endpoints["billing"]
    assert isinstance(billing, SqliteConfig) and billing.path.name == "billing.db"
    assert cfg.entities["invoices"].conflict.policy == "manual"


def test_models_are_frozen(write_config: WriteConfig) -> None:
    cfg = load_pipeline(write_config(MINIMAL), env={})
    with pytest.raises(ValidationError):
        cfg.entities["customers"].direction = "one-way"


def test_validating_data_directly_still_checks_endpoint_references() -> None:
    data = {
        "pipeline": "direct",
        "endpoints": {
            "a": {"kind": "sqlite", "path": "/a.db"},
            "b": {"kind": "sqlite", "path": "/b.db"},
        },
        "entities": {"e": {"key": "id", "endpoints": {"a": "t", "c": "t"}}},
    }
    with pytest.raises(ValidationError) as caught:
        PipelineConfig.model_validate(data)
    assert "unknown endpoint 'c'" in str(caught.value)
    data["entities"] = {"e": {"key": "id", "endpoints": {"a": "t", "b": "t"}}}
    cfg = PipelineConfig.model_validate(data)
    assert cfg.base_dir == Path.cwd()
    assert cfg.state.url == f"sqlite:///{Path.cwd()}/.cdcsync/direct.db"


def test_repr_does_not_show_secrets(write_config: WriteConfig) -> None:
    path = write_config(
        MINIMAL
        + "state: {url: 'postgresql://app:hunter22@db/state'}\n"
        + "broker: {url: 'redis://:brokerpw@127.0.0.1:6379/0'}\n"
    )
    cfg = load_pipeline(path, env={})
    text = repr(cfg)
    assert "hunter22" not in text and "brokerpw" not in text
    assert "postgresql://app:***@db/state" in text
    pg = PostgresConfig.model_validate({"kind": "postgres", "dbname": "t", "password": "pw-xyz"})
    assert "pw-xyz" not in repr(pg) and "password='***'" in repr(pg)
