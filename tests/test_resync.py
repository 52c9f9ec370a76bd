"""`cdcsync resync`: changes a log no longer has are recovered by a new snapshot."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.test_cli_quickstart import cdcsync, quickstart, rows, run_json  # noqa: F401


def test_resync_recovers_edits_the_log_lost(quickstart: Path) -> None:  # noqa: F811
    p = quickstart / "pipeline.yaml"
    crm, billing = quickstart / "data" / "crm.db", quickstart / "data" / "billing.db"
    cdcsync("setup", str(p))
    run_json(p)
    with sqlite3.connect(crm) as c:
        c.execute("UPDATE customers SET tier = 'diamond' WHERE id = 3")
        c.execute("DELETE FROM _cdcsync_log")  # the log lost it, like a purged binlog
    run_json(p)
    assert rows(billing, "SELECT tier FROM clients WHERE client_id = 3") == [("silver",)]
    assert cdcsync("verify", str(p), expect=1).returncode == 1

    out = cdcsync("resync", str(p), "customers").stdout
    assert "customers: snapshot again" in out
    summary = run_json(p)
    assert summary["totals"]["applied"] == 1  # only the row that differed was written
    assert rows(billing, "SELECT tier FROM clients WHERE client_id = 3") == [("diamond",)]
    cdcsync("verify", str(p))
    assert run_json(p)["totals"]["applied"] == 0  # and the fixed point holds after it


def test_resync_recovers_a_delete_the_log_lost(quickstart: Path) -> None:  # noqa: F811
    """The row is gone at the CRM and its log no longer says so: the new snapshot finds
    it absent where the state says it was, and the deletion reaches billing."""
    p = quickstart / "pipeline.yaml"
    crm, billing = quickstart / "data" / "crm.db", quickstart / "data" / "billing.db"
    cdcsync("setup", str(p))
    run_json(p)
    with sqlite3.connect(crm) as c:
        c.execute("DELETE FROM customers WHERE id = 3")
        c.execute("DELETE FROM _cdcsync_log")  # the log lost it, like a purged binlog
    run_json(p)
    assert rows(billing, "SELECT count(*) FROM clients WHERE client_id = 3") == [(1,)]

    cdcsync("resync", str(p), "customers")
    summary = run_json(p)
    assert summary["totals"]["applied"] == 1  # the deletion, nothing else
    assert rows(billing, "SELECT count(*) FROM clients WHERE client_id = 3") == [(0,)]
    cdcsync("verify", str(p))
    assert run_json(p)["totals"]["applied"] == 0


def test_a_resumed_reconcile_infers_no_delete_from_its_own_older_reads(
        quickstart: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The first snapshot inserts billing's extra client at the CRM, then dies before it
    is marked done; the reconcile runs again on the same staged reads, in which the CRM
    lacks that client. Its state was saved after the reads: no deletion is inferred."""
    from config import load_pipeline
    from sync.context import open_pipeline
    from sync.snapshot import snapshot_entity
    from sync.state.store import StateStore
    from sync.summary import RunSummary

    p = quickstart / "pipeline.yaml"
    crm, billing = quickstart / "data" / "crm.db", quickstart / "data" / "billing.db"
    cdcsync("setup", str(p))
    extra = {r[0] for r in rows(billing, "SELECT client_id FROM clients")} - {
        r[0] for r in rows(crm, "SELECT id FROM customers")}
    assert extra  # the example seeds one
    cfg = load_pipeline(p)

    def crash(*_: object) -> None:
        raise RuntimeError("killed before the snapshot was marked done")

    with open_pipeline(cfg) as ctx:
        ent = ctx.entities["customers"]
        with monkeypatch.context() as m:
            m.setattr(StateStore, "finish_snapshot", staticmethod(crash))
            with pytest.raises(RuntimeError, match="killed"):
                snapshot_entity(ctx, ent, RunSummary(cfg.pipeline))
        for i in extra:  # the first reconcile wrote it
            assert rows(crm, f"SELECT count(*) FROM customers WHERE id = {i}") == [(1,)]
        snapshot_entity(ctx, ent, RunSummary(cfg.pipeline))  # resumed: staged reads again
    for i in extra:
        assert rows(crm, f"SELECT count(*) FROM customers WHERE id = {i}") == [(1,)]
        assert rows(billing, f"SELECT count(*) FROM clients WHERE client_id = {i}") == [(1,)]
    cdcsync("verify", str(p))


def test_resync_rejects_an_unknown_entity(quickstart: Path) -> None:  # noqa: F811
    res = cdcsync("resync", str(quickstart / "pipeline.yaml"), "nope", expect=2)
    assert "unknown entity 'nope'" in res.stderr


def test_setup_creates_a_one_way_target_table(tmp_path: Path,
                                              pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    with psycopg.connect(a, autocommit=True) as c:
        c.execute("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(10,2) NOT NULL, "
                  "placed timestamptz, lines jsonb)")
        c.execute("INSERT INTO orders VALUES (1, 9.99, now(), '[1, 2]')")
    p = tmp_path / "p.yaml"
    p.write_text(f"""
pipeline: oneway_{tmp_path.name[-8:].replace('-', '_')}
state: {{url: "sqlite:///{tmp_path}/s.db"}}
endpoints:
  a: {{kind: postgres, dsn: "{a}"}}
  b: {{kind: postgres, dsn: "{b}"}}
entities:
  orders:
    key: [id]
    direction: one-way
    source: a
    endpoints: {{a: orders, b: archive.orders}}
""")
    with psycopg.connect(b, autocommit=True) as c:
        c.execute("CREATE SCHEMA archive")
    out = cdcsync("setup", str(p)).stdout
    assert "b:" in out
    run_json(p)
    with psycopg.connect(b) as c:
        assert c.execute("SELECT id, total, lines FROM archive.orders").fetchall() == [
            (1, __import__("decimal").Decimal("9.99"), [1, 2])]
    cdcsync("verify", str(p))
