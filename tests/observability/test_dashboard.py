"""docs/grafana/cdcsync.json: valid, on ${DS_PROMETHEUS}, and in step with sync/metrics.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sync.metrics import REGISTRY

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "cdcsync.json"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# a metric name; selectors by name pattern ({__name__=~"cdcsync_.+"}) are removed first
NAME = re.compile(r"\bcdcsync_[a-z0-9_]*[a-z0-9]\b")
NAME_PATTERN = re.compile(r'__name__\s*=~\s*"[^"]*"')
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def load() -> dict[str, Any]:
    with DASHBOARD.open(encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def defined() -> dict[str, str]:
    """Exposed family name -> type, for every cdcsync metric in the registry."""
    return {f.name + ("_total" if f.type == "counter" else ""): f.type
            for f in REGISTRY.collect() if f.name.startswith("cdcsync_")}


def family_of(series: str, known: dict[str, str]) -> str | None:
    if series in known:
        return series
    for suffix in HISTOGRAM_SERIES:
        base = series.removesuffix(suffix)
        if base != series and known.get(base) == "histogram":
            return base
    return None


def referenced(expr: str) -> set[str]:
    return set(NAME.findall(NAME_PATTERN.sub("", expr)))


def balanced(expr: str) -> bool:
    pairs, stack = {")": "(", "}": "{", "]": "["}, []
    in_string = False
    for ch in expr:
        if ch == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif ch in "({[":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack and not in_string


def test_every_panel_queries_the_datasource_variable() -> None:
    dash = load()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    shown = panels(dash)
    assert len(shown) >= 12
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    ids = [p["id"] for p in rows + shown]
    assert len(ids) == len(set(ids))
    for p in shown:
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, p["title"]
            assert t["expr"].strip() and balanced(t["expr"]), (p["title"], t["expr"])


def test_panels_reference_only_defined_metrics_and_every_metric_has_a_panel() -> None:
    dash = load()
    known = defined()
    in_panels: set[str] = set()
    for p in panels(dash):
        for t in p["targets"]:
            for series in referenced(t["expr"]):
                family = family_of(series, known)
                assert family is not None, f"panel {p['title']!r} uses unknown {series}"
                in_panels.add(family)
    for var in dash["templating"]["list"]:
        for series in referenced(var.get("definition", "")):
            assert family_of(series, known) is not None, f"variable {var['name']}: {series}"
    assert set(known) - in_panels == set(), "metrics without a panel"


def test_the_asked_panels_are_there() -> None:
    exprs = {p["title"]: " ".join(t["expr"] for t in p["targets"]) for p in panels(load())}

    def panel_with(*needles: str) -> bool:
        return any(all(n in e for n in needles) for e in exprs.values())

    assert panel_with("rate(cdcsync_changes_read_total", "by (endpoint, entity)")
    assert panel_with("rate(cdcsync_changes_applied_total", "by (endpoint, entity)")
    assert panel_with("histogram_quantile(0.5", "histogram_quantile(0.99",
                      "cdcsync_commit_to_apply_seconds_bucket")
    assert panel_with("histogram_quantile(0.99", "cdcsync_batch_seconds_bucket", "stage")
    assert panel_with("cdcsync_conflicts_total", "outcome")
    for name in ("cdcsync_lag_seconds", "cdcsync_lag_bytes", "cdcsync_quarantined_total",
                 "cdcsync_dlq_depth", "cdcsync_outbox_depth", "cdcsync_retries_total",
                 "cdcsync_breaker_state"):
        assert panel_with(name), name


def test_the_checker_itself_catches_an_unknown_name() -> None:
    known = defined()
    assert referenced('rate(cdcsync_chnages_read_total{pipeline="p"}[5m])') == \
        {"cdcsync_chnages_read_total"}
    assert family_of("cdcsync_chnages_read_total", known) is None
    assert family_of("cdcsync_batch_seconds_bucket", known) == "cdcsync_batch_seconds"
    assert family_of("cdcsync_dlq_depth_bucket", known) is None  # a gauge has no buckets
    assert referenced('x and on (instance) {__name__=~"cdcsync_.+"}') == set()
    assert not balanced("sum(rate(x[5m])")
