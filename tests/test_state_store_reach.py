"""A state store that cannot be opened is reported as an endpoint's server would be.

It was a raw SQLAlchemy error (``OperationalError: (psycopg.OperationalError)
... Background on this error at: https://sqlalche.me/...``) at the first try,
where an endpoint's server is tried again with backoff (``connect:``): a batch
run from cron failed whenever the state store's server restarted.
"""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

from tests.test_cli_quickstart import cdcsync

SECRET = "Hush1Hush2"


def _pipeline(tmp: Path, state_url: str) -> Path:
    for name in ("a.db", "b.db"):
        with sqlite3.connect(tmp / name) as db:
            db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
        db.close()
    p = tmp / "p.yaml"
    p.write_text(f"""pipeline: reach
state: {{url: "{state_url}"}}
connect: {{tries: 3, backoff_s: 0.05}}
endpoints:
  a: {{kind: sqlite, path: a.db}}
  b: {{kind: sqlite, path: b.db}}
entities:
  t:
    key: [id]
    endpoints: {{a: t, b: t}}
""")
    return p


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_state_store_server_that_is_down_is_tried_again_then_reported(tmp_path: Path) -> None:
    port = _closed_port()
    p = _pipeline(tmp_path, f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/x")
    for command in ("run", "status", "setup"):
        out = cdcsync(command, str(p), expect=1)
        text = out.stdout + out.stderr
        assert f"cannot open the state store at postgresql://postgres:***@127.0.0.1:{port}/x" \
            in text, text
        assert "retry 1/2" in text and "retry 2/2" in text and "gave up after 3" in text, text
        assert SECRET not in text and "sqlalche.me" not in text and "Traceback" not in text


def test_a_state_store_that_refuses_us_is_reported_at_once(
        tmp_path: Path, pg_dsn: str) -> None:
    url = pg_dsn.rsplit("/", 1)[0] + "/no_such_database_here"
    p = _pipeline(tmp_path, url.replace("postgresql://", "postgresql+psycopg://"))
    text = "".join(cdcsync("run", str(p), expect=1).stderr)
    assert "cannot open the state store at" in text and "no_such_database_here" in text
    assert "not retried" in text and "retry" not in text.replace("not retried", ""), text


def test_a_sqlite_state_store_whose_directory_cannot_be_made_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    p = _pipeline(tmp_path, f"sqlite:///{tmp_path}/file/state.db")
    text = cdcsync("run", str(p), expect=1).stderr
    assert f"cannot make its directory {tmp_path}/file" in text and "Traceback" not in text
