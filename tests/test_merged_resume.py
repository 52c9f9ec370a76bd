"""A first snapshot merged by key, stopped and resumed with an edit made meanwhile.

The resumed rounds read current data (the stopped run's exported snapshot is
gone) while the stream is still read from where the snapshot began. An edit made
while the run was stopped was then read twice: by a round, which decided it
against the other endpoint's row (that row won: priority) and wrote the winner
over it; and again from the log, as an edit made after that decision, which
went to the winner's endpoint. The two ends kept each other's value for good,
and every run after said "ok". The resumed rounds now read in a snapshot taken
when they resume, whose position the keys they decide hold as read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from config import load_pipeline
from sync.engine import run_pipeline
from sync.signals import Interrupted
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def test_an_edit_made_while_a_merged_snapshot_was_stopped_is_decided_once(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    d, e = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (d, e):
        pg(dsn, "CREATE TABLE t (id int PRIMARY KEY, name text)")
    pg(d, "INSERT INTO t SELECT g, 'j' || g FROM generate_series(1, 1000) g")
    pg(e, "INSERT INTO t SELECT g, 'k' || g FROM generate_series(901, 1000) g")
    p = write_pipeline(tmp_path, pipeline_of(d), {"d": pg_endpoint(d), "e": pg_endpoint(e)},
                       "t", {"d": "t", "e": "t"},
                       options=["conflict: {policy: priority, priority: [d, e]}"])
    p.write_text(p.read_text() + "batch: {snapshot_chunk: 100, workers: 1}\n")
    cdcsync("setup", str(p))
    try:
        stop = threading.Event()

        def progress(label: str, _n: int) -> None:
            if label.startswith("snapshot"):
                stop.set()  # after the round that is being read now

        with pytest.raises(Interrupted):
            run_pipeline(load_pipeline(p), progress=progress, stop=stop)
        assert pg(e, "SELECT count(*) FROM t")[0][0] < 1000  # stopped part way
        pg(e, "UPDATE t SET name = 'edited' WHERE id = 950")
        run = run_json(p)
        assert run["errors"] == [], run
        want = [(950, "j950")]  # d ranks above e: the edit lost to d's row
        assert pg(d, "SELECT * FROM t WHERE id = 950") == want
        assert pg(e, "SELECT * FROM t WHERE id = 950") == want
        cdcsync("verify", str(p))
        assert run_json(p)["totals"]["applied"] == 0
    finally:
        cdcsync("teardown", str(p), "--yes", "--force", expect=None)
