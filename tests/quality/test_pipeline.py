"""The gate inside real runs: SQLite CRM <-> SQLite billing through ``run_pipeline``.

Every test checks the rows at both ends: what failed stays where it was
written, what passed reached the other side.
"""

from __future__ import annotations

from decimal import Decimal

from conflict.canonical import row_hash
from tests.quality.conftest import Shop

GOOD = ("Ann Lee", "ann@example.com", 10, "active")


def seed_clean(shop: Shop) -> None:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, *GOOD), (2, "Bob Ray", "bob@example.com", 5, "active")])
    shop.billing.many("INSERT INTO clients VALUES (?,?,?,?,?)",
                      [(10, "Eve Moss", "eve@example.com", 2, "paused")])


def test_snapshot_quarantines_bad_rows_at_both_ends_and_reconciles_the_rest(shop: Shop) -> None:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)", [
        (1, *GOOD),
        (2, "Bob Ray", "bob-at-example.com", 5, "active"),       # malformed e-mail
        (3, "Cy Dunn", "cy@example.com", -3.5, "active"),         # negative amount
        (4, None, "dee@example.com", 1, "active"),                # null in a required field
    ])
    shop.billing.many("INSERT INTO clients VALUES (?,?,?,?,?)", [
        (10, "Eve Moss", "eve@example.com", 2, "paused"),
        (11, "Fay Wong", "fay@example.com", 1, "suspended"),      # outside the value set
        (12, "G" * 60, "g@example.com", 1, "active"),             # over-long name
    ])
    shop.setup()
    summary = shop.run()

    # Good rows crossed both ways; bad rows stayed where they were, uncopied.
    assert shop.client(1) == GOOD
    assert shop.customer(10) == ("Eve Moss", "eve@example.com", 2, "paused")
    for key in (2, 3, 4):
        assert shop.customer(key) is not None and shop.client(key) is None
    for key in (11, 12):
        assert shop.client(key) is not None and shop.customer(key) is None

    items = shop.items()
    assert [(i["key"], i["endpoint"], i["op"], i["status"]) for i in items] == [
        ('{"id":2}', "crm", "read", "quarantined"),
        ('{"id":3}', "crm", "read", "quarantined"),
        ('{"id":4}', "crm", "read", "quarantined"),
        ('{"id":11}', "billing", "read", "quarantined"),
        ('{"id":12}', "billing", "read", "quarantined"),
    ]
    assert items[0]["failures"][0]["observed"] == {"email": "bob-at-example.com"}
    q = summary.to_json()["quality"]
    assert q == [{
        "entity": "customers", "validated": 5, "quarantined": 5, "held": 0, "open": 5,
        "failures": {
            "expect_column_values_to_match_regex(email)": 1,
            "expect_column_values_to_be_between(amount)": 1,
            "expect_column_values_to_not_be_null(name)": 1,
            "expect_column_values_to_be_in_set(status)": 1,
            "expect_column_value_lengths_to_be_between(name)": 1,
        }}]
    assert summary.status == "attention"
    # Quarantined keys were never reconciled: the state store knows nothing of them.
    with shop.context() as ctx:
        assert ctx.store.count_keys(ctx.pipeline, "customers") == 2


