"""A steward reviews and decides conflicts in the browser (Flask's test client, real pipeline)."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from sync.review.app import create_app
from tests.review.conftest import Quickstart, csrf_of, table_rows

NAVY, BILLING = "grace.hopper@navy.mil", "ghopper@billing.example"


@pytest.fixture
def client(quickstart: Quickstart) -> FlaskClient:
    return create_app(quickstart.cfg()).test_client()


def open_id(qs: Quickstart) -> str:
    [rec] = qs.conflicts("open")
    return str(rec["id"])


def page(client: FlaskClient, url: str, status: int = 200) -> str:
    res = client.get(url)
    assert res.status_code == status, (res.status_code, res.get_data(as_text=True)[:2000])
    return res.get_data(as_text=True)


def test_the_list_shows_the_open_conflict_and_filters(quickstart: Quickstart,
                                                      client: FlaskClient) -> None:
    cid = open_id(quickstart)
    html = page(client, "/conflicts")
    assert f'href="/conflicts/{cid}"' in html
    rows = [cells for _, cells in table_rows(html)[1:]]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [(cid[:12], "customers", "id=2", "open")]
    # customer 1 was merged by policy: listed only with ?all=1
    every = [cells for _, cells in table_rows(page(client, "/conflicts?all=1"))[1:]]
    assert sorted((r[2], r[3], r[7]) for r in every) == [
        ("id=1", "resolved", "policy:field_merge"), ("id=2", "open", "-")]
    assert "Nothing waits for a steward" in page(client, "/conflicts?entity=nobody")
    [merged] = quickstart.conflicts("resolved")
    html = page(client, f"/conflicts/{merged['id']}")
    assert "policy:field_merge" in html and 'method="post"' not in html
    table = table_rows(html)
    assert table[0][1][-1] == "Decided"
    decided = {cells[0].split()[0]: cells[-1] for _, cells in table[1:]}
    assert (decided["phone"], decided["tier"]) == ("+44 20 7946 9999", "platinum")


def test_the_page_shows_both_versions_with_the_differing_column_highlighted(
        quickstart: Quickstart, client: FlaskClient) -> None:
    cid = open_id(quickstart)
    html = page(client, f"/conflicts/{cid[:8]}")  # a unique prefix is enough, as on the CLI
    rows = table_rows(html)
    head = rows[0][1]
    assert head[0] == "Column" and head[1] == "Before both edits"
    assert head[2].startswith("crm committed 20") and head[2].endswith("UTC")
    assert head[3].startswith("billing committed 20")
    body = {cells[0].split()[0]: (cls, cells[1:]) for cls, cells in rows[1:]}
    assert body["email"] == ("differs", ["grace@example.com", f"[ ] {NAVY} edited here",
                                         f"[ ] {BILLING} edited here"])
    assert {c for c, (cls, _) in body.items() if cls == "differs"} == {"email"}
    assert body["tier"] == ("same", ["silver", "silver", "silver"])
    assert "manual" in html and "left to a data steward" in html
    assert f'action="/conflicts/{cid}/resolve"' in html


def test_resolve_without_the_csrf_token_is_refused(quickstart: Quickstart,
                                                   client: FlaskClient) -> None:
    cid = open_id(quickstart)
    res = client.post(f"/conflicts/{cid}/resolve", data={"pick": "crm"})
    assert res.status_code == 400
    assert "Reload the page" in res.get_data(as_text=True)
    page(client, f"/conflicts/{cid}")  # a session token now exists; a wrong one fails too
    res = client.post(f"/conflicts/{cid}/resolve", data={"pick": "crm", "csrf_token": "forged"})
    assert res.status_code == 400
    assert quickstart.conflict(cid)["status"] == "open"
    assert quickstart.sql("billing", "SELECT email FROM clients WHERE client_id = 2") == [
        (BILLING,)]


def test_picking_crm_applies_its_version_and_records_the_steward(
        quickstart: Quickstart, client: FlaskClient) -> None:
    cid = open_id(quickstart)
    token = csrf_of(page(client, f"/conflicts/{cid}"))
    note = "CRM owns contact data <img src=x onerror=alert(1)>"
    res = client.post(f"/conflicts/{cid}/resolve",
                      data={"csrf_token": token, "pick": "crm", "note": note,
                            "col:email": "billing"})  # a whole pick ignores column choices
    assert res.status_code == 303
    assert res.headers["Location"] == f"/conflicts/{cid}"
    assert quickstart.sql("billing", "SELECT email FROM clients WHERE client_id = 2") == [(NAVY,)]
    rec = quickstart.conflict(cid)
    assert (rec["status"], rec["winner"], rec["decided_by"], rec["reason"]) == (
        "resolved", "crm", "review@127.0.0.1", note)

    html = page(client, res.headers["Location"])
    assert "Resolved by review@127.0.0.1 (kept crm&#39;s version): applied to 1 endpoint." in html
    assert "CRM owns contact data &lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html
    rows = table_rows(html)
    assert rows[0][1][-1] == "Decided"
    email = next(cells for _, cells in rows if cells[0].startswith("email"))
    assert email[-1] == NAVY
    assert "<form" not in html.split("</nav>")[1]  # decided: nothing left to submit
    # A second decision on it is an error message on the page, not a traceback.
    again = client.post(f"/conflicts/{cid}/resolve", data={"csrf_token": token, "pick": "billing"})
    assert again.status_code == 400
    text = again.get_data(as_text=True)
    assert f"conflict {cid} is already resolved" in text and "Traceback" not in text
    assert quickstart.sql("billing", "SELECT email FROM clients WHERE client_id = 2") == [(NAVY,)]


def test_a_decision_from_a_page_showing_sides_edited_since_is_refused(
        quickstart: Quickstart, client: FlaskClient) -> None:
    """The page showed crm's e-mail; crm then deleted the customer and a run updated the
    conflict's side. "Keep crm's version" from that page kept a deletion the steward never
    saw, at every endpoint."""
    cid = open_id(quickstart)
    html = page(client, f"/conflicts/{cid}")
    token = csrf_of(html)
    seen = re.search(r'name="seen" value="([0-9a-f]+)"', html)
    assert seen is not None
    quickstart.sql("crm", "DELETE FROM customers WHERE id = 2")
    quickstart.run()
    assert quickstart.conflict(cid)["status"] == "open"  # its crm side: now the deletion
    res = client.post(f"/conflicts/{cid}/resolve",
                      data={"csrf_token": token, "pick": "crm", "seen": seen.group(1)})
    assert res.status_code == 400
    text = res.get_data(as_text=True)
    assert "edited again since its sides were shown" in text and "row deleted" in text
    assert quickstart.conflict(cid)["status"] == "open"
    assert quickstart.sql("billing", "SELECT email FROM clients WHERE client_id = 2") == [
        (BILLING,)]
    # the page shown now is what the decision goes by
    again = re.search(r'name="seen" value="([0-9a-f]+)"', text)
    assert again is not None and again.group(1) != seen.group(1)
    res = client.post(f"/conflicts/{cid}/resolve",
                      data={"csrf_token": token, "pick": "billing", "seen": again.group(1)})
    assert res.status_code == 303
    assert quickstart.conflict(cid)["winner"] == "billing"


def park_customer_3(qs: Quickstart) -> str:
    """Both sides edit customer 3's e-mail (and one other column each): parked."""
    qs.sql("crm", "UPDATE customers SET email = 'alan@crm.example', phone = '+44 <b>1</b>' "
                  "WHERE id = 3")
    qs.sql("billing", "UPDATE clients SET email = 'alan@billing.example', tier = 'gold' "
                      "WHERE client_id = 3")
    assert qs.run().open_conflicts == 2
    [rec] = [c for c in qs.conflicts("open") if c["key"] == '{"id":3}']
    return str(rec["id"])


