"""Garbage-collector settings for cdcsync's processes.

CPython runs a young-generation collection every 700 net allocations of
container objects. The engine makes several short-lived dicts per change
(decoded rows, typed rows, key states, apply jobs), almost none of them in a
reference cycle, so a 10k-change batch set off thousands of collections, and
the ones that cascade into the older generations walk the whole heap (with the
quality gate loaded, Great Expectations' modules are most of it). Measured on
a PG -> PG catch-up of 50k changes: 137 -> 105 us of CPU per change
(docs/postgres.md). Reference cycles are still collected, just in larger
rounds: the young generation holds at most :data:`YOUNG` objects (tens of MB at
worst, if every one were cyclic garbage).

200k rather than 50k (2026-12-06): a batch worker holds the states of its part
(~10k keys, tens of objects each) while it decides and applies them, and a young
collection walks every one of them still alive. On the 200k-change PG -> PG
catch-up the workers spent 0.7 s each collecting at 50k and 0.02 s at 200k; CPU
per change 139-140 -> 128-131 us, alternated (docs/postgres.md).
"""

from __future__ import annotations

import gc

#: allocations between young collections (CPython's default: 700)
YOUNG = 200_000


def tune() -> None:
    """Collect less often, and stop walking what the imports made; call at start-up."""
    gc.set_threshold(YOUNG, 10, 10)
    gc.freeze()


def settle() -> None:
    """Collect, then move everything still alive out of the collector's sight.

    Modules, configuration, connectors and quality suites live as long as the
    daemon: the older collections need not walk them again and again. The
    collection comes first because frozen garbage is never freed (loading a
    quality suite leaves cyclic garbage behind).
    """
    gc.collect()
    gc.freeze()
