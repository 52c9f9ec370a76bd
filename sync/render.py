"""Human output of the CLI: the run summary, conflict report, status and drift."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from conflict.canonical import row_from_json
from sync.summary import RunSummary


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int], None] | None]:
    """Progress bars (one per label: ``snapshot crm``, ``read billing``) when stdout is a
    terminal; nothing otherwise."""
    if not enabled or not sys.stdout.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def advance(label: str, rows: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=None)
            bar.advance(tasks[label], rows)

        yield advance


def direction_rows(summary: RunSummary, cfg: Any) -> list[dict[str, Any]]:
    """One row per entity and direction (source -> target)."""
    rows = []
    for name, ent in cfg.entities.items():
        for src in ent.sources():
            read = summary.directions.get((name, src, "*"))
            for tgt in ent.sinks():
                if tgt == src:
                    continue
                app = summary.directions.get((name, src, tgt))
                rows.append({
                    "entity": name, "direction": f"{src} -> {tgt}",
                    "read": read.read if read else 0,
                    "applied": app.applied if app else 0,
                    "skipped": app.skipped if app else 0,
                    "echoes": read.echoes if read else 0,
                    "resolved": read.resolved if read else 0,
                    "parked": read.parked if read else 0,
                    "seconds": (read.seconds if read else 0) + (app.seconds if app else 0),
                })
        # Applies are counted by where the winning content came from: a merge (or a
        # steward's pick) whose origin is the target itself is written back there too.
        for tgt in ent.sinks():
            back = summary.directions.get((name, tgt, tgt))
            if back is not None and (back.applied or back.skipped):
                rows.append({"entity": name, "direction": f"merge -> {tgt}", "read": 0,
                             "applied": back.applied, "skipped": back.skipped, "echoes": 0,
                             "resolved": 0, "parked": 0, "seconds": back.seconds})
    return rows


def summary_table(summary: RunSummary, cfg: Any) -> Table:
    t = Table(title=f"cdcsync run: {summary.pipeline} ({summary.seconds:.2f}s, "
                    f"{summary.status})")
    for col in ("entity", "direction", "read", "applied", "echoes dropped",
                "conflicts resolved", "conflicts parked", "duration"):
        t.add_column(col, justify="left" if col in ("entity", "direction") else "right")
    for r in direction_rows(summary, cfg):
        t.add_row(r["entity"], r["direction"], str(r["read"]), str(r["applied"]),
                  str(r["echoes"]), str(r["resolved"]), str(r["parked"]),
                  f"{r['seconds']:.2f}s")
    if summary.snapshot_rows:
        t.caption = f"snapshot: {summary.snapshot_rows} rows reconciled"
    if summary.open_conflicts:
        t.caption = (t.caption or "") + (
            f"  {summary.open_conflicts} conflict(s) wait for a steward: "
            "cdcsync conflicts list PIPELINE"
            + (" (one decision for all: conflicts resolve PIPELINE --all --pick ENDPOINT)"
               if summary.open_conflicts > 1 else ""))
    rejected = summary.total("rejected")
    if rejected or summary.dead_letters:
        t.caption = (t.caption or "") + (
            (f"  {rejected} row(s) refused by a target this run;" if rejected else "")
            + f"  {summary.dead_letters} dead letter(s) wait for an operator:"
            " cdcsync dlq list PIPELINE")
    for q in summary.quality.values():  # the data-quality gate (sync/quality)
        failed = ", ".join(f"{label} {n}" for label, n in sorted(q.failures.items()))
        t.caption = (t.caption or "") + (
            f"  {q.entity}: {q.quarantined} quarantined, {q.held} held"
            + (f" ({failed})" if failed else "") + f"; {q.open} open: cdcsync quarantine list")
    return t


def _fmt(v: Any) -> str:
    """A value as the review UI shows it: ``NULL``, ``(empty)``, plain literals."""
    from sync.review.format import cell

    return cell(v).text


def conflicts_table(rows: list[dict[str, Any]], show_all: bool, more: str | None = None
                    ) -> Table:
    t = Table(title="conflicts" + ("" if show_all else " waiting for a steward"))
    for col in ("id", "entity", "key", "status", "policy", "winner", "reason", "when"):
        t.add_column(col, max_width=70 if col == "reason" else None, overflow="fold")
    for r in rows:
        t.add_row(r["id"][:12], r["entity"], r["key"], r["status"], r["policy"],
                  r["winner"] or "-", r["reason"] or "", _when(r["created_at"]))
    if not rows:
        t.caption = "none"
    elif more:
        t.caption = more
    return t


def sides_of(rec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A conflict record's sides by endpoint, whichever form it was stored in."""
    sides = rec["sides"]
    if "by_endpoint" in sides:
        return dict(sides["by_endpoint"])
    return {s["e"]: s for s in (sides["current"], sides["incoming"])}


#: a side (or decision) that deletes the row; a version without the column
_MISSING, _ABSENT = object(), object()


def _shown(v: Any) -> str:
    return "∅ (deleted)" if v is _MISSING else "—" if v is _ABSENT else _fmt(v)


