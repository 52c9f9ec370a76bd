"""Replay right after the fix at the source, before any run has read the fix.

The replay reads the row back; the fix (and any other edit of the key in between)
is still unread in the source's log. When a later run reads those changes they
are superseded by the read: they must neither be applied again over newer edits
(they would undo a merge and leave the two ends different) nor be quarantined
again.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.quality.conftest import Shop


def cdcsync(*args: str, expect: int = 0) -> str:
    from sync.cli import main

    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert res.exit_code == expect, (res.exit_code, res.stdout, res.stderr)
    return res.stdout


def quarantine_amount(shop: Shop) -> int:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active")])
    shop.setup()
    shop.run()
    shop.billing("UPDATE clients SET amount = -40 WHERE client_id = 1")
    shop.run()
    [item] = shop.items(status="quarantined")
    return int(item["id"])


def test_a_held_edit_from_the_other_side_survives_a_replay_of_an_unread_fix(
    shop: Shop,
) -> None:
    item = quarantine_amount(shop)
    shop.crm("UPDATE customers SET name = 'Ann B. Lee' WHERE id = 1")  # held behind the item
    shop.run()
    assert [(i["endpoint"], i["status"]) for i in shop.items()] == [
        ("billing", "quarantined"), ("crm", "held")]

    shop.billing("UPDATE clients SET amount = 40 WHERE client_id = 1")  # the fix, unread
    cdcsync("quarantine", "replay", str(shop.pipeline), str(item))
    merged = ("Ann B. Lee", "ann@example.com", 40, "active")
    assert shop.customer(1) == shop.client(1) == merged

    after = shop.run()  # reads the fix: superseded by the replay's read
    assert after.total("applied") == 0, after.to_json()
    assert shop.customer(1) == shop.client(1) == merged
    assert shop.run().total("read") == 0
    cdcsync("verify", str(shop.pipeline))
    assert shop.items(status="quarantined") == [] and shop.items(status="held") == []


def test_unread_bad_edits_before_the_fix_are_not_quarantined_again(shop: Shop) -> None:
    item = quarantine_amount(shop)
    shop.billing("UPDATE clients SET amount = -50 WHERE client_id = 1")  # still bad, unread
    shop.billing("UPDATE clients SET amount = 50, status = 'paused' WHERE client_id = 1")
    out = cdcsync("quarantine", "replay", str(shop.pipeline), str(item))
    assert out.startswith(f"#{item} replayed")
    fixed = ("Ann Lee", "ann@example.com", 50, "paused")
    assert shop.customer(1) == shop.client(1) == fixed

    after = shop.run()
    assert after.total("applied") == 0, after.to_json()
    assert after.quality["customers"].quarantined == 0
    assert after.status == "ok"
    assert shop.customer(1) == shop.client(1) == fixed
    # The item, and the unread bad edit recorded as superseded (the good fix is not needed).
    got = [(i["status"], i["change"]["after"]["amount"]) for i in shop.items()]
    assert got == [
        ("replayed", {"$n": "-40"}), ("replayed", {"$n": "-50"})]
    cdcsync("verify", str(shop.pipeline))


def test_a_snapshot_row_replayed_after_an_unread_fix(shop: Shop) -> None:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", 5, "active")])  # bad at the snapshot
    shop.setup()
    shop.run()
    [item] = shop.items(status="quarantined")
    assert item["op"] == "read" and shop.client(2) is None
    shop.crm("UPDATE customers SET email = 'bob@example.com' WHERE id = 2")  # the fix, unread
    cdcsync("quarantine", "replay", str(shop.pipeline), str(item["id"]))
    fixed = ("Bob Ray", "bob@example.com", 5, "active")
    assert shop.customer(2) == shop.client(2) == fixed

    shop.billing("UPDATE clients SET status = 'paused' WHERE client_id = 2")  # a later edit
    after = shop.run()
    assert after.total("resolved") == after.total("parked") == 0, after.to_json()
    assert after.total("applied") == 1  # billing's edit, to the CRM; the fix is superseded
    assert shop.customer(2) == shop.client(2) == ("Bob Ray", "bob@example.com", 5, "paused")
    assert shop.run().total("read") == 0
    cdcsync("verify", str(shop.pipeline))


def test_a_log_that_cannot_be_read_does_not_stop_the_replay(
    shop: Shop, caplog: pytest.LogCaptureFixture,
) -> None:
    import sqlite3

    item = quarantine_amount(shop)
    shop.billing("UPDATE clients SET amount = 40 WHERE client_id = 1")
    # Billing's change log is gone (as a PostgreSQL slot a daemon streams from cannot be
    # peeked): the replay reads the row back and supersedes what was read already.
    conn = sqlite3.connect(shop.dir / "billing.db")
    conn.execute("DROP TABLE _cdcsync_log")
    conn.close()
    out = cdcsync("quarantine", "replay", str(shop.pipeline), str(item))
    assert out.startswith(f"#{item} replayed")
    assert shop.customer(1) == shop.client(1) == ("Ann Lee", "ann@example.com", 40, "active")
    assert "cannot read the log of billing for {\"id\":1}" in caplog.text
