"""A PostgreSQL source restored from a base backup (or failed over to a standby that
lagged): its log goes back to a position before the pipeline's checkpoint, and the
replication slot is gone (a base backup holds none).

`cdcsync setup` made the slot anew at the restored server's position, below the
checkpoint, and the run read on from the checkpoint: every write since the restore
up to the old position was dropped as read already, and the targets kept the rows
of the lost timeline. The run said ok. A slot made anew past the checkpoint was
caught by the run; one made below it was not.

Now setup, making the slot of an endpoint the pipeline already streamed from,
resets that stream (as `cdcsync resync ... --reset-stream` does): each entity read
there is snapshotted again and reconciled with what is known.

A copy of the data directory (a file-system snapshot) holds the slot too, as it
stood: the run read on from the checkpoint in the same way. A checkpoint past the
server's end of log now stops the run, which names the resync.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.connectors.postgres.helpers import pipeline_of
from tests.pg_cluster import private_cluster
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


def _rows(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return [tuple(r) for r in conn.execute("SELECT id, name FROM items ORDER BY id")]


def _lsn(dsn: str) -> int:
    hi, lo = str(pg(dsn, "SELECT pg_current_wal_lsn()")[0][0]).split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def _synced(tmp: Path, a: str, b: str, name_of: str, rows: str = "(1, 'a'), (2, 'b')",
            *, two_way: bool = False) -> Path:
    """Table items holding ``rows`` at ``a`` (empty at ``b`` two ways), a pipeline from
    ``a`` to ``b`` named after the database ``name_of`` (whose fixture drops its
    origins), set up and run once."""
    pg(a, "CREATE TABLE items (id int PRIMARY KEY, name text)", f"INSERT INTO items VALUES {rows}")
    if two_way:
        pg(b, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    p = write_pipeline(tmp, pipeline_of(name_of), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "items", {"a": "items", "b": "items"},
                       options=[] if two_way else ["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    run_json(p)
    return p


def test_a_source_restored_from_a_backup_is_snapshotted_again(tmp_path: Path,
                                                                pg_dsn: str) -> None:
    with private_cluster() as a:
        p = _synced(tmp_path, a.dsn, pg_dsn, pg_dsn)
        backup = a.base_backup("backup")
        restored_at = _lsn(a.dsn)
        # the timeline the restore loses: read and applied at b, its checkpoint far on
        pg(a.dsn, "INSERT INTO items VALUES (3, 'c')", "UPDATE items SET name = 'A' WHERE id = 1",
           "SELECT pg_switch_wal()", "INSERT INTO items VALUES (4, 'd')",
           "SELECT pg_switch_wal()", "INSERT INTO items VALUES (9, 'i')")
        assert run_json(p)["totals"]["applied"] == 4
        assert _rows(pg_dsn) == [(1, "A"), (2, "b"), (3, "c"), (4, "d"), (9, "i")]

        a.restore(backup)
        assert _rows(a.dsn) == [(1, "a"), (2, "b")]
        pg(a.dsn, "INSERT INTO items VALUES (5, 'e')", "DELETE FROM items WHERE id = 2")
        res = cdcsync("run", str(p), expect=1)
        assert "replication slot" in res.stderr and "does not exist" in res.stderr, res.stderr
        out = cdcsync("setup", str(p)).stdout
        assert "created logical replication slot" in out, out
        assert "a: its log was read up to" in out and "items: snapshot again" in out, out
        assert _lsn(a.dsn) < restored_at + 2 * 16 * 1024 * 1024  # below the checkpoint
        pg(a.dsn, "INSERT INTO items VALUES (6, 'f')")
        run_json(p)
        assert _rows(pg_dsn) == _rows(a.dsn) == [(1, "a"), (5, "e"), (6, "f")]
        pg(a.dsn, "UPDATE items SET name = 'E' WHERE id = 5")
        assert run_json(p)["totals"]["applied"] == 1
        assert _rows(pg_dsn) == [(1, "a"), (5, "E"), (6, "f")]
        drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
        assert [d["in_sync"] for d in drift] == [True]
        cdcsync("teardown", str(p))


def test_a_source_restored_with_its_slot_stops_the_run_until_the_resync(
        tmp_path: Path, pg_dsn: str) -> None:
    with private_cluster() as a:
        p = _synced(tmp_path, a.dsn, pg_dsn, pg_dsn)
        copy = a.cold_copy("copy")
        pg(a.dsn, "INSERT INTO items VALUES (3, 'c')", "SELECT pg_switch_wal()",
           "INSERT INTO items VALUES (4, 'd')")
        assert run_json(p)["totals"]["applied"] == 2

        a.restore(copy)
        pg(a.dsn, "INSERT INTO items VALUES (5, 'e')", "DELETE FROM items WHERE id = 2")
        res = cdcsync("run", str(p), expect=1)
        assert "is past the end of the server's log" in res.stderr, res.stderr
        assert "`cdcsync resync PIPELINE ENTITY... --reset-stream`" in res.stderr
        assert "Traceback" not in res.stderr
        assert _rows(pg_dsn) == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]  # nothing applied
        cdcsync("resync", str(p), "items", "--reset-stream")
        run_json(p)
        assert _rows(pg_dsn) == _rows(a.dsn) == [(1, "a"), (5, "e")]
        pg(a.dsn, "UPDATE items SET name = 'E' WHERE id = 5")
        assert run_json(p)["totals"]["applied"] == 1
        assert _rows(pg_dsn) == [(1, "a"), (5, "E")]
        cdcsync("teardown", str(p))


@pytest.mark.parametrize("choice", ["as-setup-does", "reset-stream"])
def test_a_two_way_source_restored_gets_what_is_known_unless_the_restore_is_meant(
        tmp_path: Path, pg_dsn: str, choice: str) -> None:
    """The server's log went back before the checkpoint: it was put back, and holds
    older copies. Setup's reset writes the known copies over them (as `resync
    --restored` does): the edits made since the backup, at either end, stay. A
    `resync --reset-stream` after setup takes the restored rows for its edits instead
    (a restore meant to undo): both ends converge on them. Setup says both."""
    with private_cluster() as a:
        p = _synced(tmp_path, a.dsn, pg_dsn, pg_dsn, two_way=True)
        backup = a.base_backup("backup")
        pg(a.dsn, "INSERT INTO items VALUES (3, 'c')", "UPDATE items SET name = 'A' WHERE id = 1",
           "SELECT pg_switch_wal()")
        pg(pg_dsn, "INSERT INTO items VALUES (7, 'g')")
        run_json(p)
        assert _rows(a.dsn) == _rows(pg_dsn) == [(1, "A"), (2, "b"), (3, "c"), (7, "g")]

        a.restore(backup)
        pg(a.dsn, "INSERT INTO items VALUES (5, 'e')")
        out = cdcsync("setup", str(p)).stdout
        assert "the server's log now ends before that checkpoint, so it was put back" in out
        assert "the snapshot writes the known one over it, as `--restored` does" in out, out
        if choice == "reset-stream":
            cdcsync("resync", str(p), "items", "--reset-stream")
            want = [(1, "a"), (2, "b"), (5, "e")]
        else:
            want = [(1, "A"), (2, "b"), (3, "c"), (5, "e"), (7, "g")]
        totals = run_json(p)["totals"]
        assert totals["resolved"] == totals["parked"] == 0
        assert _rows(a.dsn) == _rows(pg_dsn) == want
        pg(pg_dsn, "UPDATE items SET name = 'B' WHERE id = 2")
        pg(a.dsn, "UPDATE items SET name = 'E' WHERE id = 5")
        assert run_json(p)["totals"]["applied"] == 2
        assert _rows(a.dsn) == _rows(pg_dsn) == [
            (k, {2: "B", 5: "E"}.get(k, v)) for k, v in want]
        drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
        assert [d["in_sync"] for d in drift] == [True]
        cdcsync("teardown", str(p))


def test_a_target_restored_from_a_backup_is_found_by_verify_and_mended_by_a_resync(
        tmp_path: Path, pg_dsn: str) -> None:
    """A one-way target's log is not read: nothing tells the pipeline that it went
    back. `verify` finds what it lost; `cdcsync resync` copies it again
    (docs/operations.md)."""
    with private_cluster() as b:
        p = _synced(tmp_path, pg_dsn, b.dsn, pg_dsn, "(1, 'a'), (2, 'b'), (3, 'c')")
        backup = b.base_backup("backup")
        pg(pg_dsn, "INSERT INTO items VALUES (4, 'd')", "UPDATE items SET name = 'B' WHERE id = 2",
           "DELETE FROM items WHERE id = 3")
        assert run_json(p)["totals"]["applied"] == 3
        b.restore(backup)
        pg(pg_dsn, "UPDATE items SET name = 'A' WHERE id = 1")
        run_json(p)
        drift = json.loads(cdcsync("verify", str(p), "--json", expect=1).stdout)
        assert drift[0]["in_sync"] is False
        cdcsync("resync", str(p), "items")
        run_json(p)
        assert _rows(b.dsn) == _rows(pg_dsn) == [(1, "A"), (2, "B"), (4, "d")]
        pg(pg_dsn, "UPDATE items SET name = 'D' WHERE id = 4")
        assert run_json(p)["totals"]["applied"] == 1
        assert _rows(b.dsn) == [(1, "A"), (2, "B"), (4, "D")]
        drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
        assert [d["in_sync"] for d in drift] == [True]
        cdcsync("teardown", str(p))


def test_resync_restored_writes_the_known_copies_over_a_restored_two_way_endpoint(
        tmp_path: Path, pg_dsn: str) -> None:
    """`cdcsync resync PIPELINE ENTITY --restored a`: a's rows of known keys are copies
    that lag, not its edits. The other endpoint's edits since the backup stay, a gets
    them back, and what a holds that nothing knows (written since the restore) is
    its own."""
    with private_cluster() as a:
        p = _synced(tmp_path, a.dsn, pg_dsn, pg_dsn, two_way=True)
        backup = a.base_backup("backup")
        pg(a.dsn, "INSERT INTO items VALUES (3, 'c')", "DELETE FROM items WHERE id = 2",
           "SELECT pg_switch_wal()")
        pg(pg_dsn, "INSERT INTO items VALUES (7, 'g')", "UPDATE items SET name = 'A' WHERE id = 1")
        run_json(p)
        assert _rows(a.dsn) == _rows(pg_dsn) == [(1, "A"), (3, "c"), (7, "g")]

        a.restore(backup)
        assert _rows(a.dsn) == [(1, "a"), (2, "b")]
        pg(a.dsn, "INSERT INTO items VALUES (5, 'e')")
        cdcsync("setup", str(p))
        out = cdcsync("resync", str(p), "items", "--restored", "a").stdout
        assert "a: restored from an older copy" in out, out
        totals = run_json(p)["totals"]
        assert totals["resolved"] == totals["parked"] == 0
        assert _rows(a.dsn) == _rows(pg_dsn) == [(1, "A"), (3, "c"), (5, "e"), (7, "g")]
        pg(a.dsn, "UPDATE items SET name = 'C' WHERE id = 3")
        pg(pg_dsn, "UPDATE items SET name = 'G' WHERE id = 7")
        assert run_json(p)["totals"]["applied"] == 2
        assert _rows(a.dsn) == _rows(pg_dsn) == [(1, "A"), (3, "C"), (5, "e"), (7, "G")]
        drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
        assert [d["in_sync"] for d in drift] == [True]
        bad = cdcsync("resync", str(p), "items", "--restored", "nope", expect=2)
        assert "unknown endpoint 'nope' for --restored" in bad.stderr, bad.stderr
        cdcsync("teardown", str(p))
