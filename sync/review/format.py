"""How values, times and keys read on a page (Jinja filters and the cells of a table)."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass
from typing import Any

from conflict.canonical import from_json_value


def when(ts: float | None) -> str:
    """``2024-05-01 12:00:03 UTC``; ``-`` when there is no time."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Cell:
    """One value as shown: its text and what kind of value it is (for styling).

    ``kind`` is ``value``, ``null`` (SQL NULL), ``empty`` (an empty string,
    which would otherwise look like nothing), ``deleted`` (the row is deleted
    on that side) or ``absent`` (that version has no such column).
    """

    text: str
    kind: str = "value"
    edited: bool = False  # differs from the version the sides started from


DELETED = Cell("row deleted", "deleted")
ABSENT = Cell("—", "absent")


def text_of(v: Any) -> str:
    """A value as a person reads it: strings verbatim, other types in a plain literal form."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal | uuid.UUID | int | float | dt.timedelta):
        return str(v)
    if isinstance(v, bytes | bytearray | memoryview):
        raw = bytes(v)
        if len(raw) <= 32:
            return f"0x{raw.hex()}"
        return f"0x{raw[:32].hex()}… ({len(raw)} bytes)"
    try:
        return json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(v)


def cell(v: Any, *, edited: bool = False) -> Cell:
    if v is None:
        return Cell("NULL", "null", edited)
    if isinstance(v, str) and v == "":
        return Cell("(empty)", "empty", edited)
    return Cell(text_of(v), "value", edited)


def json_cell(v: Any) -> Cell:
    """A value as the state store keeps it (conflict.canonical's JSON form)."""
    return cell(from_json_value(v))


def key(text: str) -> str:
    """``{"id":2}`` -> ``id=2``: the store's key text (:func:`conflict.canonical.key_text`)."""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text

    def part(v: Any) -> str:
        # canonical forms of non-text types are tagged "\x00<tag>:<text>"
        if isinstance(v, str) and v.startswith("\x00") and ":" in v:
            return v.split(":", 1)[1]
        return text_of(v)

    return ", ".join(f"{k}={part(v)}" for k, v in data.items())


def left_over(left: dict[Any, str], what: str) -> str:
    """``"3 not decided: why; why ..."``: items a decision for all left, by reason."""
    reasons = sorted(set(left.values()))
    return (f"{len(left)} {what}: " + "; ".join(reasons[:3])
            + (" ..." if len(reasons) > 3 else ""))
