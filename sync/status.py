"""What ``cdcsync status`` reports: checkpoints, runs, backlog, and loud warnings."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from conflict.store import ConflictStore
from sync import dlq
from sync.context import open_state
from sync.runlock import lock_name
from sync.state import open_store
from sync.state.leases import holder_alive, live_leases
from sync.state.store import StateStore


def collect_status(cfg: Any, *, endpoints: bool = True) -> dict[str, Any]:
    """Everything ``cdcsync status`` shows; ``endpoints=False`` reads the state store only.

    Without endpoints nothing is contacted but the state store (the review UI's
    overview, which must answer at once even when an endpoint is slow or down).
    The warnings quote drivers' errors and stored run errors, which may echo a
    DSN: they are masked here, for ``status``, ``status --json`` and the review UI.
    """
    from sync.logs import mask_secrets, register_secrets

    info = _collect(cfg, endpoints=endpoints)
    register_secrets(getattr(cfg, "secrets", ()))
    info["warnings"] = [mask_secrets(str(w)) for w in info["warnings"]]
    return info


def _collect(cfg: Any, *, endpoints: bool) -> dict[str, Any]:
    # (the review UI's overview answers at once; the CLI tries as `connect:` says)
    store = open_state(cfg) if endpoints else open_store(cfg.state.url)
    try:
        pending = store.outbox_depth(cfg.pipeline)
        info: dict[str, Any] = {
            "pipeline": cfg.pipeline,
            "checkpoints": store.checkpoints(cfg.pipeline),
            "runs": store.runs(cfg.pipeline),
            "snapshots": _snapshots(store.snapshots_under_way(cfg.pipeline)),
            "open_conflicts": ConflictStore(store.engine).count(cfg.pipeline, "open"),
            "open_quarantine": _open_quarantine(cfg, store.engine),
            "dead_letters": dlq.depth(store, cfg.pipeline),
            "outbox": pending,
            "processes": processes(store, cfg.pipeline),
            "endpoints": {},
            "warnings": [],
        }
        info["warnings"] += _gone_entities(cfg, store)
    finally:
        store.close()
    failed = _last_run_failed(info["runs"])
    if failed:
        info["warnings"].append(failed)
    if not endpoints:
        return info
    # Endpoint-specific health (e.g. a PostgreSQL slot holding WAL) where a connector has it.
    from connectors.registry import open_endpoint

    for name, settings in cfg.endpoints.items():
        try:
            ep = open_endpoint(name, settings, pipeline=cfg.pipeline)
        except Exception as exc:
            info["warnings"].append(f"endpoint {name} unreachable: {exc}")
            continue
        try:
            report = getattr(ep, "status", None)
            if report is not None:
                st = report()
                info["endpoints"][name] = st
                info["warnings"].extend(f"{name}: {w}" for w in st.get("warnings", []))
        except Exception as exc:  # endpoints connect lazily: the report is the first contact
            info["warnings"].append(f"endpoint {name} unreachable: {exc}")
        finally:
            ep.close()
    return info


def _gone_entities(cfg: Any, store: StateStore) -> list[str]:
    """A warning for each entity the state store knows and the pipeline file no longer
    names: its states stay until forgotten, and a run stops on one that looks renamed."""
    from sync.renamed import known_entities

    return [f"the state store keeps what it knows of entity {name}, which the pipeline file"
            f" no longer names: `cdcsync entity forget PIPELINE {name}` drops it, or"
            f" `cdcsync entity rename PIPELINE {name} NEW` if it was renamed"
            for name in sorted(known_entities(store, cfg.pipeline)) if name not in cfg.entities]


def _last_run_failed(runs: list[dict[str, Any]]) -> str | None:
    """A warning when the latest finished batch run failed: its error, not only its row
    among the recent runs (a scheduled run that fails every time is a thing to fix)."""
    import datetime as dt

    last = next((r for r in runs if r["command"] == "run" and r["status"] != "running"), None)
    if last is None or last["status"] != "failed":
        return None
    errors = (last.get("summary") or {}).get("errors") or ["(no error recorded)"]
    when = dt.datetime.fromtimestamp(last["started_at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"the last run (#{last['id']}, {when}) failed: {errors[0]}"


def _snapshots(under_way: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Snapshots under way; of a direct one (sync/snapshot_direct.py) only its source:
    the other endpoints are known empty and are not read."""
    from sync.snapshot_direct import DIRECT

    direct = {s["entity"] for s in under_way if s["status"] == DIRECT}
    return [s for s in under_way if s["entity"] not in direct or s["status"] == DIRECT]


def _open_quarantine(cfg: Any, engine: sa.engine.Engine) -> int:
    """Quarantined and held changes waiting for a steward (0 for a pipeline without suites)."""
    if not any(e.quality.suite is not None for e in cfg.entities.values()):
        return 0
    from sync.quality.store import QuarantineStore

    return QuarantineStore(engine).count_open(cfg.pipeline)


def processes(store: StateStore, pipeline: str) -> list[dict[str, Any]]:
    """The processes working on ``pipeline`` now, from their live leases: which daemon
    reads which source, which processes apply (daemons and ``cdcsync worker``, with
    how many partitions each holds on a shared broker), a batch run in progress.
    Each ``{"holder": host:pid:id, "since": first lease taken, "until": last lease's
    expiry, "alive": whether the process runs (None: on another machine), "doing": [...]}``.
    """
    by_holder: dict[str, dict[str, Any]] = {}

    def note(lease: tuple[str, str, float, float], doing: str | None) -> None:
        _, holder, since, until = lease
        p = by_holder.get(holder)
        if p is None:  # (once per holder: not a process look-up per partition lease)
            p = by_holder[holder] = {"holder": holder, "since": since, "until": until,
                                     "alive": holder_alive(holder), "doing": []}
        p["since"], p["until"] = min(p["since"], since), max(p["until"], until)
        if doing is not None and doing not in p["doing"]:
            p["doing"].append(doing)

    for lease in live_leases(store, f"read:{pipeline}:"):
        note(lease, f"reads {lease[0].removeprefix(f'read:{pipeline}:')}")
    for lease in live_leases(store, f"members:{pipeline}:"):
        note(lease, None)  # (an applier on a shared broker: its partitions say more)
    partitions: dict[str, int] = {}
    for lease in live_leases(store, f"apply:{pipeline}:"):
        partitions[lease[1]] = partitions.get(lease[1], 0) + 1
        note(lease, None)
    for p in by_holder.values():
        n = partitions.get(p["holder"], 0)
        if n:
            p["doing"].append(f"applies {n} partition{'s' if n != 1 else ''}")
        elif not p["doing"]:
            p["doing"].append("applies (no partition yet)")
    run = lock_name(pipeline)
    for lease in live_leases(store, run):
        if lease[0] == run:
            note(lease, "batch run")
    return sorted(by_holder.values(), key=lambda p: (p["since"], p["holder"]))
