"""Bad suites at ``cdcsync config check`` (a subprocess, exit 2), and ``status`` counting
the quarantine."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.quality.conftest import SUITE, Shop, make_shop
from tests.test_cli_quickstart import cdcsync


def test_config_check_refuses_each_kind_of_bad_suite(tmp_path: Path) -> None:
    shop = make_shop(tmp_path)
    p = str(shop.pipeline)
    assert cdcsync("config", "check", p).stdout.startswith(f"{p}: ok (pipeline 'shop'")
    prefix = f"{shop.pipeline}: entities.customers.quality.suite: {shop.suite}"

    unknown = {"expectations": [*SUITE["expectations"], {
        "type": "expect_column_values_to_be_emails", "kwargs": {"column": "email"}}]}
    shop.suite.write_text(json.dumps(unknown))
    res = cdcsync("config", "check", p, expect=2)
    assert res.stderr.splitlines() == [
        f"{prefix}: expectations[7] (expect_column_values_to_be_emails): unknown expectation "
        "type 'expect_column_values_to_be_emails' (did you mean "
        "'expect_column_values_to_be_in_set'?)"]

    no_column = {"expectations": [{"type": "expect_column_values_to_not_be_null",
                                   "kwargs": {"column": "mail"}}]}
    shop.suite.write_text(json.dumps(no_column))
    res = cdcsync("config", "check", p, expect=2)
    assert res.stderr.splitlines() == [
        f"{prefix}: expectations[0] (expect_column_values_to_not_be_null): column 'mail' does "
        "not exist in the entity (did you mean 'email'?); its columns: amount, email, id, "
        "name, status"]

    shop.suite.write_text('{"expectations": [\n  {"type": "expect_column_values_to_not_be_null"'
                          ' "kwargs": {}}\n]}')
    res = cdcsync("config", "check", p, expect=2)
    assert res.stderr.splitlines() == [
        f"{prefix}:2:50: malformed JSON: Expecting ',' delimiter"]
    assert "Traceback" not in res.stderr


def test_status_counts_open_quarantine_items(shop: Shop) -> None:
    from sync.cli import main

    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", 5, "active")])
    shop.setup()
    shop.run()
    res = CliRunner().invoke(main, ["status", str(shop.pipeline), "--json"])
    assert res.exit_code == 3, res.output  # an item waits for a steward
    info = json.loads(res.stdout)
    assert (info["open_quarantine"], info["open_conflicts"]) == (1, 0)
    text = CliRunner().invoke(main, ["status", str(shop.pipeline)]).stdout
    assert "open quarantine items: 1" in text

    [item] = shop.items()
    CliRunner().invoke(main, ["quarantine", "discard", str(shop.pipeline), str(item["id"]),
                              "--reason", "test account"], catch_exceptions=False)
    res = CliRunner().invoke(main, ["status", str(shop.pipeline), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["open_quarantine"] == 0


def test_run_summary_table_counts_failures_per_expectation(shop: Shop) -> None:
    from sync.cli import main

    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", -5, "active"),
                   (3, "Cy Dunn", "cy@example.com", -3, "active")])
    shop.setup()
    res = CliRunner().invoke(main, ["run", str(shop.pipeline)])
    assert res.exit_code == 3, res.output  # quarantined rows wait for a steward
    text = " ".join(res.stdout.split())
    assert ("customers: 2 quarantined, 0 held (expect_column_values_to_be_between(amount) 2, "
            "expect_column_values_to_match_regex(email) 1); 2 open: cdcsync quarantine "
            "list") in text, text
