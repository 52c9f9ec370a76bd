"""MariaDB GTID state: ``domain-server-seq`` per replication domain.

The state after a transaction is what a reader sends as
``@slave_connect_state`` to resume right after it; it is the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

GtidState = dict[int, tuple[int, int]]  # domain -> (server_id, seq_no)


def parse_state(text: str | None) -> GtidState:
    state: GtidState = {}
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        domain, server, seq = (int(x) for x in part.split("-"))
        state[domain] = (server, seq)
    return state


def format_state(state: Mapping[int, tuple[int, int]]) -> str:
    return ",".join(f"{d}-{s}-{n}" for d, (s, n) in sorted(state.items()))


def covers(state: Mapping[int, tuple[int, int]], target: Mapping[int, tuple[int, int]]) -> bool:
    """Whether ``state`` is at or past ``target`` in every domain of ``target``.

    Sequence numbers grow within a domain (gtid_strict_mode keeps them so), so
    the server id does not take part in the comparison.
    """
    return all(d in state and state[d][1] >= seq for d, (_, seq) in target.items())
