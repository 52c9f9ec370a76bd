"""The phrases conflict reports are made of ("crm's edit at 2026-11-21T10:00:01Z")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from conflict.case import ConflictCase, Side, Winner

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def micros(ts: float) -> int:
    """A commit time in whole microseconds, the precision timestamps are compared at."""
    return round(ts * 1_000_000)


def when(ts: float) -> str:
    """ISO 8601 UTC with a ``Z``; microseconds only when there are any."""
    try:
        moment = _EPOCH + dt.timedelta(microseconds=micros(ts))
    except (OverflowError, ValueError):
        return f"{ts!r} s since the epoch"
    return moment.isoformat().replace("+00:00", "Z")


def who(case: ConflictCase, which: Winner) -> str:
    """The endpoint of a side; told apart by role when both sides share one."""
    side = case.side(which)
    name = side.endpoint or "an unknown endpoint"
    if side.endpoint == case.side(other(which)).endpoint:
        return f"{name} ({which.value})"
    return name


def act(side: Side) -> str:
    return "delete" if side.deleted else "edit"


def edit_at(case: ConflictCase, which: Winner) -> str:
    """``"crm's edit at 2026-11-21T10:00:01Z"``, or for a row a snapshot read (no
    commit time known) ``"crm's row as read at 2026-11-21T10:00:01Z"``."""
    side = case.side(which)
    if side.snapshot_read:
        what = "absence" if side.deleted else "row"
        return f"{who(case, which)}'s {what} as read at {when(side.committed_at)}"
    return f"{who(case, which)}'s {act(side)} at {when(side.committed_at)}"


def at(side: Side) -> str:
    """``"at 2026-11-21T10:00:01Z"``, or ``"as read at ..."`` for a snapshot read."""
    return f"{'as read ' if side.snapshot_read else ''}at {when(side.committed_at)}"


def listing(names: Iterable[str]) -> str:
    return ", ".join(names)


def other(which: Winner) -> Winner:
    return Winner.INCOMING if which is Winner.CURRENT else Winner.CURRENT
