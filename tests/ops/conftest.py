"""A two-endpoint SQLite pipeline (a <-> b, entity ``items``) for the operator commands."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PIPELINE = """\
pipeline: ops
state:
  url: sqlite:///state.db
endpoints:
  a: {kind: sqlite, path: a.db}
  b: {kind: sqlite, path: b.db}
entities:
  items:
    key: [id]
    endpoints:
      a: {table: items}
      b: {table: items}
schedule:
  - cron: "* * * * *"
"""


def cdcsync(*args: str, expect: int | None = 0,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real CLI as a subprocess; asserts its exit code unless ``expect`` is None."""
    exe = Path(sys.executable).with_name("cdcsync")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sync.cli"]
    res = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, env=env,
                         stdin=subprocess.DEVNULL)
    if expect is not None:
        assert res.returncode == expect, (res.returncode, res.stdout, res.stderr)
    return res


def sql(db: Path, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(statement, params).fetchall()
    conn.close()
    return rows


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    """The pipeline file, its two databases created (one row each side) and set up."""
    for name in ("a", "b"):
        sql(tmp_path / f"{name}.db",
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    sql(tmp_path / "a.db", "INSERT INTO items VALUES (1, 'one')")
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE)
    setup(path)
    return path


def setup(path: Path) -> None:
    """What ``cdcsync setup`` does, in-process (a subprocess per test costs seconds here)."""
    from config import load_pipeline
    from sync.cli import _each_endpoint
    from sync.state import open_store

    cfg = load_pipeline(path)
    _each_endpoint(cfg, "setup")
    open_store(cfg.state.url).close()


@pytest.fixture
def cfg(pipeline: Path) -> Any:
    from config import load_pipeline

    return load_pipeline(pipeline)
