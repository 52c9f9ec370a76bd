"""Endpoints of a two-way entity that each make its key: one key, two records.

A row inserted without a key gets one from its endpoint (a PostgreSQL sequence,
MariaDB's ``AUTO_INCREMENT``, SQLite's rowid). Two endpoints making keys on the
same steps give two different records the same key: the first sync reads them
as one record edited at both ends, a conflict in which one side's row replaces
the other's (the report keeps both), or, once one has arrived, an insert at the
other endpoint fails on its own sequence's next value. Sequences that step by
the same ``n`` from different remainders never meet: that is the way out
multi-primary setups use, and :func:`clashing_generators` stays silent about
them. ``cdcsync setup`` says this once, as a note; nothing is refused (a user
may insert every key explicitly).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from connectors.base import KeyGenerator
from sync.context import bindings_for, reach


def disjoint(makers: list[KeyGenerator]) -> bool:
    """Do keys made on these steps never meet (one step ``n`` > 1, remainders apart)?"""
    steps = {m.increment for m in makers}
    if len(steps) != 1 or abs(next(iter(steps))) < 2:
        return False
    n = abs(next(iter(steps)))
    return len({m.start % n for m in makers}) == len(makers)


def key_generators(cfg: Any, name: str, ep: Any) -> dict[str, KeyGenerator]:
    """How endpoint ``name`` (open: ``ep``) makes the key of each two-way entity it is a
    source of, by entity (setup's loop over the endpoints asks)."""
    probe = getattr(ep, "key_generator", None)
    if probe is None:
        return {}
    out: dict[str, KeyGenerator] = {}
    for entity, ent in cfg.entities.items():
        sources = list(ent.sources())
        if len(sources) < 2 or name not in sources:
            continue
        made = reach(cfg, f"reading how {name} makes keys",
                     functools.partial(probe, bindings_for(cfg, entity)[name]))
        if made is not None:
            out[entity] = made
    return out


def clashing_generators(cfg: Any, made: Mapping[str, Mapping[str, KeyGenerator]]) -> list[str]:
    """A note for each two-way entity whose key two or more endpoints make themselves
    (``made``: by endpoint, :func:`key_generators`)."""
    notes: list[str] = []
    for name, ent in cfg.entities.items():
        makers = {ep: by[name] for ep, by in made.items() if name in by}
        if len(makers) < 2 or disjoint(list(makers.values())):
            continue
        key = ", ".join(ent.key)
        who = "; ".join(f"{ep}: {m.what}" for ep, m in makers.items())
        fixes = "; ".join(f"{ep}: {m.fix}" for ep, m in makers.items() if m.fix)
        apart = (f"Give each its own remainder of one step n ({fixes}), or insert keys"
                 if fixes and all(m.fix for m in makers.values()) else "Insert keys")
        notes.append(
            f"note: entity {name}: {' and '.join(makers)} each make {key} for rows inserted"
            f" without one ({who}). Records inserted at both get the same keys, and each"
            " pair then syncs as one record edited twice: a conflict in which one row"
            f" replaces the other. {apart} that cannot clash (UUIDs, or keys an"
            " application gives out)")
    return notes
