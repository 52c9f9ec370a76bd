"""Key states as two runs of one snapshot can compare them (tests of the direct snapshot)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def comparable_states(db: Path, *, positions: bool = True) -> dict[str, Any]:
    """The key states of the SQLite state store ``db`` without what differs between
    runs made at other times or against other databases: the snapshot's read time and
    the row versions the targets gave our writes (present or not); with ``positions``
    false, the log positions of those writes too (other databases' WAL)."""
    with sqlite3.connect(db) as c:
        got = dict(c.execute("SELECT key, state FROM key_states").fetchall())
    c.close()
    out = {}
    for k, text in got.items():
        st = json.loads(text)
        st.pop("t")
        for e in st["e"].values():
            e["r"] = e["r"] is not None
            if not positions and "w" in e:
                e["w"] = e["w"] is not None
        out[k] = st
    return out
