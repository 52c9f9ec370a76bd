"""Who may decide: basic auth with the review token, the actor it records, headers, real HTTP."""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from sync.review.app import create_app
from tests.review.conftest import Quickstart, csrf_of

TOKEN = "s3cret-review-token"


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {raw}"}


@pytest.fixture
def guarded(quickstart: Quickstart) -> Flask:
    return create_app(quickstart.cfg(), token=TOKEN)


def test_a_token_requires_basic_auth_and_the_user_name_is_the_actor(
        quickstart: Quickstart, guarded: Flask) -> None:
    client = guarded.test_client()
    denied = client.get("/conflicts")
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"].startswith('Basic realm="cdcsync review"')
    assert client.get("/conflicts", headers=basic("ann", "wrong")).status_code == 401
    assert client.get("/conflicts", headers=basic("", TOKEN)).status_code == 401
    assert client.get("/", headers=basic("ann", TOKEN)).status_code == 200
    assert client.get("/healthz").status_code == 200  # probes need no login

    [rec] = quickstart.conflicts("open")
    url = f"/conflicts/{rec['id']}"
    html = client.get(url, headers=basic("ann", TOKEN)).get_data(as_text=True)
    assert "deciding as <strong>ann</strong>" in html
    # without credentials even a well-formed form is refused
    refused = client.post(url + "/resolve", data={"csrf_token": csrf_of(html), "pick": "crm"})
    assert refused.status_code == 401
    assert quickstart.conflict(rec["id"])["status"] == "open"
    res = client.post(url + "/resolve", headers=basic("ann", TOKEN),
                      data={"csrf_token": csrf_of(html), "pick": "billing"})
    assert res.status_code == 303
    assert quickstart.conflict(rec["id"])["decided_by"] == "ann"
    assert quickstart.sql("crm", "SELECT email FROM customers WHERE id = 2") == [
        ("ghopper@billing.example",)]


def test_pages_carry_protective_headers(quickstart: Quickstart) -> None:
    res = create_app(quickstart.cfg()).test_client().get("/conflicts")
    assert res.status_code == 200
    assert res.headers["X-Frame-Options"] == "DENY"
    csp = res.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "form-action 'self'" in csp
    assert "script-src" not in csp  # no scripts at all
    assert res.headers["Cache-Control"] == "no-store"
    health = create_app(quickstart.cfg()).test_client().get("/healthz")
    assert health.get_json() == {"status": "ok"}


def test_the_actor_is_the_client_address_behind_a_trusted_proxy(quickstart: Quickstart) -> None:
    app = create_app(quickstart.cfg(), proxies=1)
    html = app.test_client().get("/conflicts", headers={
        "X-Forwarded-For": "10.1.2.3", "X-Forwarded-Prefix": "/review"}).get_data(as_text=True)
    assert "deciding as <strong>review@10.1.2.3</strong>" in html
    assert 'href="/review/conflicts"' in html  # links stay under the proxy's sub-path
    direct = create_app(quickstart.cfg()).test_client().get(
        "/conflicts", headers={"X-Forwarded-For": "10.1.2.3"}).get_data(as_text=True)
    assert "deciding as <strong>review@127.0.0.1</strong>" in direct  # not trusted by default


@pytest.fixture
def served(quickstart: Quickstart) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, create_app(quickstart.cfg(), token=TOKEN),
                         threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_served_over_real_http(served: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(served + "/conflicts", timeout=30)
    assert denied.value.code == 401
    denied.value.close()
    req = urllib.request.Request(served + "/conflicts", headers=basic("ann", TOKEN))
    with urllib.request.urlopen(req, timeout=30) as res:
        assert res.status == 200
        assert res.headers["Content-Type"] == "text/html; charset=utf-8"
        html = res.read().decode("utf-8")
    assert "Conflicts waiting for a steward" in html and "id=2" in html
