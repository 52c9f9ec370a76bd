"""The gate on batches of changes: realistic bad data, each failure on the right row."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sync.change import Change, Op
from sync.quality.gate import COERCION, QualityError, QualityGate
from sync.quality.suite import load_suite
from tests.quality.conftest import SUITE

TYPES = {"id": "int", "name": "text", "email": "text", "amount": "decimal", "status": "text"}
ENT = SimpleNamespace(types=TYPES)


def gate(tmp_path: Path, suite: dict[str, Any] = SUITE) -> QualityGate:
    p = tmp_path / "suite.json"
    p.write_text(json.dumps(suite))
    return QualityGate(load_suite(p, set(TYPES), TYPES), TYPES)


def change(key: int, pos: int, op: Op = Op.UPDATE, **row: Any) -> Change:
    after = None if op is Op.DELETE else {
        "id": key, "name": "Ann Lee", "email": f"c{key}@example.com", "amount": "10.00",
        "status": "active", **row}
    return Change("customers", {"id": key}, op, None, after, "crm", (pos,), 1000.0 + pos)


def labels(fails: list[dict[str, Any]]) -> list[str]:
    return sorted(f["expectation_label"] for f in fails)


def test_clean_batch_passes_whole(tmp_path: Path) -> None:
    batch = [change(k, k) for k in range(1, 200)]
    res = gate(tmp_path).validate(ENT, batch)
    assert res.passed == batch and res.quarantined == [] and not res.counts


def test_each_kind_of_bad_row_fails_its_own_expectation(tmp_path: Path) -> None:
    batch = [
        change(1, 1),
        change(2, 2, email="bob-at-example.com"),             # malformed e-mail
        change(3, 3, amount="-12.50"),                         # negative amount
        change(4, 4, name=None),                               # null in a required field
        change(5, 5, status="suspended"),                      # outside the value set
        change(6, 6, name="X" * 41),                           # over-long string
        change(7, 7, email=None),                              # null e-mail
        change(8, 8, email="twin@example.com"),                # duplicate (with 9)
        change(9, 9, email="twin@example.com"),
        change(10, 10, Op.DELETE),                             # deletes have no row to judge
        change(11, 11),
    ]
    res = gate(tmp_path).validate(ENT, batch)
    assert [c.key["id"] for c in res.passed] == [1, 10, 11]
    got = {c.key["id"]: labels(f) for c, f in res.quarantined}
    assert got == {
        2: ["expect_column_values_to_match_regex(email)"],
        3: ["expect_column_values_to_be_between(amount)"],
        4: ["expect_column_values_to_not_be_null(name)"],
        5: ["expect_column_values_to_be_in_set(status)"],
        6: ["expect_column_value_lengths_to_be_between(name)"],
        7: ["expect_column_values_to_not_be_null(email)"],
        8: ["expect_column_values_to_be_unique(email)"],
        9: ["expect_column_values_to_be_unique(email)"],
    }
    by_key = {c.key["id"]: f for c, f in res.quarantined}
    [neg] = by_key[3]
    assert neg["observed"] == {"amount": "-12.50"}
    assert neg["kwargs"] == {"column": "amount", "min_value": 0}
    assert neg["expectation"] == "expect_column_values_to_be_between"
    assert res.counts["expect_column_values_to_be_unique(email)"] == 2
    assert sum(res.counts.values()) == 8


def test_versions_of_one_key_in_a_batch_are_not_duplicates(tmp_path: Path) -> None:
    batch = [change(1, 1, name="Ann"), change(1, 2, name="Ann Lee"), change(2, 3)]
    res = gate(tmp_path).validate(ENT, batch)
    assert res.passed == batch


def test_several_failures_of_one_row_are_all_reported(tmp_path: Path) -> None:
    res = gate(tmp_path).validate(ENT, [change(1, 1, email="nope", amount=-1, status="x")])
    [(_, fails)] = res.quarantined
    assert labels(fails) == ["expect_column_values_to_be_between(amount)",
                             "expect_column_values_to_be_in_set(status)",
                             "expect_column_values_to_match_regex(email)"]


def test_a_value_that_is_not_of_its_type_is_quarantined(tmp_path: Path) -> None:
    res = gate(tmp_path).validate(ENT, [change(1, 1, amount="ten"), change(2, 2)])
    [(bad, fails)] = res.quarantined
    assert bad.key == {"id": 1}
    assert [f["expectation"] for f in fails] == [COERCION]
    assert fails[0]["observed"] == {"amount": "ten"}


def test_warning_severity_counts_but_does_not_quarantine(tmp_path: Path) -> None:
    suite = {"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_between", "severity": "warning",
         "kwargs": {"column": "amount", "max_value": 1000}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}}]}
    res = gate(tmp_path, suite).validate(ENT, [change(1, 1, amount=Decimal("5000")),
                                               change(2, 2, email=None)])
    assert [c.key["id"] for c in res.passed] == [1]
    assert res.counts == {"expect_column_values_to_be_between(amount)": 1,
                          "expect_column_values_to_not_be_null(email)": 1}


def test_results_are_matched_by_expectation_not_position(tmp_path: Path) -> None:
    # GX runs the uniqueness check apart from the others and lists its result
    # out of the suite's order; a positional match would blame the wrong rule.
    suite = {"name": "s", "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "email"}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount",
                                                                  "min_value": 0}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "status",
                                                                 "value_set": ["active"]}}]}
    res = gate(tmp_path, suite).validate(ENT, [change(1, 1, amount=-1), change(2, 2)])
    [(bad, fails)] = res.quarantined
    assert bad.key == {"id": 1}
    assert labels(fails) == ["expect_column_values_to_be_between(amount)"]


def test_an_expectation_that_cannot_run_stops_the_batch(tmp_path: Path) -> None:
    # GX catches the error inside the expectation and reports a failure that
    # names no row: passing the batch on would let every row through unjudged.
    # (With the entity's types known, check_suite refuses this suite up front.)
    p = tmp_path / "suite.json"
    p.write_text(json.dumps({"name": "s", "expectations": [
        {"type": "expect_column_values_to_match_strftime_format",
         "kwargs": {"column": "amount", "strftime_format": "%Y"}}]}))
    g = QualityGate(load_suite(p), TYPES)
    with pytest.raises(QualityError, match=r"strftime_format\(amount\) \(#0 of the suite\) "
                                           r"failed to run: Values passed"):
        g.validate(ENT, [change(1, 1)])


def test_boolean_only_first_and_complete_only_for_the_failing_expectations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cheap path: one BOOLEAN_ONLY pass per batch; COMPLETE only for what failed."""
    from great_expectations.datasource.fluent.interfaces import Batch

    calls: list[tuple[str, str]] = []
    real = Batch.validate

    def recorded(self: Any, expect: Any, *args: Any, **kwargs: Any) -> Any:
        fmt = kwargs.get("result_format")
        level = fmt if isinstance(fmt, str) else fmt["result_format"]
        what = "suite" if hasattr(expect, "expectations") else expect.expectation_type
        calls.append((level, what))
        return real(self, expect, *args, **kwargs)

    monkeypatch.setattr(Batch, "validate", recorded)
    g = gate(tmp_path)
    g.validate(ENT, [change(k, k) for k in range(1, 100)])
    assert calls == [("BOOLEAN_ONLY", "suite")]

    calls.clear()
    res = g.validate(ENT, [change(1, 1), change(2, 2, email="bob-at-example.com"),
                           change(3, 3, amount="-1"), change(4, 4, amount="-2")])
    assert [c.key["id"] for c, _ in res.quarantined] == [2, 3, 4]
    assert calls[0] == ("BOOLEAN_ONLY", "suite")
    assert sorted(calls[1:]) == [("COMPLETE", "expect_column_values_to_be_between"),
                                 ("COMPLETE", "expect_column_values_to_match_regex")]
