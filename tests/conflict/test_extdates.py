"""conflict/extdates.py: the calendar arithmetic behind dates no Python date holds.

Held to Python's own calendar where both exist, and to PostgreSQL's range and
spelling beyond it (the end-to-end test, tests/test_wide_dates.py, checks the
spelling against a real server)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conflict import extdates
from conflict.canonical import (
    END_OF_DAY,
    CoercionError,
    canonical_value,
    coerce,
    duration_text,
)

EPOCH = dt.date(2000, 1, 1).toordinal()
#: PostgreSQL's range: dates 4713-01-01 BC .. 5874897-12-31, timestamps to 294276 AD
PG_DAYS = st.integers(-2_451_545, 2_147_483_494)
PG_MICROS = st.integers(-2_451_545 * extdates.DAY_US, 106_741_034 * extdates.DAY_US - 1)


@given(st.dates())
def test_the_calendar_is_pythons_where_python_has_one(d: dt.date) -> None:
    n = d.toordinal() - EPOCH
    assert extdates.civil_from_days(n) == (d.year, d.month, d.day)
    assert extdates.days_from_civil(d.year, d.month, d.day) == n
    assert extdates.date_text(n) == d.isoformat()
    assert coerce(d.isoformat(), "date") == d  # an ordinary date stays a date
    assert extdates.as_date(d.isoformat()) is None


@given(PG_DAYS)
def test_every_postgresql_date_reads_back_from_its_text(n: int) -> None:
    text = extdates.date_text(n)
    assert extdates.parse(text) == (n, None)
    if not extdates.MIN_DAYS <= n <= extdates.MAX_DAYS:
        assert extdates.beyond_python(text)
        assert coerce(text, "date") == text == extdates.as_date(" " + text.lower() + " ")
        assert canonical_value(coerce(text, "date")) == text


@given(PG_MICROS)
def test_every_postgresql_timestamp_reads_back_from_its_text(micros: int) -> None:
    text = extdates.timestamp_text(micros)
    days, tod = divmod(micros, extdates.DAY_US)
    assert extdates.parse(text) == (days, tod)
    if not extdates.MIN_DAYS <= days <= extdates.MAX_DAYS:
        # timestamp and timestamptz share one canonical form, as datetimes do
        assert coerce(text, "timestamp") == coerce(text, "timestamptz") == text
        assert coerce(text.replace(" ", "T", 1), "timestamptz") == text


def test_offsets_and_the_years_around_zero() -> None:
    assert extdates.date_text(extdates.days_from_civil(0, 12, 31)) == "0001-12-31 BC"
    assert extdates.days_from_civil(0, 12, 31) + 1 == extdates.days_from_civil(1, 1, 1)
    assert coerce("0044-03-15 10:00:00+02:00 BC", "timestamptz") == "0044-03-15 08:00:00 BC"
    assert coerce("10000-01-01 00:30:00+01", "timestamptz") == dt.datetime(
        9999, 12, 31, 23, 30, tzinfo=dt.UTC)  # back in Python's years: a datetime
    assert coerce("0044-03-15 BC", "date") != coerce("0044-03-15", "date")
    for nonsense in ("20201-02-30", "20201-13-01", "0000-01-01", "abcde-01-01"):
        assert extdates.parse(nonsense) is None


def test_the_end_of_a_day_and_durations_are_their_own_times() -> None:
    for text in ("24:00:00", "24:00", " 24:00:00.000000 "):
        assert coerce(text, "time") == END_OF_DAY
    assert coerce(dt.timedelta(days=1), "time") == END_OF_DAY  # MariaDB's TIME
    assert canonical_value(coerce("24:00", "time")) != canonical_value(coerce("00:00", "time"))
    # MariaDB's TIME is a duration: never wrapped into a day
    for value, text in ((dt.timedelta(hours=25), "25:00:00"), ("25:00:00.5", "25:00:00.500000"),
                        (dt.timedelta(seconds=-1), "-00:00:01"), ("-838:59:59", "-838:59:59")):
        assert coerce(value, "time") == text == duration_text(
            coerce(text, "interval") // dt.timedelta(microseconds=1))
    assert coerce("1:02:03", "time") == dt.time(1, 2, 3)
    assert coerce(dt.time(1, 2, 3), "interval") == dt.timedelta(seconds=3723)
    for bad in ("24:60:00", "12:00:61", "noon"):
        with pytest.raises(CoercionError):
            coerce(bad, "time")
