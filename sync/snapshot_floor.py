"""Where a snapshot stands in the logs its endpoints already stream.

An endpoint streamed for other entities (or for this one, before a resync) keeps
its one stream checkpoint S, and a snapshot taken now starts the entity's stream
there too; the snapshot's reads stand at a later point P of the log. The stream,
read on from S, then brought every change between S and P again, each of which
the snapshot's rows already held. Until 2026-12-07 they were taken for edits
made after the snapshot: in a two-way entity whose reconcile had written one
end's copy over another's, the replayed edit went to the other end, and the two
ends swapped their values with no conflict recorded (an entity added to a
running pipeline and edited before its first run; a resync while edits were on
their way: tests/test_added_entity.py).

The snapshot now also takes P from such an endpoint before it reads anything
(:func:`from_stream`; the endpoint's ``position()``, in whose consistent snapshot the
reads then stand where it has one), kept in the snapshot's progress, so that a
resumed snapshot keeps it. Each key it decides holds, for that endpoint, the
greatest change position at or before P as the last position read there
(:func:`hold`): the protocol's rule 2 drops the changes the stream brings again
as read already. A connector says what that greatest position is
(``held_up_to``); one that cannot keeps the old behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conflict.protocol import KeyState, Position

HELD = "~held"  # in a snapshot's progress position: P's greatest change position


def from_stream(endpoint: Any, checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The stream ``checkpoint`` an endpoint streams from, with P (see the module) where
    its connector can say it."""
    held_up_to = getattr(endpoint, "held_up_to", None)
    held = held_up_to(endpoint.position()) if held_up_to is not None else None
    return dict(checkpoint) if held is None else {**checkpoint, HELD: list(held)}


def floors(progress: Mapping[str, Mapping[str, Any]]) -> dict[str, Position]:
    """Per endpoint, the P a snapshot's ``progress`` keeps (see the module)."""
    return {ep: tuple(p["position"][HELD]) for ep, p in progress.items()
            if p.get("position") and HELD in p["position"]}


def hold(st: KeyState, held: Mapping[str, Position]) -> None:
    """``st``, decided by a snapshot, read its endpoints' logs up to ``held``."""
    for ep, pos in held.items():
        e = st.at(ep)
        if e.last_pos is None or e.last_pos < pos:
            e.last_pos = pos


def stream_position(position: Mapping[str, Any] | None) -> dict[str, Any]:
    """A snapshot's progress position as the checkpoint its streams start from."""
    return {k: v for k, v in (position or {}).items() if k != HELD}
