"""A two-endpoint SQLite pipeline (a <-> b, entity ``items``) for the operator commands."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sync.context import PipelineContext

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
    with sqlite3.connect(db, timeout=30) as conn:  # (a daemon may be writing)
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


@pytest.fixture
def ctx(pipeline: Path, cfg: Any) -> Iterator[PipelineContext]:
    """The pipeline after its snapshot, open, with row 1 edited at a to 'two'."""
    from sync.context import open_pipeline
    from sync.engine import run_pipeline

    run_pipeline(cfg)
    with open_pipeline(cfg) as opened:
        sql(pipeline.parent / "a.db", "UPDATE items SET name = 'two' WHERE id = 1")
        yield opened


def before_the_lock(monkeypatch: pytest.MonkeyPatch, ctx: PipelineContext,
                    meanwhile: Callable[[], None]) -> None:
    """Run ``meanwhile`` once, when the states about to be written under the state
    lock have been encoded (the last step before the lock is taken)."""
    real = ctx.store.encode

    def encode(states: Any) -> dict[str, str]:
        monkeypatch.setattr(ctx.store, "encode", real)
        out = real(states)
        meanwhile()
        return out

    monkeypatch.setattr(ctx.store, "encode", encode)
