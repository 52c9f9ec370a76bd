"""Validating rows with a suite: BOOLEAN_ONLY first, COMPLETE only for what fails.

GX's cost is mostly a fixed cost per expectation and per validation (see
SERVICES.md), so a batch is validated as ONE pandas DataFrame holding only the
columns the suite reads, plus a row-index column. A BOOLEAN_ONLY pass answers
"does anything fail?"; only the expectations that failed are run again with
COMPLETE results, which list every failing row by its row-index value
(``unexpected_index_column_names``). Results are matched to expectations by
the id GX gave each one when the suite was added to the context, never by
their position in the result list (GX reorders them).

A value that cannot be read as its column's logical type (``'abc'`` in a
numeric column of a SQLite table) fails the pseudo-expectation
``cdcsync_value_has_logical_type`` instead of stopping the pipeline.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from conflict.canonical import CoercionError, coerce, key_text, to_json_value
from sync.change import Change
from sync.quality.suite import NESTED_TYPES, Expectation, Suite

ROW = "__cdcsync_row"
COERCION = "cdcsync_value_has_logical_type"
_names = itertools.count(1)
_context: Any = None

#: One failure of one row, JSON-safe: what the quarantine table stores.
Failure = dict[str, Any]


class QualityError(Exception):
    """A suite that cannot be evaluated on this data (GX raised inside an expectation)."""


def gx_context() -> Any:
    """One ephemeral GX context per process: no files, no progress bars, no analytics."""
    global _context
    if _context is None:
        from sync.quality.gximport import import_gx

        gx = import_gx()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        _context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False)))
    return _context


@dataclass
class GateResult:
    """What a batch's validation decided, changes in their batch order."""

    passed: list[Change] = field(default_factory=list)
    quarantined: list[tuple[Change, list[Failure]]] = field(default_factory=list)
    failures: dict[int, list[Failure]] = field(default_factory=dict)  # batch index -> blocking
    counts: Counter[str] = field(default_factory=Counter)  # failing rows per expectation label


