"""The first snapshot of endpoints that both hold rows, merged by key as it is read
(sync/snapshot_merged.py), against the real PostgreSQL: the same rows, states and
conflicts as the staged path, in one process and in worker processes, and after a
crash at any round."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import sync.snapshot_merged
from config.loader import load_pipeline
from sync.engine import run_pipeline
from tests.connectors.postgres.helpers import query
from tests.ops.conftest import cdcsync
from tests.ops.test_snapshot_workers import (
    COUNT,
    ROWS,
    _fixed_point,
    _staged_pipeline,
    _wait_once,
)
from tests.states import comparable_states

KEYS = COUNT + 60  # a: 1..1500, b: 101..1560, every 50th of 101..1500 differs


def _outcome(tmp: Path, a: str, b: str) -> dict[str, Any]:
    with sqlite3.connect(tmp / "state.db") as c:
        conflicts = sorted(c.execute("SELECT entity, key, status FROM conflicts").fetchall())
        staged = c.execute("SELECT count(*) FROM snapshot_rows").fetchone()[0]
    return {"rows": query(a, ROWS), "same": query(a, ROWS) == query(b, ROWS),
            "states": comparable_states(tmp / "state.db", positions=False),
            "conflicts": conflicts, "staged": staged}


def test_merged_keys_are_decided_as_staged_ones_are(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    outcomes, summaries = {}, {}
    for how, workers in (("merged", 2), ("merged", 1), ("staged", 1)):
        tmp = tmp_path / f"{how}{workers}"
        tmp.mkdir()
        a, b = pg_dsn_factory(), pg_dsn_factory()
        path = _staged_pipeline(tmp, a, b, workers)
        staging: list[int] = []
        waited: list[bool] = []

        def progress(label: str, _n: int, staging: list[int] = staging,
                     waited: list[bool] = waited, tmp: Path = tmp) -> None:
            if label.startswith("snapshot"):
                with sqlite3.connect(tmp / "state.db") as c:
                    staging.append(c.execute("SELECT count(*) FROM snapshot_rows").fetchone()[0])
                _wait_once(waited)(multiprocessing.active_children())

        try:
            with monkeypatch.context() as m:
                if how == "staged":
                    m.setattr(sync.snapshot_merged, "mergeable", lambda *_: False)
                s = summaries[how, workers] = run_pipeline(
                    load_pipeline(path), progress=progress).to_json()
            assert s["errors"] == [] and s["snapshot_rows"] == 2 * COUNT - 40, s
            outcomes[how, workers] = o = _outcome(tmp, a, b)
            assert o["same"] and len(o["rows"]) == KEYS
            assert (max(staging) > 0) == (how == "staged"), staging  # merged: nothing staged
            if workers == 2:
                _fixed_point(path)
        finally:
            cdcsync("teardown", str(path), "--force", expect=None)
    merged, alone, staged = (outcomes[k] for k in (("merged", 2), ("merged", 1),
                                                   ("staged", 1)))
    assert len(merged["conflicts"]) == (COUNT - 100) // 50
    assert merged["rows"] == alone["rows"] == staged["rows"]
    assert merged["conflicts"] == alone["conflicts"] == staged["conflicts"]
    assert len(merged["states"]) == KEYS
    assert merged["states"] == alone["states"] == staged["states"]
    assert summaries["merged", 2]["worker_batches"] >= 5, summaries["merged", 2]
    assert summaries["merged", 1]["worker_batches"] == 0
    assert summaries["merged", 2]["totals"] == summaries["staged", 1]["totals"]


@pytest.mark.parametrize("saved", [False, True], ids=["before-its-save", "after-its-save"])
def test_a_merged_snapshot_resumed_after_a_crash_ends_as_one_that_was_not(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch, saved: bool) -> None:
    """A run dies in its fourth round, before deciding it or after saving and applying
    it but before its progress: the next run ends with the rows, states and conflicts
    of a run that did not die."""
    outcomes = {}
    for crash in (False, True):
        tmp = tmp_path / f"crash{crash}"
        tmp.mkdir()
        a, b = pg_dsn_factory(), pg_dsn_factory()
        path = _staged_pipeline(tmp, a, b, 1)
        real = sync.snapshot_merged.decide_merged
        calls: list[int] = []

        def dying(*args: Any, real: Callable[..., None] = real,
                  calls: list[int] = calls) -> None:
            calls.append(1)
            if len(calls) == 4 and saved:
                real(*args)
            if len(calls) == 4:
                raise RuntimeError("killed in round 4")
            real(*args)

        try:
            if crash:
                with monkeypatch.context() as m:
                    m.setattr(sync.snapshot_merged, "decide_merged", dying)
                    with pytest.raises(RuntimeError, match="killed in round 4"):
                        run_pipeline(load_pipeline(path))
            s = run_pipeline(load_pipeline(path)).to_json()
            assert s["errors"] == [], s
            outcomes[crash] = o = _outcome(tmp, a, b)
            assert o["same"] and len(o["rows"]) == KEYS and o["staged"] == 0
            _fixed_point(path)
        finally:
            cdcsync("teardown", str(path), "--force", expect=None)
    assert outcomes[True]["rows"] == outcomes[False]["rows"]
    assert outcomes[True]["conflicts"] == outcomes[False]["conflicts"]
    # The same states, but that the keys decided after resuming hold the position the
    # resumed rounds read at as read in each log (sync/snapshot_merged.py _read_anew).
    held = [k for k, st in outcomes[True]["states"].items()
            if all(e.get("p") is not None for e in st["e"].values())]
    assert 0 < len(held) < KEYS
    assert _unheld(outcomes[True]["states"]) == _unheld(outcomes[False]["states"])


def _unheld(states: dict[str, Any]) -> dict[str, Any]:
    return {k: {**st, "e": {ep: {f: v for f, v in e.items() if f != "p"}
                            for ep, e in st["e"].items()}} for k, st in states.items()}


def test_a_worker_that_dies_in_a_merged_round_leaves_the_rest_to_one_process(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    path = _staged_pipeline(tmp_path, a, b, 2)
    killed: list[int] = []
    waited: list[bool] = []

    def kill_a_worker(label: str, _n: int) -> None:
        children = multiprocessing.active_children()
        if killed or not children or not label.startswith("snapshot"):
            return
        if "ready after" in caplog.text:  # they took a round: kill one in the next
            os.kill(children[0].pid, signal.SIGKILL)
            killed.append(children[0].pid)
        else:
            _wait_once(waited)(children)

    try:
        with caplog.at_level(logging.INFO, logger="cdcsync.parallel"):
            s = run_pipeline(load_pipeline(path), progress=kill_a_worker).to_json()
        assert killed, "no worker was killed"
        assert any("died" in r.getMessage() for r in caplog.records), caplog.text
        assert s["errors"] == [] and s["worker_batches"] >= 1, s
        o = _outcome(tmp_path, a, b)
        assert o["same"] and len(o["rows"]) == KEYS and o["staged"] == 0
        assert len(o["states"]) == KEYS and len(o["conflicts"]) == (COUNT - 100) // 50
        assert query(a, "SELECT name FROM items WHERE id IN (50, 150) ORDER BY id") == [
            ("a50",), ("b150",)]
        assert multiprocessing.active_children() == []
        _fixed_point(path)
    finally:
        cdcsync("teardown", str(path), "--force", expect=None)
