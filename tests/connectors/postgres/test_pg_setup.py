"""Setup and teardown of a PostgreSQL endpoint: idempotent, complete, and reported."""

from __future__ import annotations

import pytest

from connectors.base import SchemaError
from connectors.postgres import open_endpoint
from tests.connectors.postgres.helpers import binding, endpoint, query, sql


def _objects(dsn: str, names: object) -> dict[str, object]:
    slot, pub, origin = names.slot, names.publication, names.origin  # type: ignore[attr-defined]
    return {
        "slot": query(dsn, "SELECT plugin, slot_type FROM pg_replication_slots"
                      " WHERE slot_name = %s", (slot,)),
        "publication": query(dsn, "SELECT schemaname, tablename FROM pg_publication_tables"
                             " WHERE pubname = %s ORDER BY 2", (pub,)),
        "origin": query(dsn, "SELECT roname FROM pg_replication_origin WHERE roname = %s",
                        (origin,)),
        "identity": query(dsn, "SELECT relname, relreplident::text FROM pg_class"
                          " WHERE relname IN ('t', 'u') ORDER BY 1"),
    }


def test_setup_creates_everything_once_and_teardown_drops_it(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "CREATE TABLE u (a int, b int, v text, PRIMARY KEY (a, b))")
    ep = endpoint(pg_dsn)
    try:
        bindings = [binding("t"), binding("u", key=("a", "b"))]
        done = ep.setup(bindings, ep.pipeline)
        text = "\n".join(done)
        assert "REPLICA IDENTITY FULL on public.t" in text
        assert "REPLICA IDENTITY FULL on public.u" in text
        assert f"created publication {ep.names.publication}" in text
        assert f"created logical replication slot {ep.names.slot}" in text
        assert f"created replication origin {ep.names.origin}" in text
        assert "track_commit_timestamp" not in text  # on here: no note about savepoints
        objs = _objects(pg_dsn, ep.names)
        assert objs == {
            "slot": [("pgoutput", "logical")],
            "publication": [("public", "t"), ("public", "u")],
            "origin": [(ep.names.origin,)],
            "identity": [("t", "f"), ("u", "f")],
        }
        assert ep.setup(bindings, ep.pipeline) == []  # idempotent: nothing left to do
        assert _objects(pg_dsn, ep.names) == objs

        down = ep.teardown(bindings, ep.pipeline)
        assert f"dropped replication slot {ep.names.slot}" in down
        assert f"dropped publication {ep.names.publication}" in down
        assert f"dropped replication origin {ep.names.origin}" in down
        after = _objects(pg_dsn, ep.names)
        assert after["slot"] == after["publication"] == after["origin"] == []
        assert ep.teardown(bindings, ep.pipeline) == []
    finally:
        ep.close()


