"""A steward's decisions end to end: replay after a fix, accept with a reason, discard."""

from __future__ import annotations

from typing import Any

import pytest

from sync.quality.release import Outcome, QuarantineError, decide
from tests.quality.conftest import Shop
from tests.quality.test_pipeline import GOOD, seed_clean


def act(shop: Shop, item: int, action: str, reason: str = "", actor: str = "sam") -> Outcome:
    with shop.context() as ctx:
        return decide(ctx, item, action, actor=actor, reason=reason)


def only(shop: Shop, **where: Any) -> dict[str, Any]:
    [item] = shop.items(**where)
    return item


@pytest.fixture
def synced(shop: Shop) -> Shop:
    seed_clean(shop)
    shop.setup()
    shop.run()
    return shop


def test_replay_after_the_row_was_fixed_at_its_source(synced: Shop) -> None:
    shop = synced
    shop.crm("UPDATE customers SET email = 'ann(at)example.com' WHERE id = 1")
    shop.run()
    bad = only(shop, status="quarantined")["id"]

    # Not fixed yet: the replay is refused, nothing moves, the steward sees why.
    out = act(shop, bad, "replay")
    assert out.status == "quarantined"
    assert [f["observed"] for f in out.refused["crm"]] == [{"email": "ann(at)example.com"}]
    assert shop.client(1) == GOOD

    # Fixed at the CRM, and billing edits the amount meanwhile: both held.
    shop.crm("UPDATE customers SET email = 'ann.lee@example.com' WHERE id = 1")
    shop.billing("UPDATE clients SET amount = 99 WHERE client_id = 1")
    shop.run()
    assert [i["status"] for i in shop.items(key='{"id":1}')] == [
        "quarantined", "held", "held"]

    out = act(shop, bad, "replay")
    assert (out.status, out.superseded, out.released) == ("replayed", 1, 1)
    # The fixed e-mail and billing's amount are disjoint edits: merged at both ends.
    merged = ("Ann Lee", "ann.lee@example.com", 99, "active")
    assert shop.customer(1) == merged
    assert shop.client(1) == merged
    assert [i["status"] for i in shop.items(key='{"id":1}')] == [
        "replayed", "replayed", "replayed"]
    item = only(shop, id=bad)
    assert (item["decided_by"], item["decided_at"] is not None) == ("sam", True)
    assert [a["action"] for a in shop.audit()] == ["quarantine.replay.refused",
                                                    "quarantine.replay"]
    # Nothing is left to do: the next run applies nothing.
    assert shop.run().total("applied") == 0


def test_accept_applies_the_change_as_captured_and_records_the_reason(synced: Shop) -> None:
    shop = synced
    shop.billing("UPDATE clients SET amount = -15 WHERE client_id = 10")
    shop.run()
    bad = only(shop, status="quarantined")["id"]

    with pytest.raises(QuarantineError, match="accept needs a reason"):
        act(shop, bad, "accept")
    out = act(shop, bad, "accept", reason="credit note CN-7 approved by finance")
    assert out.status == "accepted"
    assert shop.customer(10) == ("Eve Moss", "eve@example.com", -15, "paused")
    item = only(shop, id=bad)
    assert (item["status"], item["reason"], item["decided_by"]) == (
        "accepted", "credit note CN-7 approved by finance", "sam")
    [entry] = shop.audit()
    assert entry["action"] == "quarantine.accept" and entry["actor"] == "sam"
    assert entry["detail"]["reason"] == "credit note CN-7 approved by finance"
    assert entry["detail"]["key"] == '{"id":10}'
    assert shop.run().total("applied") == 0


