"""What the rows already in a MariaDB/MySQL table hold in a column added since.

``ALTER TABLE ... ADD COLUMN c ... DEFAULT v`` fills every row there with ``v``
and logs no row change (the binlog has the statement only). A PostgreSQL target
adds the column with ``v`` as its default, so its rows hold it too
(sync/events.py). ``information_schema.COLUMNS.COLUMN_DEFAULT`` gives ``v``
as SQL (MariaDB 10.2.7 and later): a number, a quoted string, ``NULL``, or an
expression (``current_timestamp()``), whose value at the ALTER is not known.
Only values that read the same as PostgreSQL text are carried: numbers,
strings, enums, booleans and dates. Datetimes (a session's zone),
bit and binary columns, and a ``NOT NULL`` column without a default (rows get
the type's zero value, dates ``0000-00-00``) are left out: the run warns
about those as before.
"""

from __future__ import annotations

import re

_NUMBERS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal",
            "numeric", "float", "double", "real"}
_STRINGS = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "json"}
_NUMBER = re.compile(r"-?\d+(\.\d*)?([eE][-+]?\d+)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _unquote(text: str) -> str | None:
    """The value of a single-quoted SQL string as MariaDB shows a default."""
    if len(text) < 2 or not (text.startswith("'") and text.endswith("'")):
        return None
    body, out, i = text[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        elif ch == "'" and body[i + 1:i + 2] == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def prior_value(default: str | None, nullable: bool, data_type: str,
                column_type: str) -> tuple[bool, str | None]:
    """Whether rows older than the column hold one known value, and that value
    (PostgreSQL text; None: NULL)."""
    kind = data_type.lower()
    if default is None:  # no DEFAULT: NULL, or the type's zero value where NOT NULL
        return nullable, None
    if default == "NULL":
        return True, None
    boolean = kind == "tinyint" and column_type.lower().startswith("tinyint(1)")
    if kind in _NUMBERS:
        number = _unquote(default) if default.startswith("'") else default
        if number is None or not _NUMBER.fullmatch(number):
            return False, None
        if boolean:
            return True, "false" if float(number) == 0 else "true"
        return True, number
    value = _unquote(default)
    if value is None:
        return False, None  # an expression
    if kind in _STRINGS:
        return True, value
    if kind == "date" and _DATE.fullmatch(value) and value != "0000-00-00":
        return True, value
    return False, None
