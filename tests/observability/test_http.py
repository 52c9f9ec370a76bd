"""/metrics, /healthz and /readyz served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from sync import metrics
from sync.http import Server, serve


class Flags:
    """What the callbacks answer; flipped by the tests while the server runs."""

    def __init__(self) -> None:
        self.healthy = True
        self.ready: bool | None = False  # None: the callback raises
        self.lock = threading.Lock()

    def health(self) -> dict[str, Any]:
        with self.lock:
            return {"ok": self.healthy, "readers": 1}

    def readiness(self) -> dict[str, Any]:
        with self.lock:
            if self.ready is None:
                raise ConnectionError("state store unreachable")
            return {"ok": self.ready, "broker": "redis"}


@pytest.fixture
def flags() -> Flags:
    return Flags()


@pytest.fixture
def server(flags: Flags) -> Iterator[Server]:
    srv = serve("127.0.0.1", 0, health=flags.health, ready=flags.readiness)
    try:
        yield srv
    finally:
        srv.close()


def get(url: str, accept: str | None = None) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers["Content-Type"], err.read()


def test_port_zero_picks_a_free_port(server: Server) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


def test_metrics_served_with_the_expected_names(server: Server, pipeline: str) -> None:
    metrics.observe_read(pipeline, "crm", "customers", 3, 100.0, now=101.0)
    metrics.observe_applied(pipeline, "billing", "customers", [100.0], now=100.2)
    metrics.record_conflict(pipeline, "customers", "parked")
    metrics.DLQ_DEPTH.labels(pipeline).set(4)
    metrics.set_breaker(pipeline, "billing", "open")
    with metrics.observe_stage(pipeline, "resolve"):
        pass
    status, ctype, body = get(server.url + "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    text = body.decode()
    lines = set(text.splitlines())
    labels = f'endpoint="crm",entity="customers",pipeline="{pipeline}"'
    assert f"cdcsync_changes_read_total{{{labels}}} 3.0" in lines
    assert f"cdcsync_lag_seconds{{{labels}}} 1.0" in lines
    assert (f'cdcsync_changes_applied_total{{endpoint="billing",entity="customers",'
            f'pipeline="{pipeline}"}} 1.0') in lines
    assert (f'cdcsync_commit_to_apply_seconds_bucket{{entity="customers",le="0.25",'
            f'pipeline="{pipeline}"}} 1.0') in lines
    assert (f'cdcsync_conflicts_total{{entity="customers",outcome="parked",'
            f'pipeline="{pipeline}"}} 1.0') in lines
    assert f'cdcsync_dlq_depth{{pipeline="{pipeline}"}} 4.0' in lines
    assert f'cdcsync_breaker_state{{endpoint="billing",pipeline="{pipeline}"}} 1.0' in lines
    assert f'cdcsync_batch_seconds_count{{pipeline="{pipeline}",stage="resolve"}} 1.0' in lines
    for family in ("cdcsync_reader_lease", "cdcsync_outbox_depth", "cdcsync_lag_bytes",
                   "cdcsync_retries_total", "cdcsync_quarantined_total"):
        assert any(line.startswith(f"# HELP {family.removesuffix('_total')}")
                   for line in lines), family


def test_metrics_as_openmetrics_and_filtered_by_name(server: Server, pipeline: str) -> None:
    metrics.OUTBOX_DEPTH.labels(pipeline).set(12)
    status, ctype, body = get(server.url + "/metrics",
                              accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    _, _, only = get(server.url + "/metrics?name[]=cdcsync_outbox_depth")
    text = only.decode()
    assert f'cdcsync_outbox_depth{{pipeline="{pipeline}"}} 12.0' in text
    assert "cdcsync_changes_read" not in text


def test_healthz_and_readyz_follow_the_callbacks(server: Server, flags: Flags) -> None:
    status, ctype, body = get(server.url + "/healthz")
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"ok": True, "readers": 1}
    status, _, body = get(server.url + "/readyz")
    assert status == 503 and json.loads(body) == {"ok": False, "broker": "redis"}

    with flags.lock:
        flags.healthy, flags.ready = False, True
    assert get(server.url + "/healthz")[0] == 503
    assert get(server.url + "/readyz")[0] == 200

    with flags.lock:
        flags.ready = None  # the callback raises: not ready, and the body says why
    status, _, body = get(server.url + "/readyz")
    assert status == 503
    assert json.loads(body) == {"ok": False,
                                "error": "ConnectionError: state store unreachable"}


def test_unknown_path_is_404(server: Server) -> None:
    assert get(server.url + "/")[0] == 404
    assert get(server.url + "/metricsx")[0] == 404


def test_close_stops_serving(flags: Flags) -> None:
    srv = serve("127.0.0.1", 0, health=flags.health, ready=flags.readiness)
    url = srv.url + "/healthz"
    assert get(url)[0] == 200
    srv.close()
    with pytest.raises(urllib.error.URLError):
        get(url)
    assert not srv._thread.is_alive()


def test_a_taken_port_is_an_error(server: Server, flags: Flags) -> None:
    with pytest.raises(OSError):
        serve("127.0.0.1", server.port, health=flags.health, ready=flags.readiness)
