"""``on_snapshot`` given its reads' row hashes (a staged snapshot hashes each distinct
row of a key once) decides exactly as when it makes them itself."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conflict.canonical import row_hash
from conflict.policies import LastWriterWins
from conflict.protocol import Edit, KeyState, on_snapshot
from sync.state.codec import state_to_json

ENDPOINTS = ("A", "B", "C")
# per endpoint: absent, or one of a few contents (equal ones are the usual case)
reads_of = st.fixed_dictionaries({ep: st.one_of(st.none(), st.sampled_from([0, 1, 2]))
                                  for ep in ENDPOINTS})


def _decide(picks: dict[str, int | None], before: dict[str, int | None] | None,
            with_hashes: bool) -> tuple[dict[str, Any], list[Any]]:
    s = KeyState(key={"id": 1})
    resolve = LastWriterWins().decide
    kw: dict[str, Any] = {"entity": "items", "key": {"id": 1}, "sinks": list(ENDPOINTS),
                          "resolve": resolve}
    if before is not None:  # known before: a resync, a resumed snapshot
        on_snapshot(s, _reads(before, 1.0), **kw)
    reads = _reads(picks, 2.0)
    hashes = {ep: row_hash(r.content) for ep, r in reads.items() if r is not None}
    outs = on_snapshot(s, reads, **kw, hashes=hashes if with_hashes else None)
    return state_to_json(s), [(o.kind, o.conflict is not None) for o in outs]


def _reads(picks: dict[str, int | None], at: float) -> dict[str, Edit | None]:
    return {ep: None if v is None else Edit(ep, {"id": 1, "v": v}, None, at, row_version=v)
            for ep, v in picks.items()}


@given(picks=reads_of, before=st.one_of(st.none(), reads_of))
def test_given_hashes_decide_as_made_ones(picks: dict[str, int | None],
                                          before: dict[str, int | None] | None) -> None:
    assert _decide(picks, before, True) == _decide(picks, before, False)
