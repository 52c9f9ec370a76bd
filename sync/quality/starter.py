"""``cdcsync quality init``: a starter suite proposed from a sample of real rows.

The proposal is a draft for a person to review, not a verdict on the data:

* ``expect_column_values_to_not_be_null`` for every column without a null in the sample;
* ``expect_column_values_to_be_in_set`` for low-cardinality columns (at most
  :data:`MAX_SET` distinct values, each seen several times on average);
* ``expect_column_values_to_be_between`` with the sample's min and max for numbers;
* ``expect_column_value_lengths_to_be_between`` with the longest string seen.

Nested (json, array) and binary columns are left out. The suite is written
as GX 1.x JSON, with where it came from in its ``meta``.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from typing import Any

from conflict.canonical import coerce

MAX_SET = 12  # distinct values at most, for a value-set expectation
MIN_REPEAT = 4  # rows per distinct value on average, for a value-set expectation
NUMERIC = frozenset({"int", "float", "decimal"})
SKIPPED = frozenset({"json", "array", "bytes"})


def _plain(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    return v


def propose_suite(name: str, rows: Sequence[Mapping[str, Any]], types: Mapping[str, str],
                  key: Sequence[str], *, source: str = "") -> dict[str, Any]:
    """The starter suite for ``rows`` (entity column names) as a JSON-ready dict."""
    columns = [c for c in types if types[c] not in SKIPPED] or sorted({c for r in rows for c in r})
    exps: list[dict[str, Any]] = []
    for col in columns:
        logical = types.get(col, "any")
        values = [coerce(r.get(col), logical) for r in rows]
        present = [v for v in values if v is not None]
        if rows and len(present) == len(values):
            exps.append(_exp("expect_column_values_to_not_be_null", column=col))
        if not present:
            continue
        if logical in NUMERIC and all(isinstance(v, int | float | decimal.Decimal)
                                      and not isinstance(v, bool) for v in present):
            exps.append(_exp("expect_column_values_to_be_between", column=col,
                             min_value=_plain(min(present)), max_value=_plain(max(present))))
        distinct = {v for v in present if isinstance(v, str | int | bool)}
        if (col not in key and len(distinct) == len(set(map(repr, present)))
                and 0 < len(distinct) <= MAX_SET and len(present) >= MIN_REPEAT * len(distinct)):
            exps.append(_exp("expect_column_values_to_be_in_set", column=col,
                             value_set=sorted(distinct, key=repr)))
        if logical in ("text", "any") and all(isinstance(v, str) for v in present):
            exps.append(_exp("expect_column_value_lengths_to_be_between", column=col,
                             max_value=max(len(v) for v in present)))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    return {
        "name": name,
        "meta": {"cdcsync": {"proposed_from": f"{len(rows)} rows of {source}".strip(),
                             "proposed_at": now,
                             "note": "a draft from a sample: review every bound before use"}},
        "expectations": exps,
    }


def _exp(etype: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": etype, "kwargs": kwargs}


def sample_rows(ctx: Any, ent: Any, endpoint: str, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` rows of ``ent`` at ``endpoint``, read like a snapshot (in key order)."""
    src = ctx.endpoints[endpoint]
    binding = ent.bindings[endpoint]
    out: list[dict[str, Any]] = []
    after = None
    while len(out) < limit:
        chunk = src.snapshot(binding, after, min(limit - len(out), 10_000))
        out.extend(dict(r.row) for r in chunk.rows)
        after = chunk.last_key
        if chunk.done or not chunk.rows:
            break
    return out[:limit]