def _for_frame(value: Any) -> Any:
    """A typed value as pandas and GX compare it best."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID | dt.time):
        return str(value)
    return value


#: Values already of their logical type's Python class pass without coercion (the
#: common case: connectors deliver typed rows); the class that goes into the frame.
_FAST: dict[str, tuple[type, Any]] = {
    "text": (str, None), "int": (int, None), "float": (float, None),
    "decimal": (decimal.Decimal, float), "any": (object, None),
}


class QualityGate:
    """A loaded suite bound to one entity's logical types."""

    def __init__(self, suite: Suite, types: Mapping[str, str]) -> None:
        from sync.quality.gximport import import_gx, realize

        import_gx()
        realize([e.type for e in suite.expectations])  # here, not in the first batch's thread
        from great_expectations.core.expectation_suite import ExpectationSuite

        self.suite = suite
        self.types = dict(types)
        ctx = gx_context()
        n = next(_names)
        gx_suite = ctx.suites.add(ExpectationSuite(
            name=f"cdcsync-{n}-{suite.name}", expectations=list(suite.gx_expectations)))
        # Ids are assigned by the context: the only safe way to match results.
        self._by_id: dict[str, tuple[Expectation, Any]] = {
            str(obj.id): (exp, obj)
            for exp, obj in zip(suite.expectations, gx_suite.expectations, strict=True)
        }
        self._gx_suite = gx_suite
        source = ctx.data_sources.add_pandas(f"cdcsync-{n}")
        self._batches = source.add_dataframe_asset("changes").add_batch_definition_whole_dataframe(
            "batch")
        if suite.needs_all_columns:
            self.columns = [c for c, t in self.types.items() if t not in NESTED_TYPES]
            self.columns += [c for c in suite.columns if c not in self.columns]
        else:
            self.columns = list(suite.columns)

    # --- rows --------------------------------------------------------------------------

    def check_rows(self, rows: Sequence[Mapping[str, Any]],
                   groups: Callable[[], Sequence[str]] | None = None) -> list[list[Failure]]:
        """The failures of each row (every severity), in the order of ``rows``.

        ``groups`` (giving one key text per row; called only when a uniqueness
        expectation fails) exempts rows that share a value only with other
        versions of their own key from uniqueness expectations.
        """
        if not rows:
            return []
        import pandas as pd

        data, out = self.frame_data(rows)
        data[ROW] = list(range(len(rows)))
        frame = pd.DataFrame(data)
        batch = self._batches.get_batch(batch_parameters={"dataframe": frame})
        quick = batch.validate(self._gx_suite, result_format="BOOLEAN_ONLY")
        failed = [self._match(r) for r in quick.results if not r.success]
        for exp, obj in failed:
            res = batch.validate(obj, result_format={
                "result_format": "COMPLETE", "unexpected_index_column_names": [ROW]})
            self._raise_on_exception(exp, res)
            if res.success:
                continue
            idx = [int(item[ROW]) for item in res.result.get("unexpected_index_list") or []]
            if not idx:
                raise QualityError(f"expectation {exp.label} (#{exp.index} of the suite) failed "
                                   "without naming a failing row")
            if exp.uniqueness and groups is not None:
                idx = _true_duplicates(idx, data, exp.columns, groups())
            for i in idx:
                out[i].append(_failure(exp, rows[i]))
        return out

    def frame_data(self, rows: Sequence[Mapping[str, Any]]
                   ) -> tuple[dict[str, list[Any]], list[list[Failure]]]:
        """The suite's columns of ``rows``, values in their logical types, as a DataFrame's
        data; and each row's failures to be read as its column's type (value left None)."""
        out: list[list[Failure]] = [[] for _ in rows]
        data: dict[str, list[Any]] = {}
        for col in self.columns:
            logical = self.types.get(col, "any")
            fast, convert = _FAST.get(logical, (type(None), None))
            values: list[Any] = []
            for i, row in enumerate(rows):
                v = row.get(col)
                if v is None or type(v) is fast or fast is object:
                    values.append(v if convert is None or v is None else convert(v))
                    continue
                try:
                    values.append(_for_frame(coerce(v, logical)))
                except CoercionError as exc:
                    values.append(None)
                    out[i].append(_coercion_failure(col, v, logical, exc))
            data[col] = values
        return data, out

    @property
    def gx_suite(self) -> Any:
        """The GX ``ExpectationSuite`` this gate validates with (in :func:`gx_context`)."""
        return self._gx_suite

    def _match(self, res: Any) -> tuple[Expectation, Any]:
        found = self._by_id.get(str(res.expectation_config.id))
        if found is None:  # pragma: no cover - GX returned a result for no expectation of ours
            raise QualityError(f"a result for an unknown expectation: {res.expectation_config}")
        self._raise_on_exception(found[0], res)
        return found

    @staticmethod
    def _raise_on_exception(exp: Expectation, res: Any) -> None:
        """GX catches errors inside an expectation; a silent pass must not follow."""
        info = res.exception_info or {}
        # Either one record, or one per metric (keyed by metric id) when a metric failed.
        records = [info] if "raised_exception" in info else list(info.values())
        for rec in records:
            if isinstance(rec, dict) and rec.get("raised_exception"):
                raise QualityError(f"expectation {exp.label} (#{exp.index} of the suite) "
                                   f"failed to run: {rec.get('exception_message')}")

    # --- changes -----------------------------------------------------------------------

    def validate(self, ent: Any, changes: Sequence[Change],
                 keys: Sequence[str] | None = None) -> GateResult:
        """Split ``changes`` into those that pass and those that fail a critical expectation.

        Deletes always pass (there is no row to judge). ``ent`` is the
        :class:`sync.context.EntityContext` (its logical types give the key
        text); ``keys``, the changes' key texts when the caller has them.
        """
        result = GateResult()
        judged: list[int] = []
        rows: list[Mapping[str, Any]] = []
        needed = set(self.columns)
        for i, ch in enumerate(changes):
            row = ch.content
            if row is None:
                continue
            if ch.before is not None and not needed <= row.keys():
                row = {**ch.before, **row}  # columns a log leaves out (unchanged TOAST)
            judged.append(i)
            rows.append(row)

        def groups() -> list[str]:
            if keys is not None:
                return [keys[i] for i in judged]
            types = getattr(ent, "types", self.types)
            return [key_text({c: coerce(v, types.get(c, "any"))
                              for c, v in changes[i].key.items()}) for i in judged]

        verdicts = self.check_rows(rows, groups)
        for i, fails in zip(judged, verdicts, strict=True):
            for f in fails:
                result.counts[f["expectation_label"]] += 1
            blocking = [f for f in fails if f["severity"] == "critical"]
            if blocking:
                result.failures[i] = blocking
        for i, ch in enumerate(changes):
            if i in result.failures:
                result.quarantined.append((ch, result.failures[i]))
            else:
                result.passed.append(ch)
        return result


def _failure(exp: Expectation, row: Mapping[str, Any]) -> Failure:
    kwargs = {k: v for k, v in exp.kwargs.items() if k != "batch_id"}
    return {
        "expectation": exp.type,
        "expectation_label": exp.label,
        "index": exp.index,
        "kwargs": kwargs,  # read from the suite's JSON: JSON already
        "columns": list(exp.columns),
        "observed": {c: to_json_value(row.get(c)) for c in exp.columns},
        "severity": exp.severity,
    }


def _coercion_failure(col: str, value: Any, logical: str, exc: Exception) -> Failure:
    return {
        "expectation": COERCION,
        "expectation_label": f"{COERCION}({col})",
        "index": None,
        "kwargs": {"column": col, "type": logical},
        "columns": [col],
        "observed": {col: _json_safe(value)},
        "severity": "critical",
        "message": str(exc),
    }


def _json_safe(v: Any) -> Any:
    try:
        return to_json_value(v)
    except TypeError:
        return repr(v)


def _true_duplicates(idx: list[int], data: Mapping[str, list[Any]],
                     columns: Sequence[str], groups: Sequence[str]) -> list[int]:
    """Rows whose value is shared with a row of ANOTHER key (versions of one key are not)."""
    by_value: dict[str, list[int]] = {}
    for i in idx:
        value = repr([data[c][i] for c in columns])
        by_value.setdefault(value, []).append(i)
    keep: list[int] = []
    for members in by_value.values():
        if len({groups[i] for i in members}) > 1:
            keep.extend(members)
    return sorted(keep)
