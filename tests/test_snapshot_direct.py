"""The direct snapshot (sync/snapshot_direct.py) decides exactly what the staged one does.

SQLite endpoints, in process: the same rows snapshotted once straight through
and once staged (the direct path switched off) must leave the same rows at
every endpoint and the same key states, and reach the fixed point.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_pipeline
from sync.engine import run_pipeline
from sync.setup import setup_pipeline
from sync.state.store import StateStore
from tests.staging import count_staged
from tests.states import comparable_states

DDL = ("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT, price DECIMAL(10,2),"
       " seen TIMESTAMP, prefs JSON)")

BIDIRECTIONAL = """\
    direction: bidirectional
    endpoints: {a: items, b: items}
"""
ONE_WAY = """\
    direction: one-way
    source: a
    endpoints: {a: items, b: items, c: items}
"""


def _pipeline(tmp: Path, entity: str) -> Path:
    for db in "abc":
        with sqlite3.connect(tmp / f"{db}.db") as c:
            c.execute(DDL)
        c.close()
    with sqlite3.connect(tmp / "a.db") as c:
        c.executemany("INSERT INTO items VALUES (?, ?, ?, ?, ?)", [
            (i, f"item {i}", f"{i}.25", f"2024-01-{1 + i % 28:02d} 10:00:00",
             json.dumps({"n": i, "tags": ["x"] * (i % 3)}) if i % 5 else None)
            for i in range(1, 138)])
    c.close()
    path = tmp / "pipeline.yaml"
    path.write_text(f"""\
pipeline: direct
state: {{url: "sqlite:///{tmp}/state.db"}}
batch: {{size: 20, snapshot_chunk: 50}}
endpoints:
  a: {{kind: sqlite, path: "{tmp}/a.db"}}
  b: {{kind: sqlite, path: "{tmp}/b.db"}}
  c: {{kind: sqlite, path: "{tmp}/c.db"}}
entities:
  items:
    key: [id]
{entity}""")
    setup_pipeline(load_pipeline(path))
    return path


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as c:
        got = c.execute("SELECT * FROM items ORDER BY id").fetchall()
    c.close()
    return got


def _run(tmp: Path, entity: str, direct: bool,
         monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], list[int]]:
    tmp.mkdir()
    path = _pipeline(tmp, entity)
    with monkeypatch.context() as m:
        staged = count_staged(m)
        if not direct:
            m.setattr("sync.snapshot.direct_snapshot", lambda *a, **k: False)
        summary = run_pipeline(load_pipeline(path)).to_json()
    return summary, staged


@pytest.mark.parametrize("entity", [BIDIRECTIONAL, ONE_WAY], ids=["bidirectional", "one-way"])
def test_direct_and_staged_snapshots_leave_the_same_rows_and_states(
        tmp_path: Path, entity: str, monkeypatch: pytest.MonkeyPatch) -> None:
    direct, staged = tmp_path / "direct", tmp_path / "staged"
    d_summary, d_staged = _run(direct, entity, True, monkeypatch)
    s_summary, s_staged = _run(staged, entity, False, monkeypatch)
    assert d_staged == [] and sum(s_staged) >= 137  # each run took the path meant
    assert d_summary["errors"] == [] and s_summary["errors"] == []
    assert d_summary["snapshot_rows"] == 137
    assert d_summary["totals"] == s_summary["totals"]
    assert d_summary["totals"]["applied"] == 137 * (2 if entity is ONE_WAY else 1)
    targets = "bc" if entity is ONE_WAY else "b"
    for db in targets:  # (written in canonical spellings, unlike a's)
        assert _rows(direct / f"{db}.db") == _rows(staged / f"{db}.db")
        assert [r[:3] for r in _rows(direct / f"{db}.db")] == [
            r[:3] for r in _rows(direct / "a.db")]
    d_states = comparable_states(direct / "state.db")
    s_states = comparable_states(staged / "state.db")
    assert len(d_states) == 137
    for k in sorted(d_states):
        assert d_states[k] == s_states[k], k
    # With no user edits, the next run applies nothing and the one after reads nothing.
    path = direct / "pipeline.yaml"
    quiet = run_pipeline(load_pipeline(path)).to_json()
    assert quiet["totals"]["applied"] == 0, quiet
    silent = run_pipeline(load_pipeline(path)).to_json()
    assert silent["totals"]["read"] == 0 and silent["totals"]["applied"] == 0, silent


def test_a_target_holding_rows_takes_the_staged_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows at two endpoints must be matched by key: the staged reconcile does it."""
    tmp = tmp_path / "p"
    tmp.mkdir()
    path = _pipeline(tmp, BIDIRECTIONAL)
    with sqlite3.connect(tmp / "b.db") as c:
        c.execute("INSERT INTO items (id, label) VALUES (500, 'only at b')")
    c.close()
    staged = count_staged(monkeypatch)
    summary = run_pipeline(load_pipeline(path)).to_json()
    assert summary["errors"] == []
    assert sum(staged) == 138
    assert [r[:3] for r in _rows(tmp / "a.db")] == [r[:3] for r in _rows(tmp / "b.db")]
    assert len(_rows(tmp / "a.db")) == 138


def test_a_run_dying_in_its_first_chunk_resumes_directly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first chunk is applied before anything of it is saved: the progress says
    "direct" before that, so the next run reads the chunk again straight through
    (our rows at the targets known as ours) rather than staging them as rows to
    reconcile with the source's."""
    tmp = tmp_path / "p"
    tmp.mkdir()
    path = _pipeline(tmp, BIDIRECTIONAL)
    real_save = StateStore.save
    staged = count_staged(monkeypatch)

    def dying(*a: Any, **k: Any) -> float:
        raise KeyboardInterrupt("killed after the first chunk's applies")

    monkeypatch.setattr(StateStore, "save", staticmethod(dying))
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_pipeline(path))
    assert len(_rows(tmp / "b.db")) == 50  # the first chunk was applied
    monkeypatch.setattr(StateStore, "save", staticmethod(real_save))
    summary = run_pipeline(load_pipeline(path)).to_json()
    assert summary["errors"] == []
    assert staged == []
    assert summary["snapshot_rows"] == 137
    assert summary["totals"]["skipped"] == 0  # our rows at b were not taken for user edits
    assert summary["totals"]["applied"] == 87  # the 50 at b already held our writes
    assert [r[:3] for r in _rows(tmp / "b.db")] == [r[:3] for r in _rows(tmp / "a.db")]
    assert len(comparable_states(tmp / "state.db")) == 137
    quiet = run_pipeline(load_pipeline(path)).to_json()
    assert quiet["totals"]["applied"] == 0, quiet
    silent = run_pipeline(load_pipeline(path)).to_json()
    assert silent["totals"]["read"] == 0 and silent["totals"]["applied"] == 0, silent
