"""Statements in the binlog that change a table's shape or empty it.

In ROW format, DDL and TRUNCATE are still logged as statements (a query event
in a group of its own). The source finds the bound tables they touch, to
describe those tables afresh and to report truncates and table-level DDL
(:mod:`connectors.mysql.events`); the rows around them need nothing special,
since every row event is decoded with the table map written just before it.
"""

from __future__ import annotations

import re

_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_QUALIFIED = rf"({_NAME}(?:\s*\.\s*{_NAME})?)"
_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*|#[^\n]*", re.DOTALL)
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("alter", re.compile(rf"^ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?"
                         rf"{_QUALIFIED}", re.IGNORECASE)),
    ("truncate", re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?{_QUALIFIED}", re.IGNORECASE)),
    ("create", re.compile(rf"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+"
                          rf"(?:IF\s+NOT\s+EXISTS\s+)?{_QUALIFIED}", re.IGNORECASE)),
)
_DROP = re.compile(r"^DROP\s+(?:TEMPORARY\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?(.*)$",
                   re.IGNORECASE | re.DOTALL)
_RENAME = re.compile(r"^RENAME\s+TABLES?\s+(.*)$", re.IGNORECASE | re.DOTALL)
_RENAME_PAIR = re.compile(rf"{_QUALIFIED}\s+TO\s+{_QUALIFIED}", re.IGNORECASE)
_LIST_ITEM = re.compile(_QUALIFIED)


def _unquote(name: str) -> str:
    name = name.strip()
    if name.startswith("`"):
        return name[1:-1].replace("``", "`")
    return name


def _split(qualified: str, default_db: str) -> tuple[str, str]:
    parts = re.findall(_NAME, qualified)
    if len(parts) == 2:
        return _unquote(parts[0]), _unquote(parts[1])
    return default_db, _unquote(parts[0])


def tables_touched(query: str, default_db: str) -> list[tuple[str, str, str]]:
    """``(kind, database, table)`` for every table a DDL/TRUNCATE statement touches
    (both names of a rename)."""
    text = _COMMENTS.sub(" ", query).strip()
    for kind, pattern in _PATTERNS:
        m = pattern.match(text)
        if m:
            return [(kind, *_split(m.group(1), default_db))]
    m = _RENAME.match(text)
    if m:
        out = []
        for a, b in _RENAME_PAIR.findall(m.group(1)):
            out.append(("rename", *_split(a, default_db)))
            out.append(("rename", *_split(b, default_db)))
        return out
    m = _DROP.match(text)
    if m:
        items = re.split(r"\s+(?:RESTRICT|CASCADE)\s*$", m.group(1), flags=re.IGNORECASE)[0]
        return [("drop", *_split(x, default_db)) for x in _LIST_ITEM.findall(items)]
    return []
