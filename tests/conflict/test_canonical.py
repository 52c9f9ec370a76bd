"""The one canonical form (DESIGN.md rule 7): equal in meaning <=> equal canonically."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conflict.canonical import (
    CoercionError,
    canonical_value,
    coerce,
    from_json_value,
    key_text,
    parse_json,
    row_from_json,
    row_hash,
    row_to_json,
    rows_equal,
    to_json_value,
)

UTC = dt.UTC
D = decimal.Decimal


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (D("1.50"), D("1.5")),
        (D("100"), D("1E+2")),
        (D("0.00"), D("0")),
        (3.0, 3),
        (-0.0, 0.0),
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
         dt.datetime(2026, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))),
        (dt.datetime(2026, 1, 2, 3, 4, 5), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ({"b": 1, "a": [1, 2]}, {"a": [1, 2], "b": 1}),
        (b"\x00\xff", bytearray(b"\x00\xff")),
    ],
)
def test_equal_in_meaning_is_equal(a: object, b: object) -> None:
    assert canonical_value(a) == canonical_value(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (True, 1),
        (False, 0),
        ("1", 1),
        (D("1.5"), "1.5"),
        (0.1 + 0.2, 0.3),
        (dt.date(2026, 1, 2), "2026-01-02"),
        (b"ab", "ab"),
        ("\x00t:0", dt.datetime(1970, 1, 1, tzinfo=UTC)),  # a text that looks like a tag
        (None, ""),
    ],
)
def test_different_in_meaning_is_different(a: object, b: object) -> None:
    assert canonical_value(a) != canonical_value(b)


@pytest.mark.parametrize(
    ("value", "logical", "expected"),
    [
        ("2026-01-02 03:04:05", "timestamp", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.123456Z", "timestamptz",
         dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2026-01-02T05:04:05+02:00", "timestamptz", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (1, "bool", True),
        ("f", "bool", False),
        ("12.50", "decimal", D("12.50")),
        (0.1, "decimal", D("0.1")),
        ('{"b":2,"a":1}', "json", {"a": 1, "b": 2}),
        ("00ff", "bytes", b"\x00\xff"),
        ("\\x00ff", "bytes", b"\x00\xff"),
        (dt.timedelta(hours=1, microseconds=5), "time", dt.time(1, 0, 0, 5)),
        ("12:30:00", "time", dt.time(12, 30)),
        ("2026-01-02", "date", dt.date(2026, 1, 2)),
        (b"\x01\x00", "int", 256),
        (3.0, "int", 3),
        ("6f1c2a5e-2b4b-4c57-9a8e-0b6f1c2a5e2b", "uuid",
         uuid.UUID("6f1c2a5e-2b4b-4c57-9a8e-0b6f1c2a5e2b")),
        (None, "int", None),
    ],
)
def test_coerce(value: object, logical: str, expected: object) -> None:
    assert coerce(value, logical) == expected


@pytest.mark.parametrize(("value", "logical"), [("maybe", "bool"), (1.5, "int"),
                                                ("nope", "timestamp"), ("x", "decimal")])
def test_coerce_rejects_nonsense(value: object, logical: str) -> None:
    with pytest.raises(CoercionError, match=r"cannot read|is not"):
        coerce(value, logical)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False) | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=st.just(UTC)) | st.dates() | st.binary() | st.uuids(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@given(json_values)
def test_store_round_trip_is_lossless(v: object) -> None:
    back = from_json_value(to_json_value(v))
    assert canonical_value(back) == canonical_value(v)


@given(st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=4))
def test_row_hash_follows_canonical_equality(row: dict[str, object]) -> None:
    back = row_from_json(row_to_json(row))
    assert row_hash(back) == row_hash(row)
    assert rows_equal(back, row)


def test_absent_row_hash_differs_from_empty_row() -> None:
    assert row_hash(None) == ""
    assert row_hash({}) != ""


def test_key_text_is_order_free_and_typed() -> None:
    assert key_text({"a": 1, "b": "x"}) == key_text({"b": "x", "a": 1})
    assert key_text({"a": 1}) != key_text({"a": "1"})


def _stdlib_json(obj: object) -> str:
    import json

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_canonical_json_is_the_standard_librarys_compact_sorted_form(
        row: dict[str, object]) -> None:
    """Row hashes are stored with every key state: the text they hash must not depend on
    which JSON encoder made it (orjson on the hot path, the standard library where orjson
    refuses), or a store written before would see every row as changed."""
    from conflict.canonical import canonical_json, canonical_row

    data = canonical_row(row)
    assert canonical_json(data) == _stdlib_json(data)


def test_row_hash_is_pinned() -> None:
    """A stored hash keeps its meaning across releases: the literal was computed with the
    standard library's encoder, before orjson took the hot path."""
    row = {"id": 7, "name": "Zoë \u2028\x00", "amount": D("1.50"), "ok": True,
           "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "doc": {"b": [1, None], "a": 2},
           "big": 2**70}
    assert row_hash(row) == "2394b156734a573c366e47fb"


