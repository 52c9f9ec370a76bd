"""Optional tracing: a no-op unless enabled, real spans with the SDK's in-memory exporter."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest

from sync import metrics, tracing

pytestmark = pytest.mark.usefixtures("restore_tracing")


@pytest.fixture
def no_tracing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CDCSYNC_TRACING", "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    tracing.configure(enabled=None)


@pytest.mark.usefixtures("no_tracing_env")
def test_off_by_default_and_every_call_is_a_no_op() -> None:
    assert not tracing.enabled()
    with tracing.span(tracing.READ, pipeline="p") as sp:
        assert sp is None
        assert tracing.inject() == {}
        assert tracing.current_ids() == {}
    with tracing.extract({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}):
        assert tracing.inject() == {}
    with pytest.raises(KeyError), tracing.span(tracing.APPLY):
        raise KeyError("passes through")


@pytest.mark.parametrize(("env", "wanted"), [
    ({}, False),
    ({"CDCSYNC_TRACING": "1"}, True),
    ({"CDCSYNC_TRACING": "true"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "CDCSYNC_TRACING": "0"}, False),
])
@pytest.mark.usefixtures("no_tracing_env")
def test_the_environment_decides(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                 wanted: bool) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert tracing.wanted() is wanted
    assert tracing.configure(enabled=False) is False  # an explicit say beats the environment
    assert tracing.wanted() is False


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "CDCSYNC_TRACING"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**full, **env}, check=True, timeout=120)


def test_asked_for_but_not_installed_is_a_warned_no_op() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "import logging; logging.basicConfig(level='WARNING')\n"
        "from sync import tracing\n"
        "with tracing.span('cdcsync.read', pipeline='p') as sp:\n"
        "    assert sp is None and tracing.inject() == {}\n"
        "print(tracing.enabled())\n"
    )
    res = run_python(code, CDCSYNC_TRACING="1")
    assert res.stdout.strip() == "False"
    assert "opentelemetry-api is not installed" in res.stderr


def test_importing_sync_modules_does_not_import_opentelemetry() -> None:
    code = ("import sys\n"
            "import sync.tracing, sync.metrics, sync.logs, sync.http\n"
            "from sync import tracing\n"
            "with tracing.span('cdcsync.read'):\n"
            "    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    assert run_python(code).stdout.strip() == "[]"


def test_an_otlp_endpoint_without_an_exporter_warns_and_still_traces() -> None:
    code = ("import logging, sys; logging.basicConfig(level='WARNING')\n"
            "sys.modules['opentelemetry.exporter'] = None  # whether or not it is installed\n"
            "from sync import tracing\n"
            "print(tracing.enabled())\n")
    res = run_python(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert res.stdout.strip() == "True"
    assert "opentelemetry-exporter-otlp-proto-http is not installed" in res.stderr


# --- the real path, with opentelemetry-sdk ----------------------------------------------


def test_apply_span_is_a_child_of_the_read_span_across_a_thread(spans: Any) -> None:
    with tracing.span(tracing.READ, pipeline="crm-billing", endpoint="crm", changes=3) as read:
        assert read is not None
        message = json.loads(json.dumps({"trace": tracing.inject()}))  # as in a task message
    assert set(message["trace"]) >= {"traceparent"}

    def worker(carry: bool) -> None:
        with tracing.extract(message["trace"] if carry else None), \
                tracing.span(tracing.APPLY, endpoint="billing", skipped=None):
            pass

    for carry in (True, False):
        t = threading.Thread(target=worker, args=(carry,))
        t.start()
        t.join()
    read_span, carried, lone = spans.get_finished_spans()
    assert read_span.name == "cdcsync.read"
    assert dict(read_span.attributes) == {"pipeline": "crm-billing", "endpoint": "crm",
                                          "changes": 3}
    assert carried.name == lone.name == "cdcsync.apply"
    assert carried.parent is not None
    assert carried.parent.span_id == read_span.context.span_id
    assert carried.context.trace_id == read_span.context.trace_id
    assert dict(carried.attributes) == {"endpoint": "billing"}  # None left out
    assert lone.parent is None and lone.context.trace_id != read_span.context.trace_id
    hexid = format(read_span.context.trace_id, "032x")
    assert message["trace"]["traceparent"].split("-")[1] == hexid


def test_stage_spans_nest_and_record_errors(spans: Any, pipeline: str) -> None:
    from opentelemetry.trace import StatusCode

    with metrics.observe_stage(pipeline, "read", entity="customers"):
        with metrics.observe_stage(pipeline, "validate"):
            pass
        with metrics.observe_stage(pipeline, "resolve"):
            pass
        with pytest.raises(RuntimeError), metrics.observe_stage(pipeline, "apply"):
            raise RuntimeError("target down")
    by_name = {s.name: s for s in spans.get_finished_spans()}
    assert set(by_name) == {"cdcsync.read", "cdcsync.validate", "cdcsync.resolve",
                            "cdcsync.apply"}
    root = by_name["cdcsync.read"]
    assert dict(root.attributes) == {"pipeline": pipeline, "entity": "customers"}
    for name in ("cdcsync.validate", "cdcsync.resolve", "cdcsync.apply"):
        assert by_name[name].parent.span_id == root.context.span_id
    failed = by_name["cdcsync.apply"]
    assert failed.status.status_code is StatusCode.ERROR
    assert [e.name for e in failed.events] == ["exception"]
    assert metrics.REGISTRY.get_sample_value(
        "cdcsync_batch_seconds_count", {"pipeline": pipeline, "stage": "apply"}) == 1


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_carry_the_trace_id(spans: Any) -> None:
    from sync.logs import configure

    buf = io.StringIO()
    configure(json=True, level="INFO", stream=buf)
    log = logging.getLogger("cdcsync.tests.observability")
    with tracing.span(tracing.RESOLVE) as sp:
        log.info("inside")
    log.info("outside")
    inside, outside = (json.loads(line) for line in buf.getvalue().splitlines())
    assert inside["trace_id"] == format(sp.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(sp.get_span_context().span_id, "016x")
    assert "trace_id" not in outside
