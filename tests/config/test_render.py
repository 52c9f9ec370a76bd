"""render_config: the resolved configuration as YAML, with every secret masked."""

from __future__ import annotations

import yaml

from config import load_pipeline, render_config
from tests.config.conftest import WriteConfig

SECRETS = {
    "PGPASSWORD": "pg-Secret-1",
    "MYSQL_PWD": "my-Secret-2",
    "API_TOKEN": "tok-Secret-3",
    "CLIENT_SECRET": "cs-Secret-4",
    "STATE_PW": "st-Secret-5",
    "REDIS_PW": "rd-Secret-6",
    "DSN_PW": "dsn-Secret-7",
}

SECRETIVE = """\
pipeline: secretive
state: {url: "postgresql+psycopg://cdc:${STATE_PW}@127.0.0.1:5432/state"}
broker: {url: "redis://:${REDIS_PW}@127.0.0.1:6379/0"}
endpoints:
  crm: {kind: sqlite, path: crm.db}
  billing:
    kind: postgres
    dsn: postgresql://root:${DSN_PW}@127.0.0.1:5432/test
  warehouse:
    kind: postgres
    user: root
    password: ${PGPASSWORD}
    dbname: test
  literal:
    kind: postgres
    dsn: "host=127.0.0.1 dbname=test password=lit-Secret-8"
  shop:
    kind: mysql
    user: root
    password: ${MYSQL_PWD}
    database: test
  api:
    kind: rest
    base_url: https://api.example.com/v1
    auth: {type: bearer, token: "${API_TOKEN}"}
    objects:
      customers: {path: /customers, headers: {X-Api-Key: "key ${API_TOKEN}"}, api_key: lit-Secret-9}
  erp:
    kind: rest
    base_url: https://erp.example.com
    auth:
      type: oauth2_client_credentials
      token_url: https://erp.example.com/token
      client_id: cdcsync
      client_secret: ${CLIENT_SECRET}
entities:
  customers:
    key: [id]
    endpoints: {crm: customers, billing: clients, warehouse: customers, shop: customers}
"""


def test_render_masks_every_secret(write_config: WriteConfig) -> None:
    cfg = load_pipeline(write_config(SECRETIVE), env=SECRETS)
    assert cfg.endpoints["warehouse"].password == SECRETS["PGPASSWORD"]  # type: ignore[union-attr]
    text = render_config(cfg)
    for secret in [*SECRETS.values(), "lit-Secret-8", "lit-Secret-9"]:
        assert secret not in text
    data = yaml.safe_load(text)
    assert data["state"]["url"] == "postgresql+psycopg://cdc:***@127.0.0.1:5432/state"
    assert data["broker"]["url"] == "redis://:***@127.0.0.1:6379/0"
    endpoints = data["endpoints"]
    assert endpoints["billing"]["dsn"] == "postgresql://root:***@127.0.0.1:5432/test"
    assert endpoints["literal"]["dsn"] == "host=127.0.0.1 dbname=test password=***"
    assert endpoints["warehouse"]["password"] == "***"
    assert endpoints["warehouse"]["user"] == "root"
    assert endpoints["shop"]["password"] == "***"
    assert endpoints["api"]["auth"] == {"type": "bearer", "token": "***"}
    customers = endpoints["api"]["objects"]["customers"]
    assert customers["headers"] == {"X-Api-Key": "key ***"}
    assert customers["api_key"] == "***"
    assert endpoints["erp"]["auth"]["client_secret"] == "***"
    assert endpoints["erp"]["auth"]["client_id"] == "cdcsync"


def test_a_value_interpolated_into_a_secret_is_masked_wherever_it_appears(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        """\
pipeline: reuse
endpoints:
  crm: {kind: sqlite, path: crm.db}
  billing: {kind: postgres, user: app, password: "${DB_PASS}", dbname: test}
  shop: {kind: mysql, user: app, password: "${DB_PASS}", database: "x-${DB_PASS}"}
entities:
  customers:
    key: [id]
    endpoints: {crm: customers, billing: clients}
"""
    )
    text = render_config(load_pipeline(path, env={"DB_PASS": "Tr0ub4dor"}))
    assert "Tr0ub4dor" not in text
    assert yaml.safe_load(text)["endpoints"]["shop"]["database"] == "x-***"


def test_render_shows_resolved_values_and_round_trips(write_config: WriteConfig) -> None:
    path = write_config(
        """\
pipeline: plain
batch: {size: "${SIZE:-123}"}
endpoints:
  crm: {kind: sqlite, path: data/crm.db}
  billing: {kind: postgres, dsn: "postgresql://root@127.0.0.1:5432/test", schema: sales}
entities:
  customers:
    key: id
    endpoints: {crm: customers, billing: {table: clients, columns: {id: client_id}}}
    conflict: {policy: priority, priority: [billing, crm]}
schedule:
  - {cron: "*/5 * * * *"}
"""
    )
    cfg = load_pipeline(path, env={})
    text = render_config(cfg)
    data = yaml.safe_load(text)
    assert data["batch"] == {"size": 123, "max_wait_ms": 20, "snapshot_chunk": 50000,
                             "workers": "auto", "parallel_from": 5000}
    assert data["endpoints"]["crm"]["path"] == str(path.parent / "data" / "crm.db")
    assert data["endpoints"]["billing"]["schema"] == "sales"
    assert data["entities"]["customers"]["key"] == ["id"]
    assert data["schedule"] == [{"cron": "*/5 * * * *", "command": "run"}]
    assert "***" not in text
    # With nothing to mask, the rendering is itself a valid pipeline file, equal to the original.
    again = path.parent / "rendered.yaml"
    again.write_text(text, encoding="utf-8")
    assert load_pipeline(again, env={}).model_dump() == cfg.model_dump()
