"""Results that arrive after the reader has moved on (the daemon's workers run beside it)."""

from __future__ import annotations

from conflict.case import ConflictCase, Decision, Resolution, Winner
from conflict.protocol import Edit, KeyState, jobs, on_applied, on_change
from conflict.vector import VersionVector

KEY = {"id": 1}


def lww(case: ConflictCase) -> Decision:
    win = case.incoming if case.incoming.committed_at >= case.current.committed_at else case.current
    which = Winner.INCOMING if win is case.incoming else Winner.CURRENT
    return Resolution(win.content, which, "lww")


def change(st: KeyState, ep: str, content: dict[str, object] | None, pos: int, t: float,
           rv: object) -> None:
    on_change(st, Edit(ep, content, (pos,), t, rv), entity="e", key=KEY, sinks=["a", "b"],
              resolve=lww)


def test_superseded_result_keeps_the_next_apply_valid() -> None:
    st = KeyState()
    change(st, "a", {"id": 1, "v": "x"}, 1, 1.0, "a1")
    (job1,) = jobs(st)  # worker builds the apply of x to b
    change(st, "a", {"id": 1, "v": "y"}, 2, 2.0, "a2")  # reader decides y meanwhile
    assert not on_applied(st, job1, "b-after-x")  # superseded ...
    (job2,) = jobs(st)
    assert job2.content == {"id": 1, "v": "y"}
    assert job2.expected == "b-after-x"  # ... but b holds x at the row version our write made
    assert st.at("b").known == VersionVector({"a": 1})
    assert on_applied(st, job2, "b-after-y")
    assert not st.outbox and st.at("b").known == st.vector


def test_a_log_read_after_the_job_was_built_is_not_overwritten() -> None:
    st = KeyState()
    change(st, "a", {"id": 1, "v": "x"}, 1, 1.0, "a1")
    (job1,) = jobs(st)
    # Our write lands at b, then a user edits b, and the reader reads that edit
    # before the worker records its result.
    change(st, "b", {"id": 1, "v": "user"}, 7, 3.0, "b-user")
    on_applied(st, job1, "b-after-x")
    assert st.at("b").row_version == "b-user"
    assert st.at("b").known != VersionVector({"a": 1})
