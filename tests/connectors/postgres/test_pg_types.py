"""Every common type round-trips: sink write, user edit, change stream, snapshot, read.

For each type the same value must have the same canonical form whichever way it
was read (stream text, query result) and whichever engine's form it was written
from, or the fixed point breaks (a missed echo ping-pongs forever).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from conflict.canonical import canonical_row, canonical_value
from connectors.base import ApplyOp, ApplyStatus
from connectors.postgres import PostgresEndpoint
from tests.connectors.postgres.helpers import binding, endpoint, sql

UTC = dt.UTC

# column, SQL type, value written by the sink, SQL literal a user writes, expected value read
TYPES: list[tuple[str, str, Any, str, Any]] = [
    ("c_int2", "smallint", -32768, "32767", 32767),
    ("c_int4", "integer", 2**31 - 1, "-5", -5),
    ("c_int8", "bigint", 2**62, "-9223372036854775808", -(2**63)),
    ("c_num", "numeric(12,3)", Decimal("1.5"), "'-0.125'", Decimal("-0.125")),
    ("c_numfree", "numeric", Decimal("12345678901234567890.000000001"), "'NaN'",
     Decimal("NaN")),
    ("c_real", "real", 1.5, "'0.1'", 0.1),
    ("c_double", "double precision", 0.1 + 0.2, "'-1e300'", -1e300),
    ("c_text", "text", "héllo \"quoted\"\n\ttab", "E'back\\\\slash'", "back\\slash"),
    ("c_varchar", "varchar(20)", "short", "'x'", "x"),
    ("c_char", "char(4)", "ab", "'xy'", "xy"),  # read without its padding
    ("c_bool", "boolean", True, "false", False),
    ("c_date", "date", dt.date(2024, 2, 29), "'1999-12-31'", dt.date(1999, 12, 31)),
    ("c_time", "time", dt.time(23, 59, 59, 999999), "'00:00:01.5'", dt.time(0, 0, 1, 500000)),
    ("c_ts", "timestamp", dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "'2000-01-01 00:00:00'",
     dt.datetime(2000, 1, 1)),
    ("c_tstz", "timestamptz", dt.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC),
     "'2024-06-01 12:00:00+02'", dt.datetime(2024, 6, 1, 10, 0, tzinfo=UTC)),
    ("c_interval", "interval", dt.timedelta(days=3, seconds=7, microseconds=5),
     "'1 day 02:00:00'", dt.timedelta(days=1, hours=2)),
    # months are not 30 days: ISO 8601 text (conflict/intervals.py)
    ("c_months", "interval", "P1Y2M3DT4H", "'1 mon -1 day'", "P1M-1D"),
    ("c_intervalarr", "interval[]", ["P1M", dt.timedelta(days=2)], "'{1 year}'", ["P1Y"]),
    ("c_uuid", "uuid", uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
     "'00000000-0000-0000-0000-000000000001'", uuid.UUID(int=1)),
    ("c_json", "json", {"b": [1, 2.5, None], "a": "x"}, "'[1, \"two\"]'", [1, "two"]),
    ("c_jsonb", "jsonb", {"z": {"y": True}, "a": 1}, "'{\"k\": \"v\"}'", {"k": "v"}),
    ("c_bytea", "bytea", b"\x00\x01\xff", "'\\xdeadbeef'", b"\xde\xad\xbe\xef"),
    ("c_intarr", "integer[]", [1, None, 3], "'{4,5}'", [4, 5]),
    ("c_textarr", "text[]", ["a b", "c,d", None], "ARRAY['x', 'y\"z']", ["x", 'y"z']),
    ("c_numarr", "numeric[]", [Decimal("1.10"), Decimal("2")], "'{3.30}'", [Decimal("3.30")]),
    ("c_tsarr", "timestamptz[]", [dt.datetime(2024, 1, 1, tzinfo=UTC)],
     "ARRAY['2024-01-01 01:00:00+01'::timestamptz]", [dt.datetime(2024, 1, 1, tzinfo=UTC)]),
    ("c_int2d", "integer[]", [[1, 2], [3, 4]], "'{{5,6},{7,8}}'", [[5, 6], [7, 8]]),
    ("c_enum", "mood", "happy", "'sad'", "sad"),
    ("c_enumarr", "mood[]", ["sad", "happy"], "'{happy}'", ["happy"]),
    ("c_domain", "posint", 7, "8", 8),
    ("c_inet", "inet", "10.0.0.1", "'192.168.1.0/24'", "192.168.1.0/24"),
    ("c_null", "text", None, "NULL", None),
]

# The same values as other engines hand them over (SQLite text, MariaDB ints...).
FOREIGN: dict[str, Any] = {
    "c_num": "1.500",
    "c_numfree": "12345678901234567890.0000000010",
    "c_real": "1.5",
    "c_bool": 1,
    "c_date": "2024-02-29",
    "c_time": "23:59:59.999999",
    "c_ts": "2024-01-02 03:04:05.123456",
    "c_tstz": "2024-01-02T04:04:05.000001+01:00",
    "c_interval": 3 * 86400 + 7.000005,
    "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "c_json": '{"a": "x", "b": [1, 2.5, null]}',
    "c_jsonb": '{"a": 1, "z": {"y": true}}',
    "c_bytea": "\\x0001ff",
}


@pytest.fixture
def typed(pg_dsn: str) -> Any:
    cols = ", ".join(f"{c} {t}" for c, t, *_ in TYPES)
    sql(pg_dsn, "CREATE TYPE mood AS ENUM ('happy', 'sad')",
        "CREATE DOMAIN posint AS integer CHECK (VALUE > 0)",
        f"CREATE TABLE ty (id int PRIMARY KEY, {cols})")
    ep = endpoint(pg_dsn)
    ep.setup([binding("ty")], ep.pipeline)
    yield pg_dsn, ep
    ep.close()


def _canon(row: Any) -> Any:
    return canonical_row({k: v for k, v in row.items() if k != "id"})


def test_schema_maps_types_to_logical_types(typed: Any) -> None:
    _, ep = typed
    logical = {c.name: c.logical for c in ep.schema(binding("ty")).columns}
    assert logical == {
        "id": "int", "c_int2": "int", "c_int4": "int", "c_int8": "int", "c_num": "decimal",
        "c_numfree": "decimal", "c_real": "float", "c_double": "float", "c_text": "text",
        "c_varchar": "text", "c_char": "text", "c_bool": "bool", "c_date": "date",
        "c_time": "time", "c_ts": "timestamp", "c_tstz": "timestamptz",
        "c_interval": "interval", "c_months": "interval", "c_intervalarr": "array",
        "c_uuid": "uuid", "c_json": "json", "c_jsonb": "json",
        "c_bytea": "bytes", "c_intarr": "array", "c_textarr": "array", "c_numarr": "array",
        "c_tsarr": "array", "c_int2d": "array", "c_enum": "text", "c_enumarr": "array",
        "c_domain": "int", "c_inet": "text", "c_null": "text",
    }


def test_each_type_round_trips(typed: Any) -> None:
    dsn, ep = typed
    ep_b: PostgresEndpoint = ep
    b = binding("ty")
    start = ep_b.position()
    ep_b.end_snapshot()  # snapshots below read current data
    written = {"id": 1, **{c: v for c, _, v, _, _ in TYPES}}
    (res,) = ep_b.apply(b, [ApplyOp({"id": 1}, written, None, "v1")])
    assert res.status is ApplyStatus.APPLIED
    # Written by the sink, read back by read() and by the snapshot: the same canonical row.
    read_row, version = ep_b.read(b, [{"id": 1}])['{"id":1}']
    (snap,) = ep_b.snapshot(b, None, 10).rows
    expected_written = dict(written)  # (char(n) pads; read without the padding)
    for col in written:
        assert canonical_value(read_row[col]) == canonical_value(expected_written[col]), col
    assert canonical_row(snap.row) == canonical_row(read_row) and snap.row_version == version
    # A user edit of every column, read from the change stream, equals the snapshot's row.
    sets = ", ".join(f"{c} = {lit}" for c, _, _, lit, _ in TYPES)
    sql(dsn, f"UPDATE ty SET {sets} WHERE id = 1")
    batch = ep_b.changes([b], start, 10)
    (ch,) = batch.changes  # the sink's insert was not read back
    assert ch.after is not None and ch.before is not None
    assert _canon(ch.before) == _canon(read_row)
    (snap2,) = ep_b.snapshot(b, None, 10).rows
    for c, _, _, _, want in TYPES:
        assert canonical_value(ch.after[c]) == canonical_value(want), c
        assert canonical_value(snap2.row[c]) == canonical_value(ch.after[c]), c
    assert ch.row_version == snap2.row_version
    # The edit written back by a sink (to a second row here) reads back the same.
    (res2,) = ep_b.apply(b, [ApplyOp({"id": 2}, dict(ch.after, id=2), None, "v2")])
    assert res2.status is ApplyStatus.APPLIED
    back, _ = ep_b.read(b, [{"id": 2}])['{"id":2}']
    assert _canon(back) == _canon(ch.after)


def test_values_in_other_engines_forms_are_written_as_the_same_values(typed: Any) -> None:
    _, ep = typed
    b = binding("ty")
    native = {"id": 1, **{c: v for c, _, v, _, _ in TYPES}}
    foreign = dict(native, id=2, **FOREIGN)
    res = ep.apply(b, [ApplyOp({"id": 1}, native, None, "v1"),
                       ApplyOp({"id": 2}, foreign, None, "v1")])
    assert [r.status for r in res] == [ApplyStatus.APPLIED] * 2
    got = ep.read(b, [{"id": 1}, {"id": 2}])
    one, two = got['{"id":1}'][0], got['{"id":2}'][0]
    for col in FOREIGN:
        assert canonical_value(one[col]) == canonical_value(two[col]), col


def test_a_json_document_that_is_a_string(typed: Any) -> None:
    dsn, ep = typed
    b = binding("ty")
    start = ep.position()
    sql(dsn, "INSERT INTO ty (id, c_jsonb, c_json) VALUES (1, '\"just text\"', '42')")
    (ch,) = ep.changes([b], start, 10).changes
    assert ch.after is not None
    assert ch.after["c_jsonb"] == "just text" and ch.after["c_json"] == 42
    (res,) = ep.apply(b, [ApplyOp({"id": 2}, dict(ch.after, id=2), None, "v")])
    assert res.status is ApplyStatus.APPLIED
    assert sql_value(dsn, "SELECT c_jsonb::text FROM ty WHERE id = 2") == '"just text"'


def sql_value(dsn: str, q: str) -> Any:
    from tests.connectors.postgres.helpers import query

    return query(dsn, q)[0][0]


def test_an_enum_key(pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TYPE kind AS ENUM ('a', 'b')",
        "CREATE TABLE e (k kind PRIMARY KEY, v int)")
    ep = endpoint(pg_dsn)
    try:
        b = binding("e", key=("k",))
        ep.setup([b], ep.pipeline)
        (r,) = ep.apply(b, [ApplyOp({"k": "b"}, {"k": "b", "v": 1}, None, "v1")])
        (r2,) = ep.apply(b, [ApplyOp({"k": "b"}, {"k": "b", "v": 2}, r.row_version, "v2")])
        assert r2.status is ApplyStatus.APPLIED
        assert ep.read(b, [{"k": "b"}])['{"k":"b"}'][0] == {"k": "b", "v": 2}
        (d,) = ep.apply(b, [ApplyOp({"k": "b"}, None, r2.row_version, "v3")])
        assert d.status is ApplyStatus.APPLIED and ep.read(b, [{"k": "b"}]) == {}
        assert [r.key for r in ep.snapshot(b, {"k": "a"}, 10).rows] == []
    finally:
        ep.close()