def test_stream_in_both_directions(shop: Shop) -> None:
    seed_clean(shop)
    shop.setup()
    assert shop.run().status == "ok"
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "active")

    shop.crm("UPDATE customers SET email = 'ann at example dot com' WHERE id = 1")
    shop.crm("INSERT INTO customers (id, name, email, amount, status) VALUES "
             "(20, 'Hal Ito', 'hal@example.com', 7, 'active')")
    shop.crm("INSERT INTO customers (id, name, email, amount, status) VALUES "
             "(21, 'Ida One', 'twin@example.com', 1, 'active')")      # duplicate e-mails
    shop.crm("INSERT INTO customers (id, name, email, amount, status) VALUES "
             "(22, 'Ida Two', 'twin@example.com', 1, 'active')")
    shop.crm("UPDATE customers SET name = 'Bob R. Ray' WHERE id = 2")  # two versions of key 2
    shop.crm("UPDATE customers SET name = 'Bob Ray', amount = 6 WHERE id = 2")
    shop.crm("UPDATE customers SET note = 'not synced' WHERE id = 2")  # unsynced column only
    shop.billing("UPDATE clients SET amount = -40 WHERE client_id = 10")
    shop.billing("INSERT INTO clients VALUES (30, 'Joe Park', 'joe@example.com', 3, 'closed')")
    shop.billing("UPDATE clients SET status = 'gold' WHERE client_id = 30")
    summary = shop.run()

    # crm -> billing: the good ones arrived, the bad ones did not.
    assert shop.client(20) == ("Hal Ito", "hal@example.com", 7, "active")
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 6, "active")
    assert shop.client(1) == GOOD
    assert shop.client(21) is None and shop.client(22) is None
    # billing -> crm: the insert arrived, its later bad update and the negative amount did not.
    assert shop.customer(30) == ("Joe Park", "joe@example.com", 3, "closed")
    assert shop.client(30) == ("Joe Park", "joe@example.com", 3, "gold")
    assert shop.customer(10) == ("Eve Moss", "eve@example.com", 2, "paused")
    assert shop.client(10) == ("Eve Moss", "eve@example.com", -40, "paused")

    got = {(i["key"], i["endpoint"]): (i["status"],
                                       sorted(f["expectation_label"] for f in i["failures"]))
           for i in shop.items()}
    assert got == {
        ('{"id":1}', "crm"): ("quarantined", ["expect_column_values_to_match_regex(email)"]),
        ('{"id":21}', "crm"): ("quarantined", ["expect_column_values_to_be_unique(email)"]),
        ('{"id":22}', "crm"): ("quarantined", ["expect_column_values_to_be_unique(email)"]),
        ('{"id":10}', "billing"): ("quarantined", ["expect_column_values_to_be_between(amount)"]),
        ('{"id":30}', "billing"): ("quarantined", ["expect_column_values_to_be_in_set(status)"]),
    }
    q = summary.quality["customers"]
    assert (q.quarantined, q.held, q.open) == (5, 0, 5)
    assert q.failures["expect_column_values_to_be_unique(email)"] == 2

    # Fixed point for what passed: nothing is applied again.
    again = shop.run()
    assert again.total("applied") == 0
    assert len(shop.items()) == 5


def test_later_edits_of_a_quarantined_key_are_held_and_vectors_stay_put(shop: Shop) -> None:
    seed_clean(shop)
    shop.setup()
    shop.run()
    with shop.context() as ctx:
        before = ctx.store.load(ctx.pipeline, "customers", ['{"id":1}'])['{"id":1}']

    shop.crm("UPDATE customers SET email = 'ann(at)example.com' WHERE id = 1")
    shop.run()
    # Later edits of key 1, from both ends, even good ones: held, not applied anywhere.
    shop.crm("UPDATE customers SET email = 'ann.lee@example.com', name = 'Ann B. Lee' "
             "WHERE id = 1")
    shop.billing("UPDATE clients SET amount = 99 WHERE client_id = 1")
    shop.crm("UPDATE customers SET status = 'closed' WHERE id = 2")  # another key flows
    summary = shop.run()

    assert shop.customer(1) == ("Ann B. Lee", "ann.lee@example.com", 10, "active")
    assert shop.client(1) == ("Ann Lee", "ann@example.com", 99, "active")
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "closed")
    items = shop.items(key='{"id":1}')
    assert [(i["endpoint"], i["status"]) for i in items] == [
        ("crm", "quarantined"), ("crm", "held"), ("billing", "held")]
    assert items[1]["failures"] == []  # held because of the order, not its own content
    assert (summary.quality["customers"].held, summary.quality["customers"].quarantined) == (2, 0)

    # No version vector records any of them: the key's state is what the snapshot left.
    with shop.context() as ctx:
        after = ctx.store.load(ctx.pipeline, "customers", ['{"id":1}'])['{"id":1}']
    assert after.vector == before.vector
    assert after.content == before.content
    for ep in ("crm", "billing"):
        assert after.at(ep).known == before.at(ep).known
        assert after.at(ep).hash == before.at(ep).hash == row_hash(before.content)
        assert after.at(ep).last_pos == before.at(ep).last_pos
    assert after.outbox == set()


def test_decimal_and_text_values_are_judged_in_their_logical_types(shop: Shop) -> None:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", "0.00", "active"),
                   (2, "Bob Ray", "bob@example.com", "-0.01", "active")])
    shop.setup()
    shop.run()
    assert shop.client(1) == ("Ann Lee", "ann@example.com", 0, "active")
    assert shop.client(2) is None
    [item] = shop.items()
    assert item["failures"][0]["observed"] == {"amount": {"$n": str(Decimal("-0.01"))}}
