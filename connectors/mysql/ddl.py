"""Statements in the binlog that change a table's shape or empty it, or write rows.

In ROW format, DDL and TRUNCATE are still logged as statements (a query event
in a group of its own). The source finds the bound tables they touch, to
describe those tables afresh and to report truncates and table-level DDL
(:mod:`connectors.mysql.events`); the rows around them need nothing special,
since every row event is decoded with the table map written just before it.

Rows written by a statement logged as such (a session's ``binlog_format`` set
to STATEMENT or MIXED, a table MariaDB versions by transaction id) are in no
row event: :func:`tables_written` names the tables such a statement may write,
so that the source stops instead of passing them by.
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
    # (a table made anew over one that was there: its rows go without a row event)
    ("replace", re.compile(rf"^CREATE\s+OR\s+REPLACE\s+TABLE\s+{_QUALIFIED}", re.IGNORECASE)),
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


_INSERT = re.compile(rf"^(?:INSERT|REPLACE)\b"
                     rf"(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE)\b)*"
                     rf"\s*(?:INTO\b)?\s*{_QUALIFIED}", re.IGNORECASE)
_LOAD = re.compile(rf"^LOAD\s+(?:DATA|XML)\b.*?\bINTO\s+TABLE\s+{_QUALIFIED}",
                   re.IGNORECASE | re.DOTALL)
_UPDATE = re.compile(r"^UPDATE\b(?:\s+(?:LOW_PRIORITY|IGNORE)\b)*(.*?)\bSET\b",
                     re.IGNORECASE | re.DOTALL)
_DELETE = re.compile(r"^DELETE\b(?:\s+(?:LOW_PRIORITY|QUICK|IGNORE|HISTORY)\b)*(.*?)"
                     r"(?:\bWHERE\b|\bORDER\s+BY\b|\bLIMIT\b|\bRETURNING\b|$)",
                     re.IGNORECASE | re.DOTALL)
_HISTORY = re.compile(r"^DELETE\s+HISTORY\b", re.IGNORECASE)
#: words of a table-reference list that name no table
_NOT_TABLES = frozenset((
    "from", "using", "join", "inner", "left", "right", "outer", "cross", "natural",
    "straight_join", "on", "as", "and", "or", "not", "is", "null", "in", "like", "between",
    "for", "system_time", "all", "to", "of", "partition"))


def tables_written(query: str, default_db: str) -> list[tuple[str, str, str]]:
    """``(verb, database, table)`` for the tables a DML statement may write (the whole
    table-reference list of a multi-table UPDATE or DELETE, which may also name tables
    it only reads, and columns of its join conditions; a statement starting ``WITH``:
    every name in it). Empty for any other statement."""
    text = _COMMENTS.sub(" ", query).strip()
    verb = text.split(None, 1)[0].upper() if text else ""
    if _HISTORY.match(text):
        return []  # (a system-versioned table's history rows: no current row changes)
    if verb in ("INSERT", "REPLACE", "LOAD"):
        m = (_LOAD if verb == "LOAD" else _INSERT).match(text)
        return [(verb, *_split(m.group(1), default_db))] if m else []
    if verb in ("UPDATE", "DELETE"):
        m = (_UPDATE if verb == "UPDATE" else _DELETE).match(text)
        refs = m.group(1) if m else text
    elif verb == "WITH":
        refs = text
    else:
        return []
    return [(verb, *_split(name, default_db)) for name in _LIST_ITEM.findall(refs)
            if name.lower() not in _NOT_TABLES]
