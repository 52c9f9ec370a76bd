"""PostgreSQL intervals with months, which no Python ``timedelta`` holds.

A PostgreSQL interval is three numbers: months, days and microseconds.
``'1 mon'`` is not ``'30 days'`` (added to January 31st, one gives February's
last day, the other March 1st), yet psycopg loads both as ``timedelta(days=30)``:
a subscription period of ``1 mon`` arrived at another PostgreSQL as
``30 days``, silently. An interval with months now travels as text, its
canonical form too: PostgreSQL's own ISO 8601 spelling (``IntervalStyle =
iso_8601``: ``P1Y2M3DT4H5M6.5S``, ``P-1M3D``), which every PostgreSQL reads
back as the same three numbers. An interval without months stays a
``timedelta`` (whose days and seconds PostgreSQL compares as equal anyway).
"""

from __future__ import annotations

import re

_US = 1_000_000
_ISO = re.compile(
    r"\s*P(?:([+-]?\d+)Y)?(?:([+-]?\d+)M)?(?:([+-]?\d+)W)?(?:([+-]?\d+)D)?"
    r"(?:T(?:([+-]?\d+)H)?(?:([+-]?\d+)M)?(?:([+-]?\d+(?:\.\d{1,6})?)S)?)?\s*",
    re.IGNORECASE,
)
#: PostgreSQL's own output (IntervalStyle postgres, what pgoutput sends here)
_POSTGRES = re.compile(
    r"\s*(?:([+-]?\d+) years?\s*)?(?:([+-]?\d+) mons?\s*)?(?:([+-]?\d+) days?\s*)?"
    r"(?:([+-])?(\d+):(\d\d):(\d\d)(?:\.(\d{1,6}))?)?\s*"
)


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


def iso_text(months: int, days: int, micros: int) -> str:
    """PostgreSQL's ISO 8601 spelling of an interval (as ``IntervalStyle = iso_8601``)."""
    out = "P"
    years = _trunc_div(months, 12)
    if years:
        out += f"{years}Y"
    if months - years * 12:
        out += f"{months - years * 12}M"
    if days:
        out += f"{days}D"
    if micros:
        hours = _trunc_div(micros, 3600 * _US)
        rest = micros - hours * 3600 * _US
        minutes = _trunc_div(rest, 60 * _US)
        rest -= minutes * 60 * _US
        out += "T"
        if hours:
            out += f"{hours}H"
        if minutes:
            out += f"{minutes}M"
        if rest:
            sign = "-" if rest < 0 else ""
            whole, frac = divmod(abs(rest), _US)
            out += f"{sign}{whole}" + (f".{frac:06d}".rstrip("0") if frac else "") + "S"
    return out if out != "P" else "PT0S"


def _micros(seconds: str) -> int:
    whole, _, frac = seconds.partition(".")
    value = abs(int(whole)) * _US + int(frac.ljust(6, "0")) if frac else abs(int(whole)) * _US
    return -value if seconds.startswith("-") else value


def parse(text: str) -> tuple[int, int, int] | None:
    """(months, days, microseconds) of an interval written in ISO 8601 or as
    PostgreSQL writes it (``1 year 2 mons -3 days 04:05:06``); ``None`` otherwise."""
    m = _ISO.fullmatch(text)
    if m is not None and text.strip().upper() not in ("P", "PT"):
        y, mo, w, d, h, mi, s = (m[i] for i in range(1, 8))
        months = int(y or 0) * 12 + int(mo or 0)
        days = int(w or 0) * 7 + int(d or 0)
        micros = (int(h or 0) * 3600 + int(mi or 0) * 60) * _US + (_micros(s) if s else 0)
        return months, days, micros
    m = _POSTGRES.fullmatch(text)
    if m is None or not text.strip():
        return None
    months = int(m[1] or 0) * 12 + int(m[2] or 0)
    days = int(m[3] or 0)
    micros = 0
    if m[5] is not None:
        micros = ((int(m[5]) * 60 + int(m[6])) * 60 + int(m[7])) * _US + int(
            (m[8] or "0").ljust(6, "0"))
        if m[4] == "-":
            micros = -micros
    return months, days, micros