def test_column_by_column_choice(quickstart: Quickstart, client: FlaskClient) -> None:
    cid = park_customer_3(quickstart)
    html = page(client, f"/conflicts/{cid}")
    body = {cells[0].split()[0]: (cls, cells[2:]) for cls, cells in table_rows(html)[1:]}
    # A column only one side edited is preselected to that side; the e-mail is the steward's.
    assert body["email"] == ("differs", ["[ ] alan@crm.example edited here",
                                         "[ ] alan@billing.example edited here"])
    assert body["phone"] == ("differs", ["[x] +44 <b>1</b> edited here", "[ ] +44 20 7946 0003"])
    assert "+44 &lt;b&gt;1&lt;/b&gt;" in html and "<b>1</b>" not in html
    assert body["tier"] == ("differs", ["[ ] silver", "[x] gold edited here"])
    token = csrf_of(html)
    url = f"/conflicts/{cid}/resolve"

    missing = client.post(url, data={"csrf_token": token, "mode": "fields",
                                     "col:phone": "crm", "col:tier": "billing"})
    assert missing.status_code == 400
    assert "Choose a version for every differing column: email." in missing.get_data(as_text=True)
    unknown = client.post(url, data={"csrf_token": token, "col:email": "nowhere",
                                     "col:phone": "crm", "col:tier": "billing"})
    assert unknown.status_code == 400
    assert "no side &#39;nowhere&#39;" in unknown.get_data(as_text=True)
    assert quickstart.conflict(cid)["status"] == "open"

    res = client.post(url, data={"csrf_token": token, "mode": "fields", "note": "mixed",
                                 "col:email": "billing", "col:phone": "crm",
                                 "col:tier": "billing"})
    assert res.status_code == 303
    want = [("alan@billing.example", "+44 <b>1</b>", "gold")]
    assert quickstart.sql("crm", "SELECT email, phone, tier FROM customers WHERE id = 3") == want
    assert quickstart.sql("billing", "SELECT email, phone, tier FROM clients "
                                     "WHERE client_id = 3") == want
    rec = quickstart.conflict(cid)
    assert rec["status"] == "resolved"
    assert rec["winner"].startswith("fields:")
    done = page(client, f"/conflicts/{cid}")
    assert "(chose column by column): applied to 2 endpoints." in done
    # the other conflict is still open
    assert [c["key"] for c in quickstart.conflicts("open")] == ['{"id":2}']


