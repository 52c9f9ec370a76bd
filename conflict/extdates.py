"""Dates and timestamps that no Python ``date`` can hold: years after 9999 and BC.

PostgreSQL keeps dates from 4713 BC to 5874897 AD and timestamps to 294276 AD;
Python's ``datetime`` stops at years 1 and 9999. A row holding such a value (a
typo'd ``20201-01-01``, a historical ``0044-03-15 BC``) stopped every read of
its table, snapshot or log, with psycopg's "date too large". Like the
infinities (:data:`conflict.canonical.INFINITIES`) they now travel as text:
PostgreSQL's own ISO spelling, always at UTC and without an offset (the form
naive timestamps take everywhere here), which is also their canonical form:

    ``20201-01-01``, ``0044-03-15 BC``, ``20201-01-01 10:00:00``,
    ``0044-03-15 10:00:00.5 BC``

PostgreSQL and SQLite hold them; MariaDB/MySQL refuse them and the row waits as
a dead letter. A value that an offset brings back into Python's range
(``10000-01-01 00:30:00+01``) becomes an ordinary ``datetime``.

Day numbers count from 2000-01-01, PostgreSQL's epoch and its binary format's;
years are astronomical inside (0 is 1 BC), as in PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import re

DAY_US = 86_400_000_000
#: days from 2000-01-01 to the first and past the last day a Python date holds
MIN_DAYS = dt.date.min.toordinal() - dt.date(2000, 1, 1).toordinal()
MAX_DAYS = dt.date.max.toordinal() - dt.date(2000, 1, 1).toordinal()
_UNIX_TO_2000 = 10_957  # days from 1970-01-01 to 2000-01-01

_TEXT = re.compile(
    r"\s*(\d{4,})-(\d{1,2})-(\d{1,2})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6})\d*)?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?"
    r"\s*(BC|AD)?\s*",
    re.IGNORECASE,
)


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 2000-01-01 to a proleptic Gregorian date (astronomical year)."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468 - _UNIX_TO_2000


def civil_from_days(days: int) -> tuple[int, int, int]:
    """The (astronomical year, month, day) ``days`` after 2000-01-01."""
    z = days + _UNIX_TO_2000 + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def date_text(days: int) -> str:
    """PostgreSQL's ISO spelling of the date ``days`` after 2000-01-01."""
    year, month, day = civil_from_days(days)
    if year > 0:
        return f"{year:04d}-{month:02d}-{day:02d}"
    return f"{1 - year:04d}-{month:02d}-{day:02d} BC"


def timestamp_text(micros: int) -> str:
    """PostgreSQL's ISO spelling (at UTC, no offset) of ``micros`` after 2000-01-01."""
    days, tod = divmod(micros, DAY_US)
    seconds, frac = divmod(tod, 1_000_000)
    minutes, sec = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    clock = f"{hour:02d}:{minute:02d}:{sec:02d}"
    if frac:
        clock += f".{frac:06d}".rstrip("0")
    date = date_text(days)
    if date.endswith(" BC"):
        return f"{date[:-3]} {clock} BC"
    return f"{date} {clock}"


def parse(text: str) -> tuple[int, int | None] | None:
    """(days after 2000-01-01, microseconds into that day at UTC or ``None`` where
    ``text`` has no time) of a date/timestamp written as PostgreSQL or ISO 8601 do,
    with any year and an optional ``BC``; ``None`` if ``text`` is not one."""
    m = _TEXT.fullmatch(text)
    if m is None:
        return None
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    if not (1 <= month <= 12 and 1 <= day <= 31) or year == 0:
        return None
    if (m[9] or "").upper() == "BC":
        year = 1 - year
    days = days_from_civil(year, month, day)
    if civil_from_days(days) != (year, month, day):  # 31 February
        return None
    if m[4] is None:
        return days, None
    hour, minute, sec = int(m[4]), int(m[5]), int(m[6] or 0)
    if hour > 24 or minute > 59 or sec > 60:
        return None
    tod = ((hour * 60 + minute) * 60 + sec) * 1_000_000 + int((m[7] or "0").ljust(6, "0"))
    zone = m[8]
    if zone and zone.upper() != "Z":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60 + int(digits[4:6] or 0)
        tod -= (offset if zone[0] == "+" else -offset) * 1_000_000
    extra, tod = divmod(tod, DAY_US)
    return days + extra, tod


def beyond_python(text: str) -> bool:
    """Whether ``text`` may spell a date outside Python's years: a year of five
    digits or more, or BC. Cheap; :func:`parse` decides."""
    t = text.rstrip()
    return t[-2:].upper() == "BC" or t.lstrip().find("-") > 4


def as_date(text: str) -> str | None:
    """The canonical text of a date beyond Python's years, or ``None``."""
    parsed = parse(text)
    if parsed is None or MIN_DAYS <= parsed[0] <= MAX_DAYS:
        return None
    return date_text(parsed[0])


def as_timestamp(text: str) -> str | dt.datetime | None:
    """The canonical text of a timestamp beyond Python's years (a UTC ``datetime``
    where its offset brings it into them), or ``None``."""
    parsed = parse(text)
    if parsed is None:
        return None
    days, tod = parsed
    micros = days * DAY_US + (tod or 0)
    if MIN_DAYS * DAY_US <= micros < (MAX_DAYS + 1) * DAY_US:
        if not beyond_python(text):
            return None
        return dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    return timestamp_text(micros)
