"""conflict/intervals.py: intervals with months keep their three numbers."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from conflict import intervals
from conflict.canonical import canonical_value, coerce

MONTHS = st.integers(-(2**31), 2**31 - 1)
DAYS = st.integers(-(2**31), 2**31 - 1)
MICROS = st.integers(-(2**63), 2**63 - 1)


@given(MONTHS, DAYS, MICROS)
def test_every_interval_reads_back_from_its_iso_text(months: int, days: int,
                                                     micros: int) -> None:
    text = intervals.iso_text(months, days, micros)
    assert intervals.parse(text) == (months, days, micros)
    if months:
        assert coerce(text, "interval") == text == coerce(" " + text.lower(), "interval")
        assert canonical_value(coerce(text, "interval")) == text


def test_a_month_is_not_thirty_days() -> None:
    assert coerce("1 mon", "interval") == "P1M"
    assert canonical_value(coerce("1 mon", "interval")) != canonical_value(
        coerce("30 days", "interval"))
    assert coerce("1 year 2 mons -3 days -04:05:06", "interval") == "P1Y2M-3DT-4H-5M-6S"
    assert coerce("P1Y2M-3DT-4H5M", "interval") == "P1Y2M-3DT-3H-55M"  # as PostgreSQL
    # without months: a timedelta, as before
    assert coerce("3 days 04:00:00", "interval") == dt.timedelta(days=3, hours=4)
    assert coerce("P1W", "interval") == dt.timedelta(days=7)
    assert intervals.parse("P") is None and intervals.parse("") is None
    assert intervals.parse("1 fortnight") is None