_DRIVER_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=4), st.text(max_size=8),
    st.binary(max_size=8), st.dates(), st.times(), st.timedeltas(), st.uuids(),
    st.datetimes(timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=2))])),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
)


@given(st.sampled_from(["int", "float", "decimal", "text", "bool", "date", "time", "timestamp",
                        "timestamptz", "interval", "uuid", "json", "bytes", "array", "any"]),
       _DRIVER_VALUES)
def test_coerce_row_keeps_native_values_exactly_as_coerce_would_make_them(
        logical: str, value: object) -> None:
    """coerce_row's fast path (values already of their type) agrees with coerce."""
    from conflict.canonical import CoercionError, coerce, coerce_row

    try:
        expected = coerce(value, logical)
    except CoercionError:
        with pytest.raises(CoercionError):
            coerce_row({"c": value}, {"c": logical})
        return
    got = coerce_row({"c": value}, {"c": logical})["c"]
    assert type(got) is type(expected)
    assert canonical_value(got) == canonical_value(expected)


def test_a_timestamp_out_of_range_is_a_coercion_error_not_a_crash() -> None:
    from conflict.canonical import CoercionError, coerce

    with pytest.raises(CoercionError, match="as timestamp"):
        coerce(253402300800.0, "timestamp")  # seconds past 9999-12-31


@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [1.5, -0.0, true, null], "c": "\\u00e9"}',
    "123456789012345678901234567890",  # orjson would read a float
    '{"n": -18446744073709551617, "m": 9223372036854775807}',
    "[NaN, Infinity]",  # orjson refuses them
    '"\\ud800"',  # a lone surrogate
    '{"a": 1, "a": 2}',
    '{"id": "12345678901234567890123"}',  # long digits in a string: the slow path, same value
])
def test_parse_json_reads_what_the_standard_library_reads(text: str) -> None:
    want = json.loads(text)
    for source in (text, text.encode()):
        got = parse_json(source)
        assert repr(got) == repr(want)  # (repr: NaN != NaN, and 1.0 == 1)
        assert type(got) is type(want)


def test_parse_json_refuses_what_is_no_json() -> None:
    with pytest.raises(ValueError):
        parse_json("{nope")
    # No text at all: json.loads's TypeError, which SQLAlchemy's SQLite JSON type
    # expects for a number SQLite stored bare (a row version in a JSON column).
    with pytest.raises(TypeError):
        parse_json(774)  # type: ignore[arg-type]


#: JSON documents as parsed from text: what a JSON column's value is (NaN, infinities and
#: integers past 64 bits included: json_bytes must hand those back)
parsed_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@given(parsed_json)
def test_json_bytes_means_what_json_dumps_writes_or_hands_back(doc: object) -> None:
    """Sinks write JSON values with json_bytes where it can (orjson), json.dumps else: the
    document written must be the one json.dumps writes, and what json.dumps writes for
    NaN or infinities (refused by the servers) must never turn into orjson's null."""
    import math

    from conflict.canonical import json_bytes

    out = json_bytes(doc)
    standard = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    if out is None:
        assert "NaN" in standard or "Infinity" in standard or any(
            abs(n) >= 2**63 for n in _ints(doc)) or _surrogates(standard)
        return
    assert json.loads(out) == json.loads(standard)
    assert not any(isinstance(f, float) and not math.isfinite(f) for f in _leaves(doc))


def _leaves(doc: object) -> list[object]:
    if isinstance(doc, dict):
        return [x for v in doc.values() for x in _leaves(v)]
    if isinstance(doc, list):
        return [x for v in doc for x in _leaves(v)]
    return [doc]


def _ints(doc: object) -> list[int]:
    return [x for x in _leaves(doc) if type(x) is int]


def _surrogates(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def test_json_bytes_hands_back_what_it_cannot_write_as_json_dumps_would() -> None:
    from conflict.canonical import json_bytes

    assert json_bytes({"a": [1, {"b": float("nan")}]}) is None
    assert json_bytes([float("-inf")]) is None
    assert json_bytes({"n": 2**64}) is None
    assert json_bytes({1: "non-string key"}) is None
    assert json_bytes(dt.datetime(2024, 1, 1)) is None  # not JSON's: json.dumps refuses it
    assert json_bytes({"a": None, "b": "é"}) == '{"a":null,"b":"é"}'.encode()
