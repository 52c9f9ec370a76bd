"""What ``cdcsync config check`` can call: every suite problem of a pipeline, with its field."""

from __future__ import annotations

import json
from pathlib import Path

from sync.quality.check import check_pipeline_suites
from tests.quality.conftest import SUITE, make_shop


def test_a_good_suite_has_no_problems(tmp_path: Path) -> None:
    assert check_pipeline_suites(make_shop(tmp_path).cfg()) == []


def test_columns_are_checked_against_the_endpoints_real_columns(tmp_path: Path) -> None:
    suite = json.loads(json.dumps(SUITE))
    suite["expectations"][0]["kwargs"]["column"] = "mail"
    suite["expectations"].append({"type": "expect_column_values_to_not_be_null",
                                  "kwargs": {"column": "note"}})  # exists, but not synced
    shop = make_shop(tmp_path, suite=suite)
    problems = check_pipeline_suites(shop.cfg())
    prefix = f"entities.customers.quality.suite: {shop.suite}: "
    assert problems == [
        prefix + "expectations[0] (expect_column_values_to_not_be_null): column 'mail' does "
        "not exist in the entity (did you mean 'email'?); its columns: amount, email, id, "
        "name, status",
        prefix + "expectations[7] (expect_column_values_to_not_be_null): column 'note' does "
        "not exist in the entity; its columns: amount, email, id, name, status"]
    # Without reading the endpoints, the entity's include list still tells.
    assert len(check_pipeline_suites(shop.cfg(), read_schemas=False)) == 2


def test_malformed_and_unknown_are_reported_per_entity(tmp_path: Path) -> None:
    shop = make_shop(tmp_path)
    shop.suite.write_text('{"expectations": [{"type": "expect_column_values_to_be_emails", '
                          '"kwargs": {"column": "email"}}]}')
    [problem] = check_pipeline_suites(shop.cfg())
    assert problem.startswith(f"entities.customers.quality.suite: {shop.suite}: "
                              "expectations[0] (expect_column_values_to_be_emails): unknown "
                              "expectation type")
    shop.suite.write_text('{"expectations": ')
    assert check_pipeline_suites(shop.cfg()) == [
        f"entities.customers.quality.suite: {shop.suite}:1:18: malformed JSON: Expecting value"]
    shop.suite.unlink()
    assert check_pipeline_suites(shop.cfg()) == [
        f"entities.customers.quality.suite: {shop.suite}: suite file not found"]


def test_a_run_with_a_bad_suite_fails_with_the_problems(tmp_path: Path) -> None:
    import pytest

    from sync.quality.suite import SuiteError

    shop = make_shop(tmp_path)
    shop.crm("INSERT INTO customers (id, name, email) VALUES (1, 'Ann', 'ann@example.com')")
    shop.setup()
    shop.suite.write_text('{"expectations": [{"type": "expect_bogus", "kwargs": {}}]}')
    with pytest.raises(SuiteError, match=r"expectations\[0\] \(expect_bogus\): unknown"):
        shop.run()
    assert shop.client(1) is None
