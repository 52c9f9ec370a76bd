"""Suite files: every problem reported with the file and the expectation, never dropped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.quality.suite import SuiteError, check_suite, load_suite
from tests.quality.conftest import SUITE

COLUMNS = {"id", "name", "email", "amount", "status"}


def write(tmp_path: Path, data: Any, name: str = "suite.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return p


def one(etype: str, **kwargs: Any) -> dict[str, Any]:
    return {"name": "s", "expectations": [{"type": etype, "kwargs": kwargs}]}


def test_the_shop_suite_loads_with_every_expectation(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, SUITE), COLUMNS)
    assert [e.type for e in suite.expectations] == [e["type"] for e in SUITE["expectations"]]
    assert suite.columns == ("amount", "email", "name", "status")
    assert suite.expectations[1].label == "expect_column_values_to_match_regex(email)"


def test_unknown_expectation_type_is_an_error_naming_file_and_type(tmp_path: Path) -> None:
    p = write(tmp_path, one("expect_column_values_to_be_emails", column="email"))
    assert check_suite(p, COLUMNS) == [
        f"{p}: expectations[0] (expect_column_values_to_be_emails): unknown expectation type "
        "'expect_column_values_to_be_emails' (did you mean "
        "'expect_column_values_to_be_in_set'?)"]


def test_unknown_type_among_good_ones_is_not_silently_dropped(tmp_path: Path) -> None:
    data = json.loads(json.dumps(SUITE))
    data["expectations"].insert(2, {"type": "expect_nothing_at_all", "kwargs": {}})
    with pytest.raises(SuiteError) as err:
        load_suite(write(tmp_path, data), COLUMNS)
    assert err.value.problems == [
        f"{tmp_path / 'suite.json'}: expectations[2] (expect_nothing_at_all): unknown "
        "expectation type 'expect_nothing_at_all'"]


def test_a_column_the_entity_does_not_have(tmp_path: Path) -> None:
    p = write(tmp_path, one("expect_column_values_to_not_be_null", column="e_mail"))
    assert check_suite(p, COLUMNS) == [
        f"{p}: expectations[0] (expect_column_values_to_not_be_null): column 'e_mail' does not "
        "exist in the entity (did you mean 'email'?); its columns: amount, email, id, name, "
        "status"]
    assert check_suite(p, None) == []  # columns unknown: not checked


@pytest.mark.parametrize(("text", "where"), [
    ('{"name": "s", "expectations": [', "1:32"),
    ('{"name": "s",\n "expectations": [{"type": "x",}]}', "2:32"),
    ("", "1:1"),
])
def test_malformed_json_gives_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    p = write(tmp_path, text)
    [problem] = check_suite(p, COLUMNS)
    assert problem.startswith(f"{p}:{where}: malformed JSON: ")


def test_shape_problems(tmp_path: Path) -> None:
    assert check_suite(write(tmp_path, [1, 2]), COLUMNS) == [
        f"{tmp_path / 'suite.json'}: a suite is a JSON object with an 'expectations' list, "
        "not a list"]
    assert check_suite(write(tmp_path, {"name": "s"}), COLUMNS) == [
        f"{tmp_path / 'suite.json'}: 'expectations' should be a list of expectations"]
    assert check_suite(write(tmp_path, {"expectations": []}), COLUMNS) == [
        f"{tmp_path / 'suite.json'}: the suite has no expectations"]
    assert check_suite(tmp_path / "missing.json", COLUMNS) == [
        f"{tmp_path / 'missing.json'}: suite file not found"]


def test_gx_0x_files_are_explained(tmp_path: Path) -> None:
    p = write(tmp_path, {"expectation_suite_name": "s", "expectations": [
        {"expectation_type": "expect_column_values_to_not_be_null",
         "kwargs": {"column": "email"}}]})
    assert check_suite(p, COLUMNS) == [
        f"{p}: expectations[0]: 'expectation_type' is the GX 0.x name; GX 1.x calls it 'type'"]


def test_aggregate_and_order_dependent_expectations_are_refused(tmp_path: Path) -> None:
    mean = check_suite(write(tmp_path, one("expect_column_mean_to_be_between", column="amount",
                                           min_value=0)), COLUMNS)
    assert len(mean) == 1 and "not a row-level expectation" in mean[0]
    rows = check_suite(write(tmp_path, one("expect_table_row_count_to_be_between",
                                           min_value=1)), COLUMNS)
    assert len(rows) == 1 and "not a row-level expectation" in rows[0]
    inc = check_suite(write(tmp_path, one("expect_column_values_to_be_increasing",
                                          column="id")), COLUMNS)
    assert inc == [f"{tmp_path / 'suite.json'}: expectations[0] "
                   "(expect_column_values_to_be_increasing): depends on the order of the rows "
                   "in a batch, so it cannot judge one change"]


def test_mostly_would_let_bad_rows_through(tmp_path: Path) -> None:
    p = write(tmp_path, one("expect_column_values_to_not_be_null", column="email", mostly=0.9))
    [problem] = check_suite(p, COLUMNS)
    assert "'mostly' would let a batch through with failing rows in it" in problem


def test_invalid_arguments_are_named(tmp_path: Path) -> None:
    p = write(tmp_path, one("expect_column_values_to_be_between", column="amount", minimum=0))
    assert check_suite(p, COLUMNS) == [
        f"{p}: expectations[0] (expect_column_values_to_be_between): invalid: minimum: extra "
        "fields not permitted; __root__: min_value and max_value cannot both be None"]
    p = write(tmp_path, {"expectations": [{"type": "expect_column_values_to_not_be_null",
                                           "kwargs": {"column": "email"}, "severity": "fatal"}]})
    [problem] = check_suite(p, COLUMNS)
    assert "(expect_column_values_to_not_be_null): invalid: severity: value is not a valid " \
           "enumeration member" in problem


def test_nested_columns_are_refused(tmp_path: Path) -> None:
    p = write(tmp_path, one("expect_column_values_to_not_be_null", column="tags"))
    assert check_suite(p, {"tags"}, {"tags": "json"}) == [
        f"{p}: expectations[0] (expect_column_values_to_not_be_null): column 'tags' holds json "
        "values (nested), which the gate does not validate"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    p = write(tmp_path, {"expectations": [
        {"type": "expect_bogus", "kwargs": {}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}},
        "not an object",
    ]})
    problems = check_suite(p, COLUMNS)
    assert [x.split(": ")[1] for x in problems] == [
        "expectations[0] (expect_bogus)",
        "expectations[1] (expect_column_values_to_not_be_null)",
        "expectations[3]"]


def test_expectations_that_cannot_read_the_column_type(tmp_path: Path) -> None:
    types = {"id": "int", "name": "text", "email": "text", "amount": "decimal",
             "status": "text"}
    p = write(tmp_path, {"expectations": [
        {"type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "amount", "regex": "^[0-9]+$"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "name", "min_value": 0}}]})
    assert check_suite(p, COLUMNS, types) == [
        f"{p}: expectations[0] (expect_column_values_to_match_regex): reads text, but column "
        "'amount' holds decimal values",
        f"{p}: expectations[1] (expect_column_values_to_be_between): compares numbers or "
        "dates, but column 'name' holds text values (for text lengths use "
        "expect_column_value_lengths_to_be_between)"]
