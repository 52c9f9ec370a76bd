"""Secrets never reach the CLI's output, ``status`` warnings or drivers' messages.

The pipeline files here hold passwords (from the environment, or written in a
URL) in DSNs and URLs no driver can use; what the commands print is searched
for every part of those passwords.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from config import load_pipeline
from tests.test_cli_quickstart import cdcsync

SECRET = "S3cretXpo"
SQLITE_ENDS = ("  b: {kind: sqlite, path: b.db}\n"
               "entities:\n  t: {key: [id], endpoints: {a: t, b: t}}\n")


def _pipeline(tmp_path: Path, head: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"pipeline: xpo\n{head}{SQLITE_ENDS}", encoding="utf-8")
    return path


def _said(res: Any) -> str:
    return f"{res.stdout}\n{res.stderr}"


def test_a_malformed_dsn_is_a_config_error_naming_the_endpoint_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XPO_PW", SECRET)
    p = _pipeline(tmp_path, 'endpoints:\n  a: {kind: postgres,'
                            ' dsn: "postgresql://xpo_u:${XPO_PW}@[::1:5439/xpo_a"}\n')
    for args in (("run", str(p)), ("status", str(p), "--json"), ("config", "check", str(p))):
        res = cdcsync(*args, expect=2)
        assert f"{p}:3:" in res.stderr and "endpoints.a.dsn" in res.stderr, res.stderr
        assert "xpo_u:***@[::1:5439" in res.stderr
        assert SECRET not in _said(res)


def test_an_unknown_dsn_option_names_the_endpoint_and_field(tmp_path: Path) -> None:
    p = _pipeline(tmp_path, "endpoints:\n  a: {kind: postgres,"
                            ' dsn: "host=127.0.0.1 password=Hid3Me bogus=1"}\n')
    res = cdcsync("run", str(p), expect=2)
    assert "endpoints.a.dsn: not a valid PostgreSQL connection string" in res.stderr
    assert 'invalid connection option "bogus"' in res.stderr
    assert "Hid3Me" not in _said(res)


def test_a_raw_at_in_a_password_is_reported_without_any_part_of_it(tmp_path: Path) -> None:
    url = "xpo_u:S3cret@Xpo@127.0.0.1:5439/xpo_a"
    p = _pipeline(tmp_path, f'state: {{url: "postgresql+psycopg://{url}"}}\n'
                            f'endpoints:\n  a: {{kind: postgres, dsn: "postgresql://{url}"}}\n')
    res = cdcsync("run", str(p), expect=2)
    assert "state.url" in res.stderr and "endpoints.a.dsn" in res.stderr
    assert "%40" in res.stderr
    assert "S3cret" not in _said(res) and "Xpo" not in _said(res)


def test_a_state_url_of_an_unknown_database_is_a_config_error(tmp_path: Path) -> None:
    p = _pipeline(tmp_path, 'state: {url: "nosuchdb://x"}\nendpoints:\n'
                            "  a: {kind: sqlite, path: a.db}\n")
    for args in (("config", "check", str(p)), ("setup", str(p)), ("status", str(p))):
        res = cdcsync(*args, expect=2)
        assert f"{p}:2:" in res.stderr and "state.url: unknown database 'nosuchdb'" in res.stderr
        assert "NoSuchModuleError" not in res.stderr


def test_status_warnings_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drivers' messages quoting a DSN or a secret reach ``status`` (and the review UI's
    overview) masked."""
    import connectors.registry
    from sync.status import collect_status

    p = _pipeline(tmp_path, "endpoints:\n  a: {kind: postgres,"
                            ' dsn: "postgresql://xpo_u:${XPO_PW}@127.0.0.1:1/xpo_a"}\n')
    cfg = load_pipeline(p, env={"XPO_PW": SECRET})

    def unreachable(name: str, *_: Any, **__: Any) -> Any:
        raise RuntimeError(f'bad URI "postgresql://xpo_u:{SECRET}@[::1/x" ({SECRET})')

    monkeypatch.setattr(connectors.registry, "open_endpoint", unreachable)
    warnings = collect_status(cfg)["warnings"]
    assert any("xpo_u:***@[::1/x" in w and "(***)" in w for w in warnings), warnings
    assert SECRET not in json.dumps(warnings)


def test_postgres_messages_hide_a_password_holding_a_raw_at() -> None:
    from connectors.base import ConnectorError
    from connectors.postgres.connect import connect, conninfo, describe
    from sync.state.store import open_store

    info = "postgresql://xpo_u:S3cret@Xpo@127.0.0.1:5439/xpo_a?connect_timeout=2"
    assert describe(info) == "127.0.0.1:5439/xpo_a"
    with pytest.raises(ConnectorError) as caught:
        connect(info)
    with pytest.raises(ConnectorError) as state:
        open_store(info.replace("postgresql:", "postgresql+psycopg:"))
    with pytest.raises(ConnectorError) as malformed:
        conninfo(SimpleNamespace(dsn=f"postgresql://xpo_u:{SECRET}@[::1:5439/xpo_a"))
    for exc in (caught.value, state.value, malformed.value):
        assert "S3cret" not in str(exc) and "Xpo" not in str(exc), str(exc)


def test_cli_errors_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    from sync.cli import _fail

    with pytest.raises(SystemExit):
        _fail(f'ProgrammingError: bad URI "postgresql://xpo_u:{SECRET}@[::1:5439/xpo_a"')
    err = capsys.readouterr().err
    assert "xpo_u:***@[::1:5439/xpo_a" in err and SECRET not in err
