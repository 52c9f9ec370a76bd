"""The overview (what waits for whom), the dead-letter list, and the health check."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, jsonify, render_template, request
from werkzeug.wrappers import Response

from sync import dlq
from sync.quality.store import QuarantineStore
from sync.review import pipeline

bp = Blueprint("overview", __name__)


@bp.get("/")
def index() -> str:
    from sync.status import collect_status

    # Contacting every endpoint can take seconds (or hang on one that is down):
    # only when asked.
    check = request.args.get("check") in ("1", "on", "true", "yes")
    info = collect_status(pipeline.cfg(), endpoints=check)
    st = pipeline.store()
    info["quarantined"] = QuarantineStore(st.engine).count_open(pipeline.name())
    info["dead_letters"] = dlq.depth(st, pipeline.name())
    return render_template("overview.html", info=info, checked=check)


@bp.get("/dlq")
def dead_letters() -> str:
    letters = dlq.list_letters(pipeline.store(), pipeline.name())
    for x in letters:
        x["first_line"] = (str(x["error"]).splitlines() or [""])[0]
    return render_template("dlq.html", letters=letters)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """200 when the state store answers; no login needed, nothing about the data in it."""
    try:
        with pipeline.store().engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return jsonify(status="unavailable", error=type(exc).__name__), 503
    return jsonify(status="ok"), 200


