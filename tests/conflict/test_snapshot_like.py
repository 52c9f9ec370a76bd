"""``snapshot_like`` makes exactly the state ``on_snapshot`` would (the direct snapshot
decides one key per chunk and makes the others like it)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conflict.policies import LastWriterWins
from conflict.protocol import Edit, KeyState, jobs, on_snapshot, snapshot_like
from sync.state.codec import state_to_json

values = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans())


def _decided(source: str, others_sources: list[str], targets: list[str], sinks: list[str],
             content: dict[str, Any], version: int) -> KeyState:
    s = KeyState(key={"id": content["id"]})
    reads: dict[str, Edit | None] = {ep: None for ep in others_sources}
    reads[source] = Edit(source, content, None, 5.0, row_version=version)
    for t in targets:
        s.at(t).hash = ""
    on_snapshot(s, reads, entity="items", key={"id": content["id"]}, sinks=sinks,
                resolve=LastWriterWins())
    return s


@pytest.mark.parametrize(("others_sources", "targets"), [
    ([], ["B"]),  # one-way
    ([], ["B", "C"]),
    (["B"], []),  # bidirectional
    (["B", "C"], []),
    (["B"], ["C"]),  # a source beside, a target only
])
@given(rows=st.lists(st.tuples(values, values), min_size=2, max_size=6))
def test_like_the_protocols_own_decision(others_sources: list[str], targets: list[str],
                                         rows: list[tuple[Any, Any]]) -> None:
    sinks = ["A", *others_sources, *targets]
    contents = [{"id": i, "x": x, "y": y} for i, (x, y) in enumerate(rows)]
    template = _decided("A", others_sources, targets, sinks, contents[0], 100)
    for i, content in enumerate(contents[1:], start=1):
        want = _decided("A", others_sources, targets, sinks, content, 100 + i)
        got = snapshot_like(template, Edit("A", content, None, 5.0, row_version=100 + i),
                            {"id": i})
        assert state_to_json(got) == state_to_json(want)
        assert [(j.target, j.content, j.vector, j.expected) for j in jobs(got)] == [
            (j.target, j.content, j.vector, j.expected) for j in jobs(want)]
        assert jobs(got)  # every other endpoint is due the row


def test_a_template_of_another_endpoint_is_refused() -> None:
    template = _decided("A", [], ["B"], ["A", "B"], {"id": 1, "x": 1}, 7)
    with pytest.raises(ValueError, match="template"):
        snapshot_like(template, Edit("B", {"id": 2, "x": 2}, None, 5.0), {"id": 2})
