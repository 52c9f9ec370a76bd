"""``cdcsync quarantine ...`` and ``cdcsync quality init`` through the real CLI.

In-process (click's runner): every command a subprocess would pay Great
Expectations' import again (2-10 s); the CLI as a subprocess is covered by
tests/test_cli_quickstart.py, and by test_lazy.py for what it imports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from sync.quality.suite import check_suite
from tests.quality.conftest import Shop, make_shop


def cdcsync(*args: str, expect: int | None = 0) -> Result:
    from sync.cli import main

    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if expect is not None:
        assert res.exit_code == expect, (res.exit_code, res.stdout, res.stderr)
    return res


def as_json(res: Result) -> Any:
    return json.loads(res.stdout)


def test_quarantine_list_show_replay_discard(shop: Shop) -> None:
    p = str(shop.pipeline)
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", 5, "active"),
                   (3, "Cy Dunn", "cy@example.com", -3, "active")])
    cdcsync("setup", p)
    run = as_json(cdcsync("run", p, "--json", expect=None))
    assert run["status"] == "attention"
    assert run["quality"][0]["failures"] == {
        "expect_column_values_to_match_regex(email)": 1,
        "expect_column_values_to_be_between(amount)": 1}

    items = as_json(cdcsync("quarantine", "list", p, "--json"))
    assert [(i["key"], i["status"]) for i in items] == [
        ('{"id":2}', "quarantined"), ('{"id":3}', "quarantined")]
    bob, cy = items[0]["id"], items[1]["id"]

    shown = cdcsync("quarantine", "show", p, str(bob)).stdout
    assert "expect_column_values_to_match_regex(email)" in shown
    assert "bob-at-example.com" in shown
    table = cdcsync("quarantine", "list", p).stdout
    assert "expect_column_values_to_be_between(amount)" in table

    refused = cdcsync("quarantine", "replay", p, str(bob), expect=1)
    assert "still fails the suite; it stays quarantined" in refused.stderr
    assert "email=bob-at-example.com" in refused.stderr

    no_reason = cdcsync("quarantine", "replay", p, str(cy), "--accept", expect=2)
    assert "accept needs a reason (--reason)" in no_reason.stderr
    accepted = cdcsync("quarantine", "replay", p, str(cy), "--accept", "--reason",
                       "refund owed", "--by", "ops")
    assert accepted.stdout.startswith(f"#{cy} accepted by ops: applied to 1 endpoint row(s)")
    assert shop.client(3) == ("Cy Dunn", "cy@example.com", -3, "active")

    discarded = as_json(cdcsync("quarantine", "discard", p, str(bob), "--reason",
                                "test account", "--json"))
    assert (discarded["status"], discarded["applied"]) == ("discarded", 0)
    assert shop.client(2) is None
    again = cdcsync("quarantine", "discard", p, str(bob), "--reason", "x", expect=2)
    assert f"item #{bob} is already discarded" in again.stderr
    missing = cdcsync("quarantine", "show", p, "999", expect=2)
    assert "no quarantine item #999" in missing.stderr

    assert cdcsync("quarantine", "list", p, "--json").stdout.strip() == "[]"
    every = as_json(cdcsync("quarantine", "list", p, "--all", "--json"))
    assert [(i["status"], i["reason"], i["decided_by"]) for i in every] == [
        ("discarded", "test account", os.environ.get("USER") or "steward"),
        ("accepted", "refund owed", "ops")]


def test_quality_init_proposes_a_suite_from_real_rows(tmp_path: Path) -> None:
    shop = make_shop(tmp_path, suite=None)
    rows = [(i, f"Customer {i:03d}", f"c{i}@example.com", i * 1.5,
             ("active", "paused", "closed")[i % 3], None) for i in range(1, 61)]
    shop.crm.many("INSERT INTO customers VALUES (?,?,?,?,?,?)", rows)
    p = str(shop.pipeline)
    out = cdcsync("quality", "init", p, "customers", "--sample", "50").stdout
    target = tmp_path / "quality" / "customers.json"
    assert out.splitlines() == [
        f"wrote 11 expectations from 50 rows of crm to {target}",
        "use it: add `quality: {suite: quality/customers.json}` to entity 'customers' in "
        f"{shop.pipeline}"]
    suite = json.loads(target.read_text())
    got = {(e["type"], e["kwargs"]["column"]): e["kwargs"] for e in suite["expectations"]}
    assert got[("expect_column_values_to_be_in_set", "status")]["value_set"] == [
        "active", "closed", "paused"]
    assert got[("expect_column_values_to_be_between", "amount")] == {
        "column": "amount", "min_value": 1.5, "max_value": 75}
    assert got[("expect_column_value_lengths_to_be_between", "name")]["max_value"] == 12
    assert ("expect_column_values_to_not_be_null", "email") in got
    assert ("expect_column_values_to_be_in_set", "email") not in got  # high cardinality
    assert ("expect_column_values_to_be_in_set", "id") not in got  # the key
    assert not any(c == "note" for _, c in got)  # not synchronised
    assert check_suite(target, {"id", "name", "email", "amount", "status"}) == []
    exists = cdcsync("quality", "init", p, "customers", expect=2)
    assert "exists; --force overwrites it" in exists.stderr
    cdcsync("quality", "init", p, "nobody", expect=2)


def test_replay_all_lets_what_was_fixed_flow_and_keeps_the_rest(shop: Shop) -> None:
    """After the cause is fixed at the source, one command replays every quarantined
    item: the rows that pass now flow, the others stay quarantined (exit 3)."""
    p = str(shop.pipeline)
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", 5, "active"),
                   (3, "Cy Dunn", "cy-at-example.com", 3, "active"),
                   (4, "Di Fox", "di-at-example.com", 4, "active")])
    cdcsync("setup", p)
    cdcsync("run", p, expect=3)
    assert len(as_json(cdcsync("quarantine", "list", p, "--json"))) == 3
    for args, says in [(["--all", "1"], "name no item"), (["--all", "--accept"], "name no item"),
                       ([], "name the item to replay"), (["--entity", "customers"],
                                                         "--entity goes with --all"),
                       (["--all", "--entity", "nobody"], "no entity of pipeline")]:
        assert says in cdcsync("quarantine", "replay", p, *args, expect=2).stderr, args
    shop.crm("UPDATE customers SET email = 'bob@example.com' WHERE id = 2")
    shop.crm("UPDATE customers SET email = 'cy@example.com' WHERE id = 3")

    out = cdcsync("quarantine", "replay", p, "--all", "--by", "ops", expect=3).stdout
    assert "2 item(s) replayed by ops: applied to 2 endpoint row(s)" in out, out
    assert "1 still fail the suite and stay quarantined" in out, out
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "active")
    assert shop.client(3) == ("Cy Dunn", "cy@example.com", 3, "active")
    assert shop.client(4) is None
    (left,) = as_json(cdcsync("quarantine", "list", p, "--json"))
    assert (left["key"], left["status"]) == ('{"id":4}', "quarantined")

    shop.crm("UPDATE customers SET email = 'di@example.com' WHERE id = 4")
    done = as_json(cdcsync("quarantine", "replay", p, "--all", "--entity", "customers",
                           "--json"))
    assert (done["replayed"], done["failing"], done["applied"]) == (1, [], 1)
    assert shop.client(4) == ("Di Fox", "di@example.com", 4, "active")
    assert cdcsync("quarantine", "list", p, "--json").stdout.strip() == "[]"
    assert cdcsync("run", p, "--json", expect=None).exit_code == 0
