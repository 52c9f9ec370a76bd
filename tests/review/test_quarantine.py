"""A steward replays, accepts and discards quarantined changes in the browser.

The pipeline is the data-quality tests' shop (tests/quality/conftest.py): a
CRM and a billing system on SQLite files with a Great Expectations suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from sync.review.app import create_app
from tests.quality.conftest import Shop, make_shop
from tests.review.conftest import csrf_of, table_rows


def quarantined_shop(tmp_path: Path) -> Shop:
    shop = make_shop(tmp_path)
    shop.crm.many("INSERT INTO customers (id, name, email, amount, status) VALUES (?,?,?,?,?)",
                  [(1, "Ann Lee", "ann@example.com", 10, "active"),
                   (2, "Bob Ray", "bob-at-example.com", 5, "active"),
                   (3, "Cy Dunn", "cy@example.com", -3, "active"),
                   (4, "Di Fox", "di-at-example", 7, "active")])
    shop.setup()
    shop.run()
    shop.crm("UPDATE customers SET amount = 8 WHERE id = 4")  # held behind Di's snapshot row
    shop.run()
    assert [(i["key"], i["status"]) for i in shop.items()] == [
        ('{"id":2}', "quarantined"), ('{"id":3}', "quarantined"), ('{"id":4}', "quarantined"),
        ('{"id":4}', "held")]
    return shop


def decide(client: FlaskClient, item: int, action: str, reason: str = "",
           token: str | None = None) -> tuple[int, str]:
    html = client.get(f"/quarantine/{item}").get_data(as_text=True)
    res = client.post(f"/quarantine/{item}/decide", data={
        "csrf_token": token if token is not None else csrf_of(html), "action": action,
        "reason": reason})
    if res.status_code == 303:
        assert res.headers["Location"] == f"/quarantine/{item}"
        return 303, client.get(res.headers["Location"]).get_data(as_text=True)
    return res.status_code, res.get_data(as_text=True)


def test_replay_accept_and_discard_through_the_ui(tmp_path: Path) -> None:
    shop = quarantined_shop(tmp_path)
    bob, cy, di = (i["id"] for i in shop.items(status="quarantined"))
    [later] = [i["id"] for i in shop.items(status="held")]
    client = create_app(shop.cfg()).test_client()
    token = csrf_of(client.get(f"/quarantine/{di}").get_data(as_text=True))  # the session's

    listing = client.get("/quarantine").get_data(as_text=True)
    rows = [cells for _, cells in table_rows(listing)[1:]]
    assert [(r[0], r[2], r[4], r[5]) for r in rows] == [
        (f"#{bob}", "id=2", "snapshot row", "quarantined"),
        (f"#{cy}", "id=3", "snapshot row", "quarantined"),
        (f"#{di}", "id=4", "snapshot row", "quarantined"),
        (f"#{later}", "id=4", "update", "held")]
    assert rows[1][6] == "expect_column_values_to_be_between(amount)"

    page = client.get(f"/quarantine/{bob}").get_data(as_text=True)
    assert "expect_column_values_to_match_regex(email)" in page
    failing = [cells for cls, cells in table_rows(page) if cls == "failing"]
    assert failing == [["email", "bob-at-example.com"]]  # a snapshot row: no before image
    assert "Held behind it" not in page
    di_page = client.get(f"/quarantine/{di}").get_data(as_text=True)
    assert f"#{later}</a> (update from crm)" in di_page
    held = client.get(f"/quarantine/{later}").get_data(as_text=True)
    assert f"#{di}</a>: decide that one first" in held
    assert "Held behind it" not in held and "csrf_token" not in held  # nothing to decide here
    amount = [cells for _, cells in table_rows(held) if cells and cells[0] == "amount"]
    assert amount == [["amount", "7", "8 changed"]]

    # Replay while the row still fails at its source: refused, stays quarantined.
    status, html = decide(client, bob, "replay")
    assert status == 303
    assert "still fails the suite at its source; it stays quarantined" in html
    assert shop.items(id=bob)[0]["status"] == "quarantined"
    # Fixed at the source, the replay lets it flow.
    shop.crm("UPDATE customers SET email = 'bob@example.com' WHERE id = 2")
    status, html = decide(client, bob, "replay")
    assert status == 303
    assert f"#{bob} replayed by review@127.0.0.1: applied to 1 endpoint row." in html
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "active")

    # Accept and discard need a reason: an error message on the page, nothing decided.
    status, html = decide(client, cy, "accept")
    assert status == 400
    assert "accept needs a reason" in html and "Traceback" not in html
    assert shop.items(id=cy)[0]["status"] == "quarantined"
    status, html = decide(client, cy, "accept", "refund owed <b>now</b>")
    assert status == 303
    assert "refund owed &lt;b&gt;now&lt;/b&gt;" in html
    assert shop.client(3) == ("Cy Dunn", "cy@example.com", -3, "active")

    status, html = decide(client, di, "discard", "test account")
    assert status == 303
    assert (f"#{di} discarded by review@127.0.0.1: applied to 0 endpoint rows; held change "
            f"#{later} fails too and is quarantined now.") in html
    assert shop.client(4) is None
    assert shop.customer(4) == ("Di Fox", "di-at-example", 8, "active")  # its source keeps it
    assert "<form method=\"post\"" not in html  # decided: nothing left to submit

    decided = {i["id"]: (i["status"], i["decided_by"], i["reason"]) for i in shop.items()}
    assert decided == {bob: ("replayed", "review@127.0.0.1", ""),
                       cy: ("accepted", "review@127.0.0.1", "refund owed <b>now</b>"),
                       di: ("discarded", "review@127.0.0.1", "test account"),
                       later: ("quarantined", None, "")}
    still = client.get("/quarantine").get_data(as_text=True)
    assert [cells[0] for _, cells in table_rows(still)[1:]] == [f"#{later}"]
    every = client.get("/quarantine?all=1").get_data(as_text=True)
    assert [cells[5] for _, cells in table_rows(every)[1:]] == [
        "replayed", "accepted", "discarded", "quarantined"]

    # A decided item cannot be decided again; a forged form is refused first.
    status, html = decide(client, di, "discard", "again", token=token)
    assert status == 400 and f"item #{di} is already discarded" in html
    status, _ = decide(client, di, "discard", "again", token="forged")
    assert status == 400


def test_replay_all_in_the_browser_lets_the_fixed_rows_flow(tmp_path: Path) -> None:
    shop = quarantined_shop(tmp_path)
    shop.crm("UPDATE customers SET email = 'bob@example.com' WHERE id = 2")
    shop.crm("UPDATE customers SET email = 'di@example.com' WHERE id = 4")
    client = create_app(shop.cfg()).test_client()
    listing = client.get("/quarantine?entity=customers").get_data(as_text=True)
    assert "Replay all" in listing
    res = client.post("/quarantine/replay-all", data={"csrf_token": csrf_of(listing),
                                                      "entity": "customers"})
    assert res.status_code == 303 and res.headers["Location"].endswith("entity=customers")
    page = client.get(res.headers["Location"]).get_data(as_text=True)
    assert "2 replayed by" in page and "1 superseded by the rows read back" in page, page
    assert "1 still quarantined" in page, page
    assert shop.client(2) == ("Bob Ray", "bob@example.com", 5, "active")
    assert shop.client(4) == ("Di Fox", "di@example.com", 8, "active")  # with the held edit
    assert [i["key"] for i in shop.items(status="quarantined")] == ['{"id":3}']
    assert shop.items(status="held") == []


def test_replay_all_in_the_browser_names_an_item_decided_meanwhile_apart(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An item another steward decides while "Replay all" works through the list is
    left as decided and named for what it is, not counted among those failing the suite."""
    from sync.quality import release

    shop = quarantined_shop(tmp_path)
    (cy,) = [int(i["id"]) for i in shop.items() if i["key"] == '{"id":3}']
    real = release.decide

    def another_steward_first(ctx: Any, item_id: int, action: str, **kw: Any) -> Any:
        if item_id == cy and action == "replay":
            real(ctx, cy, "discard", actor="eve", reason="a test row")
        return real(ctx, item_id, action, **kw)

    monkeypatch.setattr(release, "decide", another_steward_first)
    client = create_app(shop.cfg()).test_client()
    listing = client.get("/quarantine").get_data(as_text=True)
    res = client.post("/quarantine/replay-all", data={"csrf_token": csrf_of(listing)},
                      follow_redirects=True)
    page = res.get_data(as_text=True)
    assert "2 still quarantined" in page, page  # Bob's and Di's rows, not fixed
    assert f"1 not replayed: item #{cy} is already discarded" in page, page
    assert [i["status"] for i in shop.items() if i["key"] == '{"id":3}'] == ["discarded"]
