"""The state store: checkpoints, per-key protocol state, conflicts, runs, audit."""

from sync.state.store import StateStore, open_store

__all__ = ["StateStore", "open_store"]