def conflict_detail(rec: dict[str, Any]) -> Group:
    sides = sides_of(rec)
    names = sorted(sides)
    contents = {n: row_from_json(sides[n]["c"]) for n in names}
    resolution = row_from_json(rec["resolution"]) if rec["status"] == "resolved" else None
    cols: list[str] = []
    for version in [*contents.values(), resolution]:
        for k in version or {}:
            if k not in cols:
                cols.append(k)
    t = Table(title=f"conflict {rec['id']} on {rec['entity']} {rec['key']}")
    t.add_column("column")
    for n in names:
        read = "read by a snapshot " if sides[n].get("s") else ""  # (no commit time)
        t.add_column(f"{n} ({read}{_when(sides[n]['t'])})")
    if rec["status"] == "resolved":
        t.add_column("decided")
    for c in cols:
        held = [_MISSING if contents[n] is None else (contents[n] or {}).get(c, _ABSENT)
                for n in names]
        vals = [_shown(v) for v in held]
        style = "bold yellow" if any(v != held[0] for v in held) else ""
        extra = [] if rec["status"] != "resolved" else [
            _shown(resolution.get(c, _ABSENT) if resolution is not None else _MISSING)]
        t.add_row(Text(c, style=style), *vals, *extra)
    info = Text(
        f"status: {rec['status']}   policy: {rec['policy']}   winner: {rec['winner'] or '-'}\n"
        f"reason: {rec['reason'] or '-'}\n"
        f"decided by: {rec['decided_by'] or '-'} at {_when(rec['decided_at'])}"
    )
    return Group(t, info)


#: a snapshot's progress status as the status table says it
_SNAPSHOT_STATUS = {"reading": "reading", "staged": "read, to reconcile",
                    "direct": "reading and applying"}


def status_view(info: dict[str, Any]) -> Group:
    t = Table(title=f"pipeline {info['pipeline']}: checkpoints")
    for col in ("endpoint", "entity", "checkpoint", "updated"):
        t.add_column(col)
    for c in info["checkpoints"]:
        t.add_row(c["endpoint"], c["entity"], str(c["checkpoint"]), _when(c["updated_at"]))
    runs = Table(title="recent runs")
    for col in ("id", "command", "started", "status", "seconds"):
        runs.add_column(col)
    for r in info["runs"]:
        secs = (r["finished_at"] - r["started_at"]) if r["finished_at"] else None
        runs.add_row(str(r["id"]), r["command"], _when(r["started_at"]), r["status"],
                     f"{secs:.2f}" if secs is not None else "-")
    parts: list[Any] = [t]
    if info.get("snapshots"):
        snaps = Table(title="snapshots under way (the next run or daemon start resumes them)")
        for col in ("entity", "endpoint", "status", "rows", "updated"):
            snaps.add_column(col)
        for sn in info["snapshots"]:
            snaps.add_row(sn["entity"], sn["endpoint"], _SNAPSHOT_STATUS.get(sn["status"],
                          sn["status"]), f"{sn['rows']:,}", _when(sn["updated_at"]))
        parts.append(snaps)
    if info.get("processes"):
        procs = Table(title="processes working on the pipeline (live leases)")
        for col in ("holder (host:pid:id)", "since", "doing"):
            procs.add_column(col)
        for pr in info["processes"]:
            doing = Text(", ".join(pr["doing"]))
            if pr.get("alive") is False:
                doing.append(" - process gone", "bold")
                doing.append(f"; its lease ends {_when(pr['until'])}")
            procs.add_row(pr["holder"], _when(pr["since"]), doing)
        parts.append(procs)
    lines = [f"open conflicts: {info['open_conflicts']}",
             f"pending applies (outbox): {info['outbox']}"]
    if info.get("open_quarantine"):
        lines.append(f"open quarantine items: {info['open_quarantine']} "
                     "(cdcsync quarantine list PIPELINE)")
    if info.get("dead_letters"):
        lines.append(f"dead letters (applies refused for good): {info['dead_letters']} "
                     "(cdcsync dlq list PIPELINE)")
    text = Text("\n".join(lines))
    for w in info["warnings"]:
        text.append("\n")
        text.append("WARNING", "bold red")
        text.append(f": {w}")
    return Group(*parts, runs, text)


def drift_view(drifts: list[Any]) -> Table:
    t = Table(title="verify")
    for col in ("entity", "endpoint", "rows", "missing", "extra", "differing"):
        t.add_column(col)
    for d in drifts:
        t.add_row(d.entity, d.reference + " (reference)", str(d.rows.get(d.reference, 0)),
                  "", "", "")
        for ep, n in d.rows.items():
            if ep == d.reference:
                continue
            t.add_row("", ep, str(n), str(len(d.missing.get(ep, []))),
                      str(len(d.extra.get(ep, []))), str(len(d.differing.get(ep, []))))
    t.caption = ("in sync" if all(d.in_sync for d in drifts) else "DRIFT found")
    apart = [f"{d.entity}: {ep} and {d.reference} not compared on {', '.join(cols)}"
             " (a column one of them lacks)"
             for d in drifts for ep, cols in getattr(d, "uncompared", {}).items() if cols]
    if apart:
        t.caption += "\n" + "\n".join(apart)
    return t
