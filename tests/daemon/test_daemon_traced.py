"""One edit through a daemon running in this process, traced and logged as JSON.

The daemon's threads (a reader, partition consumers) pass work through
dramatiq's in-process broker: the batch id of the reader's log context and
the W3C trace context travel inside the task message, so the worker's log
lines carry the reader's batch id and its apply span continues the reader's
trace. Spans are caught with OpenTelemetry's in-memory exporter.
"""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_pipeline
from sync.daemon import run_daemon
from sync.logs import configure
from tests.daemon.helpers import wait_for
from tests.daemon.test_daemon_sqlite import make, rows


@pytest.mark.usefixtures("restore_logging")
def test_batch_id_and_trace_follow_an_edit_from_read_to_apply(
        tmp_path: Path, spans: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the pipeline's relative paths
    p = make(tmp_path)
    cfg = load_pipeline(p)
    buf = io.StringIO()
    configure(json=True, level="DEBUG", stream=buf, libraries="WARNING")
    stop = threading.Event()
    ready = threading.Event()
    code: list[int] = []
    t = threading.Thread(target=lambda: code.append(
        run_daemon(cfg, stop=stop, on_ready=lambda _: ready.set())), daemon=True)
    t.start()
    try:
        assert ready.wait(60)
        with sqlite3.connect(tmp_path / "a.db") as c:
            c.execute("UPDATE items SET name = 'traced' WHERE id = 7")
        wait_for(lambda: (7, "traced", 7) in rows(tmp_path / "b.db"), what="the edit at b")
    finally:
        stop.set()
        t.join(timeout=15)
    assert code == [0]

    lines = [json.loads(x) for x in buf.getvalue().splitlines()]
    decided = [x for x in lines if x["logger"] == "cdcsync.reader"
               and "decided" in x["message"] and x.get("endpoint") == "a"]
    applied = [x for x in lines if x["logger"] == "cdcsync.worker"
               and x["message"].startswith("applied") and "to b" in x["message"]]
    assert decided and applied, lines
    assert all(len(x["batch_id"]) == 16 for x in decided + applied)
    assert {x["batch_id"] for x in applied} <= {x["batch_id"] for x in decided}
    assert all(x["pipeline"] == cfg.pipeline for x in applied)
    assert all("trace_id" in x for x in applied)  # the span was current in the worker

    finished = spans.get_finished_spans()
    resolve = {s.context.trace_id: s for s in finished if s.name == "cdcsync.resolve"}
    apply_ = [s for s in finished if s.name == "cdcsync.apply"
              and (s.attributes or {}).get("target") == "b"]
    assert resolve and apply_
    for s in apply_:  # each apply continues the trace of the batch that produced it
        assert s.context.trace_id in resolve
        assert s.parent is not None
    reads = [s for s in finished if s.name == "cdcsync.read"]
    assert reads
    by_trace = {x["trace_id"] for x in applied}
    assert by_trace <= {format(t, "032x") for t in resolve}