def test_discard_drops_the_change_and_releases_what_it_held(synced: Shop) -> None:
    shop = synced
    shop.crm("UPDATE customers SET status = 'vip' WHERE id = 2")
    shop.run()
    shop.crm("UPDATE customers SET status = 'paused', name = 'Bob Ray Jr' WHERE id = 2")
    shop.run()
    bad = only(shop, status="quarantined")["id"]

    with pytest.raises(QuarantineError, match=r"held behind #\d+ of the same key"):
        act(shop, only(shop, status="held")["id"], "discard", reason="x")
    out = act(shop, bad, "discard", reason="typo, the user fixed it")
    assert (out.status, out.released, out.requarantined) == ("discarded", 1, None)
    # The discarded version went nowhere; the later (good) edit flowed.
    assert shop.client(2) == ("Bob Ray Jr", "bob@example.com", 5, "paused")
    assert [i["status"] for i in shop.items(key='{"id":2}')] == ["discarded", "replayed"]
    assert [a["action"] for a in shop.audit()] == ["quarantine.discard"]
    with pytest.raises(QuarantineError, match="is already discarded"):
        act(shop, bad, "replay")
    assert shop.run().total("applied") == 0


def test_discard_keeps_the_source_row_and_a_later_edit_can_overwrite_it(synced: Shop) -> None:
    shop = synced
    shop.crm("UPDATE customers SET name = NULL WHERE id = 2")
    shop.run()
    shop.crm("UPDATE customers SET status = 'closed' WHERE id = 2")  # still no name: fails too
    shop.run()
    first = only(shop, status="quarantined")["id"]

    out = act(shop, first, "discard", reason="name lost by an import")
    # The held change fails on its own: it becomes the key's quarantined item.
    assert out.requarantined is not None and out.released == 0
    assert shop.customer(2) == (None, "bob@example.com", 5, "closed")
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "active")
    out = act(shop, out.requarantined, "discard", reason="same import")
    assert out.status == "discarded"
    # Billing edits the customer: applied over the CRM's discarded row (CAS on the
    # row version learned at discard), not refused forever.
    shop.billing("UPDATE clients SET amount = 8 WHERE client_id = 2")
    shop.run()
    assert shop.customer(2) == ("Bob Ray", "bob@example.com", 8, "active")
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 8, "active")


def test_snapshot_rows_replayed_accepted_and_discarded(shop: Shop) -> None:
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, *GOOD), (2, "Bob Ray", "bob-at-example.com", 5, "active"),
                   (3, "Cy Dunn", "cy@example.com", -3.5, "active")])
    shop.billing.many("INSERT INTO clients VALUES (?,?,?,?,?)",
                      [(11, "Fay Wong", "fay@example.com", 1, "suspended")])
    shop.setup()
    shop.run()
    ids = {i["key"]: i["id"] for i in shop.items()}

    # Replay: fixed at the CRM since; the fix was read and held behind the snapshot row.
    shop.crm("UPDATE customers SET email = 'bob@example.com' WHERE id = 2")
    shop.run()
    out = act(shop, ids['{"id":2}'], "replay")
    assert (out.status, out.superseded) == ("replayed", 1)
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "active")

    # Accept: the negative amount is right after all.
    out = act(shop, ids['{"id":3}'], "accept", reason="a refund owed to the customer")
    assert out.status == "accepted"
    assert shop.client(3) == ("Cy Dunn", "cy@example.com", -3.5, "active")

    # Discard: billing keeps its row, the CRM does not get it; a later good edit flows.
    out = act(shop, ids['{"id":11}'], "discard", reason="legacy status, fixed by billing")
    assert out.status == "discarded"
    assert shop.customer(11) is None
    assert shop.client(11) == ("Fay Wong", "fay@example.com", 1, "suspended")
    shop.billing("UPDATE clients SET status = 'closed' WHERE client_id = 11")
    shop.run()
    assert shop.customer(11) == ("Fay Wong", "fay@example.com", 1, "closed")

    assert {i["status"] for i in shop.items()} == {"replayed", "accepted", "discarded"}
    assert [a["action"] for a in shop.audit()] == [
        "quarantine.replay", "quarantine.accept", "quarantine.discard"]
    assert shop.run().total("applied") == 0


def test_unknown_items_and_actions(synced: Shop) -> None:
    with pytest.raises(QuarantineError, match=r"no quarantine item #404 in pipeline 'shop'"):
        act(synced, 404, "replay")
    with pytest.raises(QuarantineError, match="unknown action 'approve'"):
        act(synced, 1, "approve")
    with pytest.raises(QuarantineError, match="discard needs a reason"):
        act(synced, 1, "discard", reason="  ")