def test_unknown_ids_are_404(quickstart: Quickstart, client: FlaskClient) -> None:
    html = page(client, "/conflicts/<nope>", status=404)
    assert "No conflict &#39;&lt;nope&gt;&#39;" in html
    token = csrf_of(page(client, f"/conflicts/{open_id(quickstart)}"))
    res = client.post("/conflicts/nope/resolve", data={"csrf_token": token, "pick": "crm"})
    assert res.status_code == 404
    res = client.post("/quarantine/999/decide", data={"csrf_token": token, "action": "replay"})
    assert res.status_code == 404
    assert "No quarantine item #999" in page(client, "/quarantine/999", status=404)
    page(client, "/quarantine/abc", status=404)
    page(client, "/no/such/page", status=404)


def test_overview_and_dead_letters(quickstart: Quickstart, client: FlaskClient) -> None:
    html = page(client, "/")
    cards = {label: int(n) for n, label in
             re.findall(r'<div class="n">(\d+)</div><div>([^<]+)</div>', html)}
    assert cards == {"open conflict": 1, "quarantined or held changes": 0, "dead letters": 0,
                     "pending applies (outbox)": 0}
    assert "Check the endpoints" in html
    runs = [cells for _, cells in table_rows(html)[1:] if cells and cells[1] == "run"]
    assert [r[3] for r in runs] == ["attention", "ok"]
    checked = page(client, "/?check=1")
    assert "Every endpoint answered; no warnings." in checked
    assert "No dead letters." in page(client, "/dlq")

    from sync import dlq
    from sync.state import open_store

    store = open_store(quickstart.cfg().state.url)
    try:
        with store.transaction() as conn:
            dlq.record(conn, "quickstart", "customers", "billing", ['{"id":3}', '{"id":6}'],
                       "CHECK constraint failed: <balance>\nsecond line", attempts=5)
    finally:
        store.close()
    letters = page(client, "/dlq")
    [row] = [cells for _, cells in table_rows(letters)[1:]]
    assert row[1:5] == ["customers", "billing", "2", "5"]
    assert row[6].startswith("CHECK constraint failed: <balance>")  # as text, once parsed
    assert "&lt;balance&gt;" in letters and "<balance>" not in letters
    assert "id=3; id=6" in letters
    assert re.search(r'<div class="n">1</div><div>dead letter</div>', page(client, "/"))
