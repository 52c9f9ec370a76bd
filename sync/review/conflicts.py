"""Conflict pages: the list, one conflict side by side, and a steward's decision.

A decision is :func:`sync.steward.decide`, as ``cdcsync conflicts resolve``
makes it: a side whole (``pick``) or column by column (``fields``), applied at
once to every endpoint that lacks it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from conflict.canonical import canonical_value, row_from_json
from conflict.store import ConflictStore
from sync.render import sides_of as stored_sides
from sync.review import pipeline
from sync.review.format import ABSENT, DELETED, Cell, cell, left_over
from sync.review.security import actor

log = logging.getLogger("cdcsync.review")
bp = Blueprint("conflicts", __name__)
LIMIT = 500
FIELD_PREFIX = "col:"  # form field per column: col:<column> = <endpoint>


@dataclass(frozen=True)
class SideHead:
    endpoint: str
    committed_at: float | None
    deleted: bool
    snapshot_read: bool = False  # committed_at is when a snapshot read it


@dataclass(frozen=True)
class ColumnRow:
    name: str
    base: Cell | None  # the version both sides started from, when known
    sides: list[Cell]  # one per SideHead, in the same order
    differs: bool
    decided: Cell | None  # the resolution's value, once decided
    choices: list[str]  # endpoints a steward may take this column from (empty: no choice)
    preselect: str | None  # the only side that edited it, if just one did
    edited_by: int = 0  # how many sides edited it (2 or more: the heart of the conflict)


@dataclass(frozen=True)
class ConflictView:
    rec: dict[str, Any]
    sides: list[SideHead]
    rows: list[ColumnRow]
    has_base: bool
    per_column: bool  # column-by-column decisions possible (open, no side deleted)

    @property
    def choosable(self) -> list[str]:
        return [r.name for r in self.rows if r.choices]

    @property
    def differing(self) -> list[str]:
        return [r.name for r in self.rows if r.differs]


def _same(a: Any, b: Any) -> bool:
    return bool(canonical_value(a) == canonical_value(b))


def build_view(rec: Mapping[str, Any], order: Sequence[str] = ()) -> ConflictView:
    """A stored conflict as rows of columns, one cell per side, differences marked.

    Sides come in ``order`` (the entity's endpoints as configured), then any
    other side by name.
    """
    raw = stored_sides(dict(rec))
    names = [n for n in order if n in raw] + sorted(n for n in raw if n not in order)
    contents = {n: row_from_json(raw[n].get("c")) for n in names}
    base = row_from_json(rec.get("base")) if rec.get("base") is not None else None
    resolved = rec["status"] == "resolved"
    resolution = row_from_json(rec.get("resolution")) if resolved else None
    cols: list[str] = []
    for version in [*contents.values(), resolution, base]:
        for c in version or {}:
            if c not in cols:
                cols.append(c)
    heads = [SideHead(n, raw[n].get("t"), contents[n] is None, bool(raw[n].get("s")))
             for n in names]
    per_column = (not resolved and len(names) > 1
                  and all(contents[n] is not None for n in names))
    rows: list[ColumnRow] = []
    for c in cols:
        cells: list[Cell] = []
        values: list[tuple[bool, Any]] = []  # (present, value) per side
        edited_by: list[str] = []
        for n in names:
            content = contents[n]
            if content is None:
                cells.append(DELETED)
                values.append((False, "deleted"))
                continue
            if c not in content:
                cells.append(ABSENT)
                values.append((False, "absent"))
                continue
            edited = base is not None and c in base and not _same(content[c], base[c])
            if edited:
                edited_by.append(n)
            cells.append(cell(content[c], edited=edited))
            values.append((True, content[c]))
        first = values[0] if values else (False, None)
        differs = any(v[0] != first[0] or not _same(v[1], first[1]) for v in values[1:])
        everywhere = all(present for present, _ in values)
        decided: Cell | None = None
        if resolved:
            decided = DELETED if resolution is None else (
                cell(resolution[c]) if c in resolution else ABSENT)
        rows.append(ColumnRow(
            name=c,
            base=None if base is None else (cell(base[c]) if c in base else ABSENT),
            sides=cells, differs=differs, decided=decided,
            choices=names if per_column and differs and everywhere else [],
            preselect=edited_by[0] if len(edited_by) == 1 else None,
            edited_by=len(edited_by),
        ))
    return ConflictView(dict(rec), heads, rows, base is not None, per_column)


def _conflicts() -> ConflictStore:
    return ConflictStore(pipeline.store().engine)


def _view(rec: Mapping[str, Any]) -> ConflictView:
    ent = pipeline.cfg().entities.get(rec["entity"])
    return build_view(rec, list(ent.endpoints) if ent is not None else [])


def _find(conflict_id: str) -> dict[str, Any]:
    rec = _conflicts().get(pipeline.name(), conflict_id)
    if rec is None:
        abort(404, description=f"No conflict {conflict_id!r} in pipeline {pipeline.name()!r}.")
    return rec


@bp.get("/conflicts")
def index() -> str:
    show_all = request.args.get("all") in ("1", "on", "true", "yes")
    entity = request.args.get("entity") or None
    status = None if show_all else "open"
    # A decision for all decides the conflicts raised by the newest one listed now: the
    # runs' own times, so the review server's clock (skewed or not) plays no part.
    seen_at = None if show_all else _conflicts().newest(pipeline.name(), "open", entity)
    rows = _conflicts().list(pipeline.name(), status=status, entity=entity, limit=LIMIT)
    total = (_conflicts().count(pipeline.name(), status, entity) if len(rows) >= LIMIT
             else len(rows))
    cfg = pipeline.cfg()
    ends = list(cfg.entities[entity].endpoints) if entity in cfg.entities else list(cfg.endpoints)
    return render_template("conflicts.html", rows=rows, show_all=show_all, entity=entity,
                           entities=sorted(cfg.entities), limit=LIMIT, total=total,
                           endpoints=ends, seen_at="" if seen_at is None else repr(seen_at))


@bp.post("/conflicts/resolve-all")
def resolve_all() -> Response:
    """Every open conflict (of the entity) that the list showed, decided by keeping one
    endpoint's version (``cdcsync conflicts resolve --all``)."""
    from connectors.base import ConnectorError
    from sync.context import open_pipeline
    from sync.steward import decide_all

    entity = request.form.get("entity") or None
    pick = request.form.get("pick", "")
    note = request.form.get("note", "").strip()
    back = redirect(url_for("conflicts.index", entity=entity) if entity
                    else url_for("conflicts.index"), code=303)
    cfg = pipeline.cfg()
    try:
        seen_at = float(request.form.get("seen_at", ""))
    except ValueError:
        abort(400, description="This form is out of date: reload the list and decide again.")
    if pick not in cfg.endpoints or (entity is not None and entity not in cfg.entities):
        flash(f"No endpoint {pick!r} to keep the versions of." if pick not in cfg.endpoints
              else f"No entity {entity!r} in this pipeline.", "error")
        return back
    who = actor()
    try:
        with pipeline.deciding, open_pipeline(cfg) as ctx:
            result = decide_all(ctx, pick=pick, entity=entity, actor=who, note=note,
                                raised_by=seen_at)
    except ConnectorError as exc:
        log.warning("deciding every conflict failed at an endpoint: %s", exc)
        flash(f"An endpoint failed while the decisions were applied ({exc}). The conflicts"
              " decided so far are kept; the next run (or the daemon) applies them.", "error")
        return back
    decided, left = int(result["decided"]), dict(result["left"])
    message = (f"Resolved {decided} conflict{'' if decided == 1 else 's'} by {who} (kept"
               f" {pick}'s version): {result['applied']} write(s) applied.")
    if result["skipped"]:
        message += (f" {result['skipped']} record(s) changed meanwhile; their edit is read on"
                    " the next run.")
    log.info("%d conflicts resolved by %s: kept %s's version", decided, who, pick)
    flash(message, "ok")
    if left:
        flash(left_over(left, "not decided"), "error")
    return back


@bp.get("/conflicts/<conflict_id>")
def detail(conflict_id: str) -> Any:
    return _page(_find(conflict_id))


def _page(rec: Mapping[str, Any], *, error: str | None = None, note: str = "",
          chosen: Mapping[str, str] | None = None, status: int = 200) -> Any:
    from sync.steward import sides_seen

    view = _view(rec)
    html = render_template("conflict.html", view=view, rec=view.rec, error=error, note=note,
                           chosen=dict(chosen or {}), field_prefix=FIELD_PREFIX,
                           seen=sides_seen(rec["sides"]))
    return (html, status) if status != 200 else html


@bp.post("/conflicts/<conflict_id>/resolve")
def resolve(conflict_id: str) -> Any:
    from connectors.base import ConnectorError
    from sync.context import open_pipeline
    from sync.steward import StewardError, decide

    rec = _find(conflict_id)
    note = request.form.get("note", "").strip()
    pick = request.form.get("pick") or None
    view = _view(rec)
    chosen = {k[len(FIELD_PREFIX):]: v for k, v in request.form.items()
              if k.startswith(FIELD_PREFIX) and v}
    fields: dict[str, str] | None = None
    if pick is None:
        if rec["status"] == "open" and not view.per_column:
            return _page(rec, error="One side deleted the record: keep one side whole.",
                         note=note, status=400)
        unknown = sorted(set(chosen) - set(view.choosable))
        missing = [c for c in view.choosable if c not in chosen]
        if unknown:
            return _page(rec, error=f"No differing column {unknown[0]!r} to choose.",
                         note=note, chosen=chosen, status=400)
        if missing:
            return _page(rec, error="Choose a version for every differing column: "
                                    + ", ".join(missing) + ".",
                         note=note, chosen=chosen, status=400)
        fields = chosen
    who = actor()
    try:
        with pipeline.deciding, open_pipeline(pipeline.cfg()) as ctx:
            result = decide(ctx, rec["id"], pick=pick, fields=fields, actor=who, note=note,
                            seen=request.form.get("seen") or None)
    except StewardError as exc:
        return _page(_find(rec["id"]), error=str(exc), note=note, chosen=chosen, status=400)
    except ConnectorError as exc:
        log.warning("conflict %s: deciding failed at an endpoint: %s", rec["id"], exc)
        now = _find(rec["id"])
        if now["status"] != "resolved":
            return _page(now, error=f"An endpoint failed, nothing was decided: {exc}",
                         note=note, chosen=chosen, status=502)
        flash(f"Resolved by {now['decided_by']}, but applying it failed at an endpoint "
              f"({exc}). The decision is kept; the next run (or the daemon) applies it.",
              "error")
        return _redirect(rec["id"])
    applied, skipped = int(result["applied"]), int(result["skipped"])
    how = f"kept {pick}'s version" if pick else "chose column by column"
    message = (f"Resolved by {who} ({how}): applied to {applied} endpoint"
               f"{'' if applied == 1 else 's'}.")
    if skipped:
        message += (f" {skipped} endpoint(s) changed the record meanwhile; their edit is read "
                    "on the next run.")
    log.info("conflict %s resolved by %s: %s", rec["id"], who, how)
    flash(message, "ok")
    if result.get("refused"):
        flash(f"{result['refused']} endpoint(s) refused the decided version: it is kept as a"
              " dead letter (see Dead letters) for an operator.", "error")
    return _redirect(rec["id"])


def _redirect(conflict_id: str) -> Response:
    return redirect(url_for("conflicts.detail", conflict_id=conflict_id), code=303)
