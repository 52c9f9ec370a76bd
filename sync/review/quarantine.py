"""Quarantine pages: changes stopped by the data-quality gate, and a steward's decision.

A decision is :func:`sync.quality.release.decide`, as ``cdcsync quarantine
replay|discard`` makes it: **replay** re-reads the row at its source and
validates it again, **accept** applies the change as it was captured (with a
reason), **discard** drops it (with a reason).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from conflict.canonical import canonical_value, from_json_value, row_from_json
from sync.quality.store import STATUSES, UNRESOLVED, QuarantineStore
from sync.review import pipeline
from sync.review.format import Cell, cell, left_over, text_of
from sync.review.security import actor

log = logging.getLogger("cdcsync.review")
bp = Blueprint("quarantine", __name__)
LIMIT = 500
ACTIONS = {"replay": "replayed", "accept": "accepted", "discard": "discarded"}


OP_LABELS = {"read": "snapshot row"}  # as a person says it; others (insert...) as they are


def op_label(op: str) -> str:
    return OP_LABELS.get(op, op)


@dataclass(frozen=True)
class ChangeRow:
    name: str
    before: Cell | None  # None: the change has no before image
    after: Cell | None  # None: a delete
    failing: bool
    changed: bool  # both images present and different


@dataclass(frozen=True)
class Failure:
    label: str
    observed: str
    arguments: str
    severity: str


def change_rows(item: Mapping[str, Any]) -> list[ChangeRow]:
    change = item["change"]
    before = row_from_json(change.get("before"))
    after = row_from_json(change.get("after"))
    failing = {c for f in item["failures"] for c in f.get("columns", [])}
    cols = list(dict.fromkeys([*(before or {}), *(after or {})]))
    return [ChangeRow(c, None if before is None else cell(before.get(c)),
                      None if after is None else cell(after.get(c)), c in failing,
                      before is not None and after is not None
                      and canonical_value(before.get(c)) != canonical_value(after.get(c)))
            for c in cols]


def failures(item: Mapping[str, Any]) -> list[Failure]:
    out = []
    for f in item["failures"]:
        seen = ", ".join(f"{c} = {text_of(from_json_value(v))}"
                         for c, v in (f.get("observed") or {}).items())
        args = ", ".join(f"{k} = {json.dumps(v)}" for k, v in (f.get("kwargs") or {}).items()
                         if k not in ("column", "column_A", "column_B", "column_list"))
        out.append(Failure(str(f.get("expectation_label") or f.get("expectation") or "?"),
                           seen or "-", args or "-", str(f.get("severity", "critical"))))
    return out


def _items() -> QuarantineStore:
    return QuarantineStore(pipeline.store().engine)


def _find(item_id: int) -> dict[str, Any]:
    item = _items().get(pipeline.name(), item_id)
    if item is None:
        abort(404, description=f"No quarantine item #{item_id} in pipeline "
                               f"{pipeline.name()!r}.")
    return item


@bp.get("/quarantine")
def index() -> str:
    show_all = request.args.get("all") in ("1", "on", "true", "yes")
    entity = request.args.get("entity") or None
    status = request.args.get("status") or None
    wanted = [status] if status in STATUSES else (None if show_all else list(UNRESOLVED))
    items = _items().items(pipeline.name(), statuses=wanted, entity=entity, limit=LIMIT)
    labels = {it["id"]: sorted({f.get("expectation_label") or f.get("expectation", "?")
                                for f in it["failures"]}) for it in items}
    return render_template("quarantine.html", items=items, labels=labels, show_all=show_all,
                           entity=entity, entities=sorted(pipeline.cfg().entities), limit=LIMIT)


@bp.post("/quarantine/replay-all")
def replay_all() -> Any:
    """Every quarantined item (of the entity) replayed (``cdcsync quarantine replay
    --all``): read again at its source and validated; what passes flows."""
    from connectors.base import ConnectorError
    from sync.context import open_pipeline
    from sync.quality.release import replay_all as release_all
    from sync.quality.suite import SuiteError

    entity = request.form.get("entity") or None
    back = redirect(url_for("quarantine.index", entity=entity) if entity
                    else url_for("quarantine.index"), code=303)
    if entity is not None and entity not in pipeline.cfg().entities:
        flash(f"No entity {entity!r} in this pipeline.", "error")
        return back
    who = actor()
    try:
        with pipeline.deciding, open_pipeline(pipeline.cfg()) as ctx:
            out = release_all(ctx, entity=entity, actor=who)
    except SuiteError as exc:
        flash(str(exc), "error")
        return back
    except ConnectorError as exc:
        log.warning("replaying every quarantined item failed at an endpoint: %s", exc)
        flash(f"An endpoint failed while the items were replayed ({exc}). Those replayed so"
              " far are kept; the others stay quarantined.", "error")
        return back
    log.info("%d quarantined items replayed by %s", out["replayed"], who)
    message = (f"{out['replayed']} replayed by {who}: applied to {out['applied']} endpoint"
               f" row{'' if out['applied'] == 1 else 's'}")
    if out["released"]:
        message += f", {out['released']} held change(s) released"
    if out["superseded"]:
        message += f", {out['superseded']} superseded by the rows read back"
    flash(message + ".", "ok")
    if out["failing"]:
        flash(f"{len(out['failing'])} still quarantined: they fail the suite at their source"
              " (fix them there and replay, or accept one as captured with a reason).",
              "error")
    if out["requarantined"]:
        flash(f"{len(out['requarantined'])} held change(s) released behind them fail the"
              " suite in their turn: now quarantined.", "error")
    if out["left"]:  # decided meanwhile (by another steward), or the entity is gone
        flash(left_over(out["left"], "not replayed"), "error")
    return back


@bp.get("/quarantine/<int:item_id>")
def detail(item_id: int) -> Any:
    return _page(_find(item_id))


def _page(item: Mapping[str, Any], *, error: str | None = None, reason: str = "",
          status: int = 200) -> Any:
    qs = _items()
    unresolved = qs.unresolved(pipeline.name(), item["entity"], item["key"])
    head = unresolved[0] if unresolved else None
    # what waits behind this item: only a key's quarantined (first) item holds others
    held = unresolved[1:] if head is not None and head["id"] == item["id"] else []
    html = render_template("quarantine_item.html", item=item, rows=change_rows(item),
                           failures=failures(item), held=held, head=head, error=error,
                           reason=reason)
    return (html, status) if status != 200 else html


@bp.post("/quarantine/<int:item_id>/decide")
def decide(item_id: int) -> Any:
    from connectors.base import ConnectorError
    from sync.context import open_pipeline
    from sync.quality.release import QuarantineError
    from sync.quality.release import decide as release_decide
    from sync.quality.suite import SuiteError

    item = _find(item_id)
    action = request.form.get("action", "")
    reason = request.form.get("reason", "").strip()
    if action not in ACTIONS:
        return _page(item, error=f"Unknown action {action!r}.", reason=reason, status=400)
    who = actor()
    try:
        with pipeline.deciding, open_pipeline(pipeline.cfg()) as ctx:
            out = release_decide(ctx, item_id, action, actor=who, reason=reason)
    except (QuarantineError, SuiteError) as exc:
        return _page(_find(item_id), error=str(exc), reason=reason, status=400)
    except ConnectorError as exc:
        log.warning("quarantine item #%s: %s failed at an endpoint: %s", item_id, action, exc)
        now = _find(item_id)
        if now["status"] in UNRESOLVED:
            return _page(now, error=f"An endpoint failed, nothing was decided: {exc}",
                         reason=reason, status=502)
        flash(f"#{item_id} {now['status']} by {now['decided_by']}, but applying it failed at "
              f"an endpoint ({exc}). The decision is kept; the next run (or the daemon) "
              "applies it.", "error")
        return redirect(url_for("quarantine.detail", item_id=item_id), code=303)
    log.info("quarantine item #%s: %s by %s", item_id, action, who)
    if out.refused:
        flash(f"#{item_id} still fails the suite at its source; it stays quarantined "
              "(the failures below are what was read now). Fix the row at its source and "
              "replay, or accept it as captured with a reason.", "error")
        return redirect(url_for("quarantine.detail", item_id=item_id), code=303)
    o = out.to_json()
    message = (f"#{item_id} {out.status} by {who}: applied to {o['applied']} endpoint "
               f"row{'' if o['applied'] == 1 else 's'}")
    if out.released:
        message += f", {out.released} held change(s) released"
    if out.superseded:
        message += f", {out.superseded} superseded by the row read back"
    if out.requarantined is not None:
        message += f"; held change #{out.requarantined} fails too and is quarantined now"
    flash(message + ".", "ok")
    return redirect(url_for("quarantine.detail", item_id=item_id), code=303)
