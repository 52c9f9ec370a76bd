"""Great Expectations suites: read from plain JSON, checked, loaded for the gate.

A suite is the JSON GX 1.x writes (``{"name": ..., "expectations": [{"type":
..., "kwargs": {...}}, ...]}``). GX drops an expectation of an unknown type
*silently* (it logs a traceback and goes on with fewer expectations), so every
expectation is checked here one by one before the suite is built, and the
built suite is counted again afterwards.

Only **row-level** expectations make sense for a gate that quarantines rows of
micro-batches: column map, column pair and multicolumn expectations, whose
COMPLETE results name the failing rows. Aggregates (mean, row count, ...)
would judge an arbitrary slice of changes, and ``mostly`` would let a batch
through with bad rows in it, so both are reported as problems. Uniqueness
expectations are allowed and judge one batch at a time (successive versions
of one key in a batch are not duplicates of each other).

GX is imported inside the functions: only pipelines with suites pay for it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync.quality.gximport import import_gx

#: Column-map expectations that do not judge a row on its own.
NOT_ROW_LEVEL: dict[str, str] = {
    "expect_column_values_to_be_increasing": "depends on the order of the rows in a batch",
    "expect_column_values_to_be_decreasing": "depends on the order of the rows in a batch",
    "expect_column_value_z_scores_to_be_less_than": "depends on the batch's distribution",
    "expect_column_values_to_not_be_outliers": "depends on the batch's distribution",
}
#: Expectations whose failures are rows sharing a value: versions of one key are exempt.
UNIQUENESS = frozenset({"expect_column_values_to_be_unique",
                        "expect_compound_columns_to_be_unique"})
#: Logical types the gate cannot put in a DataFrame column (nested values).
NESTED_TYPES = frozenset({"json", "array"})
#: Expectations that read text, and the logical types they can read.
TEXTUAL = frozenset({
    "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex",
    "expect_column_values_to_match_regex_list", "expect_column_values_to_not_match_regex_list",
    "expect_column_values_to_match_like_pattern", "expect_column_values_to_not_match_like_pattern",
    "expect_column_values_to_match_like_pattern_list",
    "expect_column_values_to_not_match_like_pattern_list",
    "expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal",
    "expect_column_values_to_match_strftime_format", "expect_column_values_to_be_json_parseable",
    "expect_column_values_to_be_dateutil_parseable", "expect_column_values_to_match_json_schema",
})
TEXT_TYPES = frozenset({"text", "uuid", "any"})
#: Types that ``expect_column_values_to_be_between`` cannot order against numbers or dates.
UNORDERED_TYPES = frozenset({"text", "bool", "json", "array", "bytes", "uuid"})
_EXPECTATION_KEYS = frozenset({"type", "kwargs", "meta", "notes", "description", "severity", "id",
                               "rendered_content"})


class SuiteError(Exception):
    """A suite file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expectation of a suite, as the gate reports it."""

    index: int  # position in the file
    type: str
    kwargs: Mapping[str, Any]
    columns: tuple[str, ...]
    severity: str = "critical"  # critical: quarantines; warning/info: only counted

    @property
    def label(self) -> str:
        """``expect_column_values_to_match_regex(email)``: the name used in reports."""
        return f"{self.type}({', '.join(self.columns)})"

    @property
    def blocking(self) -> bool:
        return self.severity == "critical"

    @property
    def uniqueness(self) -> bool:
        return self.type in UNIQUENESS


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    expectations: tuple[Expectation, ...]
    gx_expectations: tuple[Any, ...] = field(repr=False)  # GX Expectation objects, same order
    needs_all_columns: bool = False  # a row_condition may name any column

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(sorted({c for e in self.expectations for c in e.columns}))


def _columns_of(kwargs: Mapping[str, Any]) -> tuple[str, ...]:
    cols: list[str] = []
    for name in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(name), str):
            cols.append(kwargs[name])
    listed = kwargs.get("column_list")
    if isinstance(listed, list):
        cols.extend(c for c in listed if isinstance(c, str))
    return tuple(dict.fromkeys(cols))


def _read(path: Path) -> tuple[list[str], dict[str, Any] | None]:
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [f"{where}: suite file not found"], None
    except OSError as exc:
        return [f"{where}: cannot read the suite file: {exc.strerror or exc}"], None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"{where}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}"], None
    if not isinstance(data, dict):
        return [f"{where}: a suite is a JSON object with an 'expectations' list, "
                f"not a {type(data).__name__}"], None
    exps = data.get("expectations")
    if not isinstance(exps, list):
        return [f"{where}: 'expectations' should be a list of expectations"], None
    return [], data


def _row_level(cls: Any) -> bool:
    import_gx()
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    return issubclass(cls, ColumnMapExpectation | ColumnPairMapExpectation |
                      MulticolumnMapExpectation)


def _pydantic_lines(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors()]
            return "; ".join(parts)
        except Exception:  # an exception that only looks like pydantic's
            pass
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _type_mismatch(etype: str, cols: tuple[str, ...], types: Mapping[str, str]) -> str | None:
    """GX fails at run time (or passes silently) on these: say so at check time."""
    for col in cols:
        logical = types.get(col)
        if logical is None:
            continue
        if etype in TEXTUAL and logical not in TEXT_TYPES:
            return f"reads text, but column {col!r} holds {logical} values"
        if etype == "expect_column_values_to_be_between" and logical in UNORDERED_TYPES:
            return (f"compares numbers or dates, but column {col!r} holds {logical} values "
                    "(for text lengths use expect_column_value_lengths_to_be_between)")
    return None


def _parse(
    path: Path,
    columns: Collection[str] | None,
    types: Mapping[str, str] | None,
) -> tuple[list[str], Suite | None]:
    problems, data = _read(path)
    if data is None:
        return problems, None
    import_gx()
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import (
        get_expectation_impl,
        list_registered_expectation_implementations,
    )

    known = sorted(list_registered_expectation_implementations())
    where = str(path)
    built: list[tuple[Expectation, Any]] = []
    row_condition = False
    for i, raw in enumerate(data["expectations"]):
        at = f"{where}: expectations[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{at}: should be an object with 'type' and 'kwargs'")
            continue
        if "expectation_type" in raw and "type" not in raw:
            problems.append(f"{at}: 'expectation_type' is the GX 0.x name; GX 1.x calls it "
                            "'type'")
            continue
        etype = raw.get("type")
        if not isinstance(etype, str):
            problems.append(f"{at}: 'type' is missing")
            continue
        at = f"{at} ({etype})"
        extra = sorted(set(raw) - _EXPECTATION_KEYS)
        if extra:
            problems.append(f"{at}: unknown key(s) {', '.join(map(repr, extra))}")
            continue
        try:
            cls = get_expectation_impl(etype)
        except ExpectationNotFoundError:
            close = difflib.get_close_matches(etype, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{at}: unknown expectation type {etype!r}{hint}")
            continue
        if not _row_level(cls):
            problems.append(f"{at}: not a row-level expectation; cdcsync validates "
                            "micro-batches of changes and quarantines rows, so only column map, "
                            "column pair and multicolumn expectations can be used")
            continue
        if etype in NOT_ROW_LEVEL:
            problems.append(f"{at}: {NOT_ROW_LEVEL[etype]}, so it cannot judge one change")
            continue
        kwargs = raw.get("kwargs", {})
        if not isinstance(kwargs, dict):
            problems.append(f"{at}: 'kwargs' should be an object")
            continue
        if kwargs.get("mostly", 1) != 1:
            problems.append(f"{at}: 'mostly' would let a batch through with failing rows in it; "
                            "remove it, or set \"severity\": \"warning\" to count failures only")
            continue
        cols = _columns_of(kwargs)
        missing = [c for c in cols if columns is not None and c not in columns]
        if missing:
            names = sorted(columns or ())
            close = difflib.get_close_matches(missing[0], names, n=1)
            problems.append(
                f"{at}: column {missing[0]!r} does not exist in the entity"
                + (f" (did you mean {close[0]!r}?)" if close else "")
                + f"; its columns: {', '.join(names)}")
            continue
        nested = [c for c in cols if (types or {}).get(c) in NESTED_TYPES]
        if nested:
            problems.append(f"{at}: column {nested[0]!r} holds {(types or {})[nested[0]]} values "
                            "(nested), which the gate does not validate")
            continue
        mismatch = _type_mismatch(etype, cols, types or {})
        if mismatch:
            problems.append(f"{at}: {mismatch}")
            continue
        options = {k: raw[k] for k in ("meta", "notes", "description", "severity") if k in raw}
        try:
            obj = cls(**kwargs, **options)
        except Exception as exc:  # pydantic's ValidationError, GX's own errors
            problems.append(f"{at}: invalid: {_pydantic_lines(exc)}")
            continue
        row_condition = row_condition or bool(kwargs.get("row_condition"))
        severity = str(getattr(obj.severity, "value", obj.severity or "critical"))
        built.append((Expectation(i, etype, dict(kwargs), cols, severity), obj))
    if problems:
        return problems, None
    if not built:
        return [f"{where}: the suite has no expectations"], None
    suite = Suite(path=path, name=str(data.get("name") or path.stem),
                  expectations=tuple(e for e, _ in built),
                  gx_expectations=tuple(o for _, o in built), needs_all_columns=row_condition)
    # GX drops what it cannot build without failing: count what it kept.
    import_gx()
    from great_expectations.core.expectation_suite import ExpectationSuite

    kept = ExpectationSuite(name=suite.name, expectations=list(suite.gx_expectations))
    if len(kept.expectations) != len(data["expectations"]):
        return [f"{where}: Great Expectations kept {len(kept.expectations)} of "
                f"{len(data['expectations'])} expectations"], None
    return [], suite


def check_suite(path: str | Path, columns: Collection[str] | None = None,
                types: Mapping[str, str] | None = None) -> list[str]:
    """Every problem of the suite at ``path`` (empty when it is usable).

    ``columns`` are the entity's column names (``None``: not checked);
    ``types`` their logical types, to refuse nested (json/array) columns.
    """
    problems, _ = _parse(Path(path), columns, types)
    return problems


def load_suite(path: str | Path, columns: Collection[str] | None = None,
               types: Mapping[str, str] | None = None) -> Suite:
    """The suite at ``path``, checked; raises :class:`SuiteError` listing every problem."""
    problems, suite = _parse(Path(path), columns, types)
    if suite is None:
        raise SuiteError(problems)
    return suite
