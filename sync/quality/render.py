"""Human output of ``cdcsync quarantine``: the list of items and one item in full."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from conflict.canonical import row_from_json


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(v: Any) -> str:
    from sync.review.format import json_cell

    return json_cell(v).text


def failure_text(f: Mapping[str, Any]) -> str:
    """``expect_column_values_to_be_between(amount): amount=-3 (min_value=0)``."""
    seen = ", ".join(f"{c}={_value(v)}" for c, v in (f.get("observed") or {}).items())
    args = ", ".join(f"{k}={json.dumps(v)}" for k, v in (f.get("kwargs") or {}).items()
                     if k not in ("column", "column_A", "column_B", "column_list"))
    tail = f" ({args})" if args else ""
    extra = f" [{f['severity']}]" if f.get("severity", "critical") != "critical" else ""
    return f"{f.get('expectation_label') or f.get('expectation')}: {seen}{tail}{extra}"


def item_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item for ``--json``: the stored change decoded to plain JSON values."""
    out = dict(item)
    out["position"] = json.loads(item["position"]) if item.get("position") else None
    return out


def items_table(items: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for col in ("id", "entity", "key", "from", "op", "status", "failed expectations", "since"):
        t.add_column(col)
    for it in items:
        labels = sorted({f.get("expectation_label") or f.get("expectation", "?")
                         for f in it["failures"]})
        t.add_row(str(it["id"]), it["entity"], it["key"], it["endpoint"], it["op"],
                  it["status"], "\n".join(labels) or "-", _when(it["created_at"]))
    if not items:
        t.caption = "nothing in quarantine"
    return t


def item_detail(item: Mapping[str, Any], held: list[dict[str, Any]]) -> Group:
    change = item["change"]
    head = Text.assemble(
        (f"#{item['id']} ", "bold"), f"{item['entity']} {item['key']} from {item['endpoint']} "
        f"({item['op']}), {item['status']}",
    )
    parts: list[Any] = [head, Text(f"captured {_when(item['created_at'])}"
                                   + (f" at position {item['position']}"
                                      if item.get("position") else " by the initial snapshot"))]
    fails = Table(title="failed expectations")
    fails.add_column("expectation")
    fails.add_column("observed")
    fails.add_column("arguments")
    for f in item["failures"]:
        fails.add_row(f.get("expectation_label", f.get("expectation", "?")),
                      ", ".join(f"{c}={_value(v)}" for c, v in (f.get("observed") or {}).items()),
                      json.dumps(f.get("kwargs", {})))
    parts.append(fails)
    rows = Table(title="the change")
    rows.add_column("column")
    rows.add_column("before")
    rows.add_column("after")
    before = row_from_json(change.get("before")) or {}
    after = row_from_json(change.get("after")) or {}
    failing = {c for f in item["failures"] for c in f.get("columns", [])}
    for col in dict.fromkeys([*before, *after]):
        style = "bold red" if col in failing else ""
        rows.add_row(Text(col, style=style), _value(before.get(col)) if before else "-",
                     Text(_value(after.get(col)) if after else "∅ (deleted)", style=style))
    parts.append(rows)
    if item.get("decided_at"):
        parts.append(Text(f"{item['status']} by {item.get('decided_by')} at "
                          f"{_when(item['decided_at'])}: {item.get('reason') or '-'}"))
    if held:
        parts.append(Text(f"held behind it: {', '.join('#' + str(h['id']) for h in held)}"))
    return Group(*parts)
