"""The metric names and labels the daemon codes against, and the one-line helpers."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram

from sync import metrics
from sync.metrics import REGISTRY
from sync.summary import RunSummary

#: exposed name -> (prometheus type, label names): the contract of issue 5's observability.
CONTRACT = {
    "cdcsync_changes_read_total": ("counter", ("pipeline", "endpoint", "entity")),
    "cdcsync_changes_applied_total": ("counter", ("pipeline", "endpoint", "entity")),
    "cdcsync_applies_skipped_total": ("counter", ("pipeline", "endpoint", "entity")),
    "cdcsync_echoes_dropped_total": ("counter", ("pipeline", "endpoint", "entity")),
    "cdcsync_conflicts_total": ("counter", ("pipeline", "entity", "outcome")),
    "cdcsync_quarantined_total": ("counter", ("pipeline", "entity")),
    "cdcsync_lag_seconds": ("gauge", ("pipeline", "endpoint", "entity")),
    "cdcsync_lag_bytes": ("gauge", ("pipeline", "endpoint")),
    "cdcsync_batch_seconds": ("histogram", ("pipeline", "stage")),
    "cdcsync_commit_to_apply_seconds": ("histogram", ("pipeline", "entity")),
    "cdcsync_dlq_depth": ("gauge", ("pipeline",)),
    "cdcsync_outbox_depth": ("gauge", ("pipeline",)),
    "cdcsync_retries_total": ("counter", ("pipeline", "endpoint")),
    "cdcsync_breaker_state": ("gauge", ("pipeline", "endpoint")),
    "cdcsync_reader_lease": ("gauge", ("pipeline", "endpoint")),
    "cdcsync_source_blocked": ("gauge", ("pipeline", "endpoint")),
}


def exposed_families() -> dict[str, str]:
    """Exposed name -> type of every cdcsync family in the registry."""
    out = {}
    for fam in REGISTRY.collect():
        if fam.name.startswith("cdcsync_"):
            out[fam.name + ("_total" if fam.type == "counter" else "")] = fam.type
    return out


def test_exactly_the_contracted_families() -> None:
    assert exposed_families() == {name: kind for name, (kind, _) in CONTRACT.items()}


def test_every_metric_takes_exactly_its_labels(pipeline: str) -> None:
    objects: dict[str, Any] = {m._name: m for m in vars(metrics).values()
                               if isinstance(m, Counter | Gauge | Histogram)}
    for name, (kind, labels) in CONTRACT.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        metric = objects[base]
        values = {label: f"{pipeline}-{label}" for label in labels}
        values["pipeline"] = pipeline
        child: Any = metric.labels(**values)  # raises ValueError on any other label set
        if kind == "histogram":
            child.observe(0.003)
            sample = REGISTRY.get_sample_value(f"{name}_count", values)
        else:
            if kind == "counter":
                child.inc()
            else:
                child.set(1)
            sample = REGISTRY.get_sample_value(name, values)
        assert sample == 1, name
        with pytest.raises(ValueError):
            metric.labels(**{**values, "unexpected": "x"})


def test_histogram_buckets_span_the_asked_ranges() -> None:
    assert metrics.BATCH_BUCKETS[0] == 0.001 and metrics.BATCH_BUCKETS[-1] == 10.0
    assert metrics.COMMIT_TO_APPLY_BUCKETS[0] == 0.001
    assert metrics.COMMIT_TO_APPLY_BUCKETS[-1] == 30.0
    assert list(metrics.BATCH_BUCKETS) == sorted(set(metrics.BATCH_BUCKETS))


def test_the_registry_is_cdcsyncs_own() -> None:
    import prometheus_client

    assert REGISTRY is not prometheus_client.REGISTRY
    assert prometheus_client.REGISTRY.get_sample_value("cdcsync_dlq_depth", {"pipeline": "x"}) \
        is None
    # the process's own cost is served too (the daemon's RSS target)
    assert (REGISTRY.get_sample_value("process_resident_memory_bytes") or 0) > 0


def test_observe_stage_times_the_block_even_when_it_raises(pipeline: str) -> None:
    labels = {"pipeline": pipeline, "stage": "apply"}
    with metrics.observe_stage(pipeline, "apply"):
        pass
    with pytest.raises(RuntimeError), metrics.observe_stage(pipeline, "apply"):
        raise RuntimeError("target down")
    assert REGISTRY.get_sample_value("cdcsync_batch_seconds_count", labels) == 2
    assert (REGISTRY.get_sample_value("cdcsync_batch_seconds_sum", labels) or -1) >= 0
    with pytest.raises(ValueError, match="unknown stage"), \
            metrics.observe_stage(pipeline, "decode"):  # type: ignore[arg-type]
        pass


def test_read_and_lag(pipeline: str) -> None:
    metrics.observe_read(pipeline, "crm", "customers", 5, 1000.0, now=1002.5)
    metrics.observe_read(pipeline, "crm", "customers", 3)
    labels = {"pipeline": pipeline, "endpoint": "crm", "entity": "customers"}
    assert REGISTRY.get_sample_value("cdcsync_changes_read_total", labels) == 8
    assert REGISTRY.get_sample_value("cdcsync_lag_seconds", labels) == 2.5
    metrics.set_lag(pipeline, "crm", "customers", None)  # idle: caught up
    assert REGISTRY.get_sample_value("cdcsync_lag_seconds", labels) == 0
    metrics.set_lag(pipeline, "crm", "customers", 2000.0, now=1000.0)  # clock skew
    assert REGISTRY.get_sample_value("cdcsync_lag_seconds", labels) == 0


def test_applied_counts_and_commit_to_apply_latency(pipeline: str) -> None:
    metrics.observe_applied(pipeline, "billing", "customers", [99.9995, 99.98, 70.0], now=100.0)
    metrics.observe_applied(pipeline, "billing", "customers", count=2)
    applied = {"pipeline": pipeline, "endpoint": "billing", "entity": "customers"}
    assert REGISTRY.get_sample_value("cdcsync_changes_applied_total", applied) == 5
    hist = {"pipeline": pipeline, "entity": "customers"}
    assert REGISTRY.get_sample_value("cdcsync_commit_to_apply_seconds_count", hist) == 3

    def bucket(le: str) -> float | None:
        return REGISTRY.get_sample_value("cdcsync_commit_to_apply_seconds_bucket",
                                         {**hist, "le": le})

    assert bucket("0.001") == 1  # 0.5 ms
    assert bucket("0.025") == 2  # 20 ms
    assert bucket("10.0") == 2 and bucket("30.0") == 3  # 30 s


def test_conflicts_breaker_and_depths(pipeline: str) -> None:
    metrics.record_conflict(pipeline, "customers", "resolved", 2)
    metrics.record_conflict(pipeline, "customers", "parked")
    with pytest.raises(ValueError):
        metrics.record_conflict(pipeline, "customers", "lost")  # type: ignore[arg-type]
    get = REGISTRY.get_sample_value
    assert get("cdcsync_conflicts_total",
               {"pipeline": pipeline, "entity": "customers", "outcome": "resolved"}) == 2
    assert get("cdcsync_conflicts_total",
               {"pipeline": pipeline, "entity": "customers", "outcome": "parked"}) == 1
    ep = {"pipeline": pipeline, "endpoint": "billing"}
    for state, value in (("open", 1), ("half-open", 2), (metrics.BreakerState.CLOSED, 0), (1, 1)):
        metrics.set_breaker(pipeline, "billing", state)
        assert get("cdcsync_breaker_state", ep) == value
    with pytest.raises(KeyError):
        metrics.set_breaker(pipeline, "billing", "ajar")


def test_losing_the_lease_drops_that_sources_lag(pipeline: str) -> None:
    metrics.set_lease(pipeline, "crm", True)
    metrics.observe_read(pipeline, "crm", "customers", 1, 10.0, now=11.0)
    metrics.observe_read(pipeline, "erp", "customers", 1, 10.0, now=12.0)
    metrics.LAG_BYTES.labels(pipeline, "crm").set(4096)
    crm = {"pipeline": pipeline, "endpoint": "crm"}
    erp = {"pipeline": pipeline, "endpoint": "erp", "entity": "customers"}
    assert REGISTRY.get_sample_value("cdcsync_reader_lease", crm) == 1
    metrics.set_lease(pipeline, "crm", False)
    assert REGISTRY.get_sample_value("cdcsync_reader_lease", crm) == 0
    assert REGISTRY.get_sample_value("cdcsync_lag_seconds", {**crm, "entity": "customers"}) \
        is None
    assert REGISTRY.get_sample_value("cdcsync_lag_bytes", crm) is None
    assert REGISTRY.get_sample_value("cdcsync_lag_seconds", erp) == 2  # another source's stays


def test_summary_exporter_adds_what_changed_since_last_time(pipeline: str) -> None:
    summary = RunSummary(pipeline=pipeline)
    exporter = metrics.SummaryExporter(pipeline)
    read = summary.at("customers", "crm", "*")
    read.read, read.echoes, read.resolved, read.parked = 10, 2, 1, 1
    write = summary.at("customers", "crm", "billing")
    write.applied, write.skipped = 7, 1
    summary.quality_at("customers").quarantined = 1
    exporter.export(summary)
    read.read += 5
    write.applied += 3
    exporter.export(summary)
    exporter.export(summary)  # nothing new: nothing added
    get = REGISTRY.get_sample_value
    at_crm = {"pipeline": pipeline, "endpoint": "crm", "entity": "customers"}
    at_billing = {"pipeline": pipeline, "endpoint": "billing", "entity": "customers"}
    assert get("cdcsync_changes_read_total", at_crm) == 15
    assert get("cdcsync_echoes_dropped_total", at_crm) == 2
    assert get("cdcsync_changes_applied_total", at_billing) == 10
    assert get("cdcsync_applies_skipped_total", at_billing) == 1
    assert get("cdcsync_changes_read_total", {**at_crm, "endpoint": "billing"}) is None
    assert get("cdcsync_conflicts_total",
               {"pipeline": pipeline, "entity": "customers", "outcome": "parked"}) == 1
    assert get("cdcsync_quarantined_total", {"pipeline": pipeline, "entity": "customers"}) == 1
