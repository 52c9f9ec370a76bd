"""The sink's per-column shortcuts (``storer_of``, ``param_of``, ``typer_of``) give
exactly what ``stored``, ``to_param`` and ``typed`` give, for values of every type a
column may be handed or read back as."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.mysql.types import (
    ColumnInfo,
    logical_type,
    param_of,
    stored,
    storer_of,
    to_param,
    typed,
    typer_of,
)

UTC = dt.UTC
EST = dt.timezone(dt.timedelta(hours=-5))


def col(data_type: str, column_type: str | None = None, *, scale: int | None = None,
        nullable: bool = True, length: int | None = None, values: tuple[str, ...] = (),
        is_json: bool = False) -> ColumnInfo:
    ct = column_type or data_type
    return ColumnInfo("c", data_type, ct, logical_type(data_type, ct, is_json=is_json),
                      nullable=nullable, scale=scale, length=length, values=values)


COLUMNS = [
    col("int"), col("bigint", "bigint(20) unsigned"), col("tinyint", "tinyint(1)"),
    col("bit", "bit(1)"), col("bit", "bit(8)"), col("decimal", "decimal(10,2)", scale=2),
    col("decimal", "decimal(30,0)", scale=0), col("double"), col("float"),
    col("varchar", "varchar(20)"), col("char", "char(4)"), col("text"),
    col("enum", "enum('a','b')", values=("a", "b")),
    col("set", "set('a','b','c')", values=("a", "b", "c")),
    col("blob"), col("binary", "binary(4)", length=4), col("date"),
    col("date", nullable=False), col("datetime", "datetime(6)", scale=6),
    col("datetime", "datetime(3)", scale=3), col("datetime", scale=0),
    col("timestamp", "timestamp(6)", scale=6), col("timestamp", scale=0, nullable=False),
    col("time", "time(6)", scale=6), col("longtext", is_json=True), col("json"),
    col("uuid"),
]

VALUES: list[Any] = [
    None, 0, 7, -3, 2**63, True, False, 1.5, 0.1, float("inf"),
    decimal.Decimal("12.345"), decimal.Decimal("-0.005"), decimal.Decimal("1E+3"),
    "", "ab  ", "a,c", "x", "2024-01-02", "12", "{\"a\": 1}",
    b"\x01\x02", b"ab", dt.date(2024, 1, 2),
    dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=EST),
    dt.datetime(2024, 1, 2, 3, 4, 5, 678901), dt.time(3, 4, 5, 6),
    dt.timedelta(hours=1), uuid.UUID(int=5), {"a": [1, 2]}, [1, "x"], {"a", "b"},
]


def outcome(fn: Any, v: Any) -> tuple[str, Any]:
    try:
        got = fn(v)
    except Exception as exc:  # both must fail alike
        return ("raises", type(exc).__name__)
    return (type(got).__name__, got)


def same(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    if a[0] != b[0]:
        return False
    if isinstance(a[1], float) and a[1] != a[1]:
        return b[1] != b[1]
    if isinstance(a[1], decimal.Decimal):
        return str(a[1]) == str(b[1])  # the scale too
    if isinstance(a[1], dt.datetime):
        return a[1] == b[1] and a[1].tzinfo == b[1].tzinfo
    return bool(a[1] == b[1])


def agree(c: ColumnInfo, v: Any) -> None:
    pairs = [(storer_of(c), stored), (param_of(c), to_param), (typer_of(c), typed)]
    for short, general in pairs:
        want = outcome(lambda x, g=general: g(c, x), v)  # type: ignore[misc]
        got = outcome(short, v)
        assert same(got, want), (c, v, short, got, want)


@pytest.mark.parametrize("c", COLUMNS, ids=[f"{c.column_type}/{c.logical}" for c in COLUMNS])
def test_the_shortcuts_agree_with_the_general_functions(c: ColumnInfo) -> None:
    for v in VALUES:
        if v is not None:
            agree(c, v)
    # NULL: written through both (a zero date for NOT NULL), read as None without a call
    assert same(outcome(storer_of(c), None), outcome(lambda x: stored(c, x), None))
    assert same(outcome(param_of(c), None), outcome(lambda x: to_param(c, x), None))
    assert param_of(None)(dt.datetime(2024, 1, 2, tzinfo=EST)) == to_param(
        None, dt.datetime(2024, 1, 2, tzinfo=EST))


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6,
                   min_value=-10**6, max_value=10**6),
       st.datetimes(timezones=st.sampled_from([UTC, EST, None])), st.integers(), st.text(),
       st.binary(max_size=6), st.floats())
def test_the_shortcuts_agree_on_any_value(d: decimal.Decimal, t: dt.datetime, i: int,
                                          s: str, b: bytes, f: float) -> None:
    for c in COLUMNS:
        for v in (d, t, i, s, b, f):
            agree(c, v)
