"""What every page needs: the pipeline it serves and a state store for the request."""

from __future__ import annotations

import threading
from typing import Any

from flask import current_app, g

from sync.state import StateStore, open_store

CONFIG_KEY = "CDCSYNC_PIPELINE"

#: One decision at a time in this process: two stewards submitting the same
#: conflict at once must not both find it open (the second then gets "already
#: resolved"). Decisions are rare and short; pages never wait for this lock.
deciding = threading.Lock()


def cfg() -> Any:
    """The loaded pipeline configuration (``config.PipelineConfig``) the app serves."""
    return current_app.config[CONFIG_KEY]


def name() -> str:
    return str(cfg().pipeline)


def store() -> StateStore:
    """The state store, opened on first use in a request and closed at its end.

    Opening per request keeps the app stateless between requests (nothing to
    leak, nothing stale after the daemon migrated the store); the schema is
    migrated once per process, so opening costs little.
    """
    if "cdcsync_store" not in g:
        g.cdcsync_store = open_store(cfg().state.url)
    st: StateStore = g.cdcsync_store
    return st


def close_store(_exc: BaseException | None = None) -> None:
    st = g.pop("cdcsync_store", None)
    if st is not None:
        st.close()
