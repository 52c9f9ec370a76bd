"""SQL literals for the sink's multi-row statements, made by the value's exact type.

An apply sends its rows as multi-row ``INSERT`` statements and its keys as
``IN (...)`` lists. pymysql's ``executemany`` and parameter binding format
every row through the general ``mogrify`` (a ``%`` format of the statement
per row, then per value an ``isinstance`` test, a lookup of the encoder and
its call): in a daemon worker applying to MariaDB that was an eighth of the
process. Here a value's literal is one lookup by its exact type and one
call, with pymysql's own escaping functions, and anything else goes through
pymysql's ``Connection.escape`` (its encoder table), so the text sent is the
same as pymysql's (held to it by ``tests/connectors/mysql/test_literals.py``).

Strings follow the session's ``NO_BACKSLASH_ESCAPES`` flag as pymysql does:
quotes doubled when it is on, backslash escapes otherwise.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from pymysql import converters
from pymysql.constants import SERVER_STATUS

_escape_string = converters.escape_string


def _quoted(s: str) -> str:
    return "'" + _escape_string(s) + "'"  # type: ignore[no-any-return]


def _quoted_no_backslash(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _null(_: Any) -> str:
    return "NULL"


def _float(v: float) -> str:
    return converters.escape_float(v)  # type: ignore[no-any-return]


def _datetime(v: dt.datetime) -> str:
    if v.tzinfo is None:  # pymysql's text (microseconds only when there are), made in C
        return "'" + v.isoformat(" ") + "'"
    return converters.escape_datetime(v)  # type: ignore[no-any-return]


def _date(v: dt.date) -> str:
    return converters.escape_date(v)  # type: ignore[no-any-return]


def _bytes(v: bytes) -> str:
    return "X'" + v.hex() + "'"


class Literals:
    """Literals for one session (its escaping mode, read when made: make one per batch)."""

    def __init__(self, conn: Any) -> None:
        no_backslash = bool(conn.server_status
                            & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES)
        self._fallback: Callable[[Any], str] = conn.escape
        self._by_type: dict[type, Callable[[Any], str]] = {
            int: int.__repr__,
            str: _quoted_no_backslash if no_backslash else _quoted,
            decimal.Decimal: str,
            float: _float,
            bytes: _bytes,
            dt.datetime: _datetime,
            dt.date: _date,
            type(None): _null,
        }

    def value(self, v: Any) -> str:
        return self._by_type.get(type(v), self._fallback)(v)

    def row(self, values: Iterable[Any]) -> str:
        """``(v1,v2,...)``."""
        get, fallback = self._by_type.get, self._fallback
        return "(" + ",".join([get(type(v), fallback)(v) for v in values]) + ")"

    def in_list(self, columns: Sequence[str], keys: Sequence[Sequence[Any]]) -> str:
        """``c IN (...)``, or ``(c1,c2) IN ((...),...)`` for a composite key; ``columns``
        quoted already."""
        if len(columns) == 1:
            get, fallback = self._by_type.get, self._fallback
            return (f"{columns[0]} IN ("
                    + ",".join([get(type(k[0]), fallback)(k[0]) for k in keys]) + ")")
        row = self.row
        return f"({', '.join(columns)}) IN (" + ",".join([row(k) for k in keys]) + ")"

    def execute_many(self, cur: Any, head: str, rows: Iterable[Sequence[Any]],
                     tail: str = "") -> int:
        """``head VALUES (row),(row)... tail``, in as few statements as the cursor's
        ``max_stmt_length`` allows (see :meth:`statements`); the rows affected."""
        return sum(cur.execute(sql) for sql, _ in self.statements(cur, head, rows, tail))

    def statements(self, cur: Any, head: str, rows: Iterable[Sequence[Any]],
                   tail: str = "") -> Iterator[tuple[str, int]]:
        """``(head VALUES (row),(row)... tail, rows in it)``, each as long as the cursor's
        ``max_stmt_length`` allows (as pymysql's ``executemany`` splits them, counting
        bytes: here characters, four bytes each at most in utf8mb4)."""
        limit = int(cur.max_stmt_length) // 4
        parts: list[str] = []
        size = len(head) + len(tail) + 8
        start = size
        row = self.row
        for values in rows:
            text = row(values)
            if parts and size + len(text) + 1 > limit:
                yield head + " VALUES " + ",".join(parts) + tail, len(parts)
                parts, size = [], start
            parts.append(text)
            size += len(text) + 1
        if parts:
            yield head + " VALUES " + ",".join(parts) + tail, len(parts)
