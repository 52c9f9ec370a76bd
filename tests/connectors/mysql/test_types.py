"""Types round-tripped MariaDB -> canonical -> MariaDB, and binlog == SELECT."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest

from conflict.canonical import canonical_row, key_text, row_hash
from connectors.base import ApplyOp, ApplyStatus
from connectors.mysql.endpoint import open_endpoint
from connectors.mysql.types import ColumnInfo, enum_values, float32, logical_type, stored, typed
from tests.connectors.mysql.helpers import binding, drain, query, run, settings

UTC = dt.UTC

TABLE = """CREATE TABLE typ (
  id INT PRIMARY KEY,
  dec_ DECIMAL(12,3), dt6 DATETIME(6), dt0 DATETIME, ts TIMESTAMP(6) NULL, d DATE, t TIME(3),
  js JSON, txt TEXT, bl BLOB, vb VARBINARY(20), bn BINARY(4),
  en ENUM('a','b','c'), st SET('x','y','z'), b1 BIT(1), b9 BIT(9),
  u8 TINYINT UNSIGNED, u64 BIGINT UNSIGNED, i64 BIGINT, flag TINYINT(1),
  f FLOAT, dbl DOUBLE, y YEAR, ch CHAR(5),
  zd DATE NOT NULL DEFAULT '2000-01-01', zdt DATETIME NULL
)"""

FULL_ROW = (
    "INSERT INTO typ VALUES (1, -12345.675, '2024-02-29 23:59:59.999999', '1999-12-31 01:02:03',"
    " '2038-01-19 03:14:07.999999', '2024-01-02', '23:59:59.999',"
    " '{\"b\": [1, 2.5, null], \"a\": \"é\"}', 'héllo 🌍', x'00ff10', x'0102', x'01',"
    " 'c', 'z,x', b'1', b'111111111', 255, 18446744073709551615, -9223372036854775808, 1,"
    " 1.2345678, 0.1, 2155, 'ab', '2001-02-03', NULL)"
)
NULL_ROW = "INSERT INTO typ (id) VALUES (2)"
ZERO_ROW = "INSERT INTO typ (id, zd, zdt) VALUES (3, '0000-00-00', '0000-00-00 00:00:00')"


def test_logical_types_from_the_schema() -> None:
    assert logical_type("tinyint", "tinyint(1)") == "bool"
    assert logical_type("tinyint", "tinyint(3) unsigned") == "int"
    assert logical_type("bit", "bit(1)") == "bool"
    assert logical_type("bit", "bit(9)") == "int"
    assert logical_type("longtext", "longtext", is_json=True) == "json"
    assert logical_type("timestamp", "timestamp(6)") == "timestamptz"
    assert logical_type("datetime", "datetime(6)") == "timestamp"
    assert logical_type("geometry", "geometry") == "any"
    assert enum_values("enum('a','it''s','c,d')") == ("a", "it's", "c,d")


def test_float32_is_the_shortest_exact_single() -> None:
    assert float32(1.2345677614212036) == 1.2345678
    assert float32(0.10000000149011612) == 0.1
    assert float32(3.0) == 3.0


def test_time_outside_a_day_is_its_text_never_wrapped() -> None:
    col = ColumnInfo("t", "time", "time", "time")
    assert typed(col, dt.timedelta(hours=23, seconds=59)) == dt.time(23, 0, 59)
    assert typed(col, dt.timedelta(hours=-1)) == "-01:00:00"
    assert typed(col, dt.timedelta(hours=24)) == "24:00:00"
    assert stored(ColumnInfo("t", "time", "time(1)", "time", scale=1),
                  "-25:00:00.56") == "-25:00:00.500000"  # truncated, as the server does


def test_stored_rounds_like_the_server() -> None:
    dec = ColumnInfo("p", "decimal", "decimal(10,2)", "decimal", scale=2)
    assert stored(dec, decimal.Decimal("1.005")) == decimal.Decimal("1.01")
    ts = ColumnInfo("t", "datetime", "datetime(3)", "timestamp", scale=3)
    assert stored(ts, dt.datetime(2024, 1, 1, 0, 0, 0, 123999, tzinfo=UTC)) == dt.datetime(
        2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    st = ColumnInfo("s", "set", "set('x','y','z')", "text", values=("x", "y", "z"))
    assert stored(st, "z,x") == "x,z"


@pytest.fixture
def typ(mariadb_params: dict[str, Any]) -> dict[str, Any]:
    run(mariadb_params, TABLE)
    return mariadb_params


def _snapshot(ep: Any) -> dict[int, dict[str, Any]]:
    ep.position()
    chunk = ep.snapshot(binding("typ"), None, 100)
    return {r.key["id"]: dict(r.row) for r in chunk.rows}


def test_binlog_and_select_read_the_same_values(typ: dict[str, Any]) -> None:
    ep = open_endpoint("maria", settings(typ), pipeline="t-types")
    try:
        start = ep.source.log_end()
        run(typ, FULL_ROW, NULL_ROW, ZERO_ROW)
        changes, _, _ = drain(ep.source, [binding("typ")], start)
        from_log = {c.key["id"]: dict(c.after or {}) for c in changes}
        from_select = _snapshot(ep)
        assert set(from_log) == set(from_select) == {1, 2, 3}
        for i in (1, 2, 3):
            assert canonical_row(from_log[i]) == canonical_row(from_select[i]), i
            assert row_hash(from_log[i]) == row_hash(from_select[i])
        full = from_select[1]
        assert full["dec_"] == decimal.Decimal("-12345.675")
        assert full["dt6"] == dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
        assert full["ts"] == dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC)
        assert full["t"] == dt.time(23, 59, 59, 999000)
        assert full["js"] == {"b": [1, 2.5, None], "a": "é"}
        assert full["txt"] == "héllo 🌍"
        assert full["bl"] == b"\x00\xff\x10" and full["bn"] == b"\x01\x00\x00\x00"
        assert full["st"] == "x,z" and full["en"] == "c"
        assert full["b1"] is True and full["b9"] == 511 and full["flag"] is True
        assert full["u64"] == 2**64 - 1 and full["i64"] == -(2**63)
        assert full["f"] == 1.2345678 and full["dbl"] == 0.1
        assert full["y"] == 2155 and full["ch"] == "ab"
        assert from_select[2]["zd"] == dt.date(2000, 1, 1)
        assert all(v is None for k, v in from_select[2].items() if k not in ("id", "zd"))
        assert from_select[3]["zd"] is None and from_select[3]["zdt"] is None  # zero dates
    finally:
        ep.close()


def test_values_written_by_the_sink_read_back_identical(typ: dict[str, Any]) -> None:
    ep = open_endpoint("maria", settings(typ), pipeline="t-types2")
    try:
        run(typ, FULL_ROW, NULL_ROW, ZERO_ROW)
        original = _snapshot(ep)
        ops = [ApplyOp({"id": i + 100}, {**r, "id": i + 100}, None, "t")
               for i, r in original.items()]
        res = ep.apply(binding("typ"), ops)
        assert [r.status for r in res] == [ApplyStatus.APPLIED] * 3
        back = ep.read(binding("typ"), [{"id": i + 100} for i in original])
        for (i, r), result in zip(original.items(), res, strict=True):
            row, version = back[key_text({"id": i + 100})]
            assert canonical_row({**row, "id": i}) == canonical_row(r)
            assert version == result.row_version
        # The zero date of a NOT NULL column went back as a zero date.
        assert query(typ, "SELECT CAST(zd AS CHAR) FROM typ WHERE id = 103") == [("0000-00-00",)]
    finally:
        ep.close()


def test_values_in_other_engines_forms_are_stored_as_the_sink_predicts(
    typ: dict[str, Any]
) -> None:
    ep = open_endpoint("maria", settings(typ), pipeline="t-types3")
    try:
        plus2 = dt.timezone(dt.timedelta(hours=2))
        foreign = {
            "id": 9,
            "dec_": decimal.Decimal("1.5"),  # another scale
            "dt6": dt.datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=plus2),  # another zone
            "dt0": dt.datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=UTC),  # too precise
            "ts": dt.datetime(2024, 5, 1, 12, 0, tzinfo=plus2),
            "t": dt.time(1, 2, 3, 456789),
            "js": {"z": {"y": [True, None]}, "a": 1},
            "st": "z,x",
            "flag": True, "b1": False, "b9": 5, "f": 0.1, "u64": 2**63,
            "bn": b"\x07", "ch": "hi", "zd": None,
        }
        res = ep.apply(binding("typ"), [ApplyOp({"id": 9}, foreign, None, "t")])
        assert res[0].status is ApplyStatus.APPLIED
        row, version = ep.read(binding("typ"), [{"id": 9}])[key_text({"id": 9})]
        assert version == res[0].row_version
        assert row["dt6"] == dt.datetime(2024, 5, 1, 10, 0, 0, 1, tzinfo=UTC)
        assert row["dt0"] == dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
        assert row["t"] == dt.time(1, 2, 3, 456000)
        assert row["js"] == {"z": {"y": [True, None]}, "a": 1}
        assert row["st"] == "x,z" and row["bn"] == b"\x07\x00\x00\x00"
        assert row["flag"] is True and row["b1"] is False and row["b9"] == 5
        # Writing what was read is a no-op: the content is already there.
        again = ep.apply(binding("typ"), [ApplyOp({"id": 9}, foreign, version, "t")])
        assert again[0].status is ApplyStatus.ALREADY
    finally:
        ep.close()