def test_setup_adds_a_newly_bound_table_to_the_publication(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE u (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    try:
        ep.setup([binding("t")], ep.pipeline)
        done = ep.setup([binding("t"), binding("u")], ep.pipeline)
        assert f"added public.u to publication {ep.names.publication}" in done
        assert [r[1] for r in _objects(pg_dsn, ep.names)["publication"]] == ["t", "u"]
    finally:
        ep.teardown([], ep.pipeline)
        ep.close()


def test_a_write_only_endpoint_gets_no_slot(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    try:
        done = ep.setup([binding("t")], ep.pipeline, read=[])
        assert not any("slot" in d or "publication" in d for d in done)
        objs = _objects(pg_dsn, ep.names)
        assert objs["slot"] == [] and objs["publication"] == []
        assert objs["origin"] == [(ep.names.origin,)]
    finally:
        ep.teardown([], ep.pipeline)
        ep.close()


def test_setup_refuses_missing_tables_and_keys(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE nokey (id int, v text)")
    ep = endpoint(pg_dsn)
    try:
        with pytest.raises(SchemaError, match=r"table public\.missing does not exist"):
            ep.setup([binding("missing")], ep.pipeline)
        with pytest.raises(SchemaError, match=r"no primary key or unique index on \(id\)"):
            ep.setup([binding("nokey")], ep.pipeline)
        with pytest.raises(SchemaError, match="has no key column other"):
            ep.setup([binding("nokey", key=("other",))], ep.pipeline)
        # A deferrable key is named as such: ON CONFLICT cannot take it.
        sql(pg_dsn, "CREATE TABLE dkey (id int PRIMARY KEY DEFERRABLE, v text)")
        with pytest.raises(SchemaError, match=r"\(id\) that is not DEFERRABLE .* dkey_pkey"):
            ep.setup([binding("dkey")], ep.pipeline)
        # Nothing was created for a setup that failed on its tables.
        assert _objects(pg_dsn, ep.names)["slot"] == []
    finally:
        ep.close()


def test_status_reports_lag_and_warns_about_retained_wal(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    ep = endpoint(pg_dsn, warn_retained_wal_bytes=1000)
    try:
        ep.setup([binding("t")], ep.pipeline)
        sql(pg_dsn, "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 500) g")
        st = ep.status()
        assert st["exists"] and st["active"] is False
        assert st["lag_bytes"] > 50_000 and st["retained_wal_bytes"] >= st["lag_bytes"]
        assert any(f"SLOT {ep.names.slot} HOLDS" in w for w in st["warnings"])
    finally:
        ep.teardown([], ep.pipeline)
        ep.close()


def test_status_warns_about_another_pipelines_slot_holding_wal(pg_dsn: str) -> None:
    """A pipeline renamed or dropped without its teardown leaves a slot that nothing
    reads and whose own status nobody runs: any pipeline's status on the server says so
    once it holds more WAL than the threshold."""
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    ep = endpoint(pg_dsn, warn_retained_wal_bytes=1000)
    gone = f"cdcsync_zz_{ep.pipeline}_a"  # another pipeline's name, not this one's prefix
    try:
        ep.setup([binding("t")], ep.pipeline)
        sql(pg_dsn, f"SELECT pg_create_logical_replication_slot('{gone}', 'pgoutput')")
        assert not any(gone in w for w in ep.status()["warnings"])  # holds nothing yet
        sql(pg_dsn, "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 500) g")
        warnings = ep.status()["warnings"]
        assert any(f"SLOT {gone} OF ANOTHER CDCSYNC PIPELINE IS INACTIVE AND HOLDS" in w
                   and f"pg_drop_replication_slot('{gone}')" in w for w in warnings), warnings
    finally:
        sql(pg_dsn, f"SELECT pg_drop_replication_slot('{gone}')")
        ep.teardown([], ep.pipeline)
        ep.close()


def test_status_warns_about_a_slot_left_behind(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    old = f"cdcsync_{ep.pipeline}_renamed"
    try:
        ep.setup([binding("t")], ep.pipeline)
        sql(pg_dsn, f"SELECT pg_create_logical_replication_slot('{old}', 'pgoutput')")
        st = ep.status()
        assert any(f"SLOT {old} LOOKS LEFT BEHIND" in w for w in st["warnings"])
        # Ours is under the threshold (another pipeline's slot on the server may not be).
        assert not any(" HOLDS " in w and "ANOTHER CDCSYNC PIPELINE" not in w
                       for w in st["warnings"]), st["warnings"]
    finally:
        sql(pg_dsn, f"SELECT pg_drop_replication_slot('{old}')")
        ep.teardown([], ep.pipeline)
        ep.close()


def test_status_of_a_missing_slot(pg_dsn: str) -> None:
    ep = endpoint(pg_dsn)
    try:
        assert ep.status()["exists"] is False
    finally:
        ep.close()


def test_origins_left_without_a_slot_are_reported(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    left = f"cdcsync_{ep.pipeline}_gone"
    try:
        ep.setup([binding("t")], ep.pipeline)
        sql(pg_dsn, f"SELECT pg_replication_origin_create('{left}')")
        warnings = ep.status()["warnings"]
        assert any("look left behind" in w and left in w for w in warnings)
        assert not any(ep.names.origin + "," in w or w.endswith(ep.names.origin)
                       for w in warnings)  # ours has its slot
    finally:
        ep.teardown([], ep.pipeline)
        ep.close()


def test_the_origin_of_a_pipeline_that_only_writes_here_is_not_left_behind(
        pg_dsn: str) -> None:
    """A one-way target (MariaDB -> PostgreSQL) has the pipeline's origin and no slot:
    every status warned that its own origin was left behind, and exited 3."""
    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY)")
    ep = endpoint(pg_dsn)
    try:
        ep.setup([binding("t")], ep.pipeline, read=[])
        assert query(pg_dsn, "SELECT count(*) FROM pg_replication_origin WHERE roname = %s",
                     (ep.names.origin,)) == [(1,)]
        assert query(pg_dsn, "SELECT count(*) FROM pg_replication_slots WHERE"
                     " starts_with(slot_name, %s)", (ep.names.origin,)) == [(0,)]
        warnings = ep.status()["warnings"]
        assert not any("look left behind" in w and ep.names.origin in w for w in warnings), \
            warnings
    finally:
        ep.teardown([], ep.pipeline)
        ep.close()


def test_a_teardown_keeps_the_side_schema_while_another_pipeline_uses_it(
        pg_dsn: str) -> None:
    """Pipelines may write one database, each to its own tables. One set up that has
    written nothing yet has no rows in the sink's records: a teardown of another took
    the schema from under its open apply session."""
    from connectors.base import ApplyOp, ApplyStatus
    from tests.connectors.postgres.helpers import pipeline_of, settings

    sql(pg_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "CREATE TABLE u (id int PRIMARY KEY, v text)")
    mine = endpoint(pg_dsn)
    theirs = open_endpoint("a", settings(pg_dsn), pipeline=pipeline_of(pg_dsn) + "_other")
    try:
        mine.setup([binding("t")], mine.pipeline, read=[])
        theirs.setup([binding("u")], theirs.pipeline, read=[])
        theirs.sink.connection()  # its apply session is open, nothing written yet
        (res,) = mine.apply(binding("t"), [ApplyOp(key={"id": 1}, row={"id": 1, "v": "a"},
                                                           expected=None, token="t1")])
        assert res.status is ApplyStatus.APPLIED
        down = mine.teardown([binding("t")], mine.pipeline)
        assert "dropped schema cdcsync" not in down, down
        assert query(pg_dsn, "SELECT origin FROM cdcsync.pipelines") == [
            (theirs.names.origin,)]
        (res,) = theirs.apply(binding("u"), [ApplyOp(key={"id": 1}, row={"id": 1, "v": "b"},
                                                             expected=None, token="t2")])
        assert res.status is ApplyStatus.APPLIED
        assert "dropped schema cdcsync" in theirs.teardown([binding("u")], theirs.pipeline)
        assert query(pg_dsn, "SELECT to_regnamespace('cdcsync')") == [(None,)]
    finally:
        mine.close()
        theirs.close()
