"""One test per rule of the version-vector protocol (DESIGN.md, "Conflicts").

The property tests in ``test_protocol_properties.py`` hold the whole protocol
to the reference model's four properties; these pin each rule down on its own,
with the smallest states that show it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from conflict.case import ConflictCase, Decision, Park, Resolution, Winner
from conflict.policies import LastWriterWins, Manual
from conflict.protocol import (
    ApplyJob,
    Edit,
    KeyState,
    Kind,
    Outcome,
    conflict_id_of,
    jobs,
    on_applied,
    on_change,
    on_skipped,
    on_snapshot,
    resolve_parked,
    token_of,
)
from conflict.vector import RESOLVER, VersionVector

SINKS = ("A", "B", "C")
KEY = {"id": 1}


def row(v: str) -> dict[str, Any]:
    return {"id": 1, "v": v}


def edit(ep: str, v: str | None, pos: int | None, t: float, rv: Any = None, *,
         before: str | None = None, identity: str | None = None) -> Edit:
    return Edit(ep, None if v is None else row(v), None if pos is None else (pos,), t, rv,
                None if before is None else row(before), identity)


def never(case: ConflictCase) -> Decision:
    raise AssertionError(f"no conflict expected: {case}")


def lww(case: ConflictCase) -> Decision:
    return LastWriterWins().decide(case)


def change(st: KeyState, e: Edit, resolve: Any = never) -> Outcome:
    return on_change(st, e, entity="item", key=KEY, sinks=SINKS, resolve=resolve)


def vv(**counters: int) -> VersionVector:
    return VersionVector(counters)


def deliver(st: KeyState, rv: dict[str, Any] | None = None) -> None:
    """Every pending apply succeeds (row versions from ``rv``, else 100 + n)."""
    for n, job in enumerate(jobs(st)):
        assert on_applied(st, job, (rv or {}).get(job.target, 100 + n))


def synced(v: str = "x") -> KeyState:
    """A key every endpoint holds at one version: A wrote it, B and C received it."""
    st = KeyState()
    change(st, edit("A", v, 1, 1.0, "a1"))
    deliver(st, {"B": "b1", "C": "c1"})
    return st


# --- rule 1: echo by identity, never by content -------------------------------------


def test_an_echo_of_our_own_write_is_dropped_by_identity() -> None:
    st = KeyState()
    change(st, edit("A", "x", 1, 1.0, "a1"))
    job = next(j for j in jobs(st) if j.target == "B")
    assert on_applied(st, job, "b1", identity="B@7")
    v = st.vector
    out = change(st, edit("B", "x", 7, 2.0, "b1", before=None, identity="B@7"))
    assert out.kind is Kind.ECHO
    assert st.vector == v
    assert st.at("B").pending == []
    assert st.at("B").last_pos == (7,)
    # the same identity again is a duplicate, not an edit
    assert change(st, edit("B", "x", 7, 2.0, "b1", identity="B@7")).kind is Kind.DUPLICATE


def test_an_edit_equal_to_our_last_write_is_still_an_edit() -> None:
    """Tagged engines: nothing is content-filtered (ABA at B: x -> y -> x)."""
    st = synced("x")
    assert change(st, edit("B", "y", 1, 2.0, "b2", before="x")).kind is Kind.APPLIED
    deliver(st)
    out = change(st, edit("B", "x", 2, 3.0, "b3", before="y"))
    assert out.kind is Kind.APPLIED
    assert st.vector == vv(A=1, B=2)
    assert st.outbox == {"A", "C"}


def test_an_unknown_identity_is_an_edit() -> None:
    st = synced()
    st.at("B").pending.append("B@3")
    out = change(st, edit("B", "y", 4, 2.0, "b2", before="x", identity="B@4"))
    assert out.kind is Kind.APPLIED
    assert st.at("B").pending == ["B@3"]


# --- rule 2: duplicates, per key --------------------------------------------------------


def test_a_change_at_or_before_the_last_position_is_a_duplicate() -> None:
    st = KeyState()
    change(st, edit("A", "x", 5, 1.0, "a1"))
    before = (st.vector, set(st.outbox), st.at("A").row_version)
    for pos in (5, 4, 0):
        assert change(st, edit("A", "y", pos, 2.0, "a0")).kind is Kind.DUPLICATE
    assert (st.vector, st.outbox, st.at("A").row_version) == before


def test_positions_are_per_key_not_per_endpoint() -> None:
    """Delivery reordered across keys: key 2 read at position 9 first."""
    k1, k2 = KeyState(), KeyState()
    assert change(k2, edit("A", "x", 9, 1.0, "a9")).kind is Kind.APPLIED
    assert change(k1, edit("A", "x", 3, 1.0, "a3")).kind is Kind.APPLIED


# --- rule 3: new edits, dominance and conflicts --------------------------------------------


def test_a_first_edit_dominates_and_goes_to_every_other_sink() -> None:
    st = KeyState()
    out = change(st, edit("A", "x", 1, 10.0, "a1"))
    assert out == Outcome(Kind.APPLIED)
    assert st.vector == vv(A=1)
    assert st.at("A").known == st.vector
    assert st.content == row("x")
    assert (st.origin, st.committed_at) == ("A", 10.0)
    assert st.outbox == {"B", "C"}


def test_an_edit_made_on_top_of_the_current_version_dominates() -> None:
    st = synced()
    out = change(st, edit("B", None, 1, 2.0, "b2", before="x"))
    assert out.kind is Kind.APPLIED
    assert st.vector == vv(A=1, B=1)
    assert st.content is None
    assert st.outbox == {"A", "C"}


def test_a_concurrent_edit_is_a_conflict_decided_by_the_policy() -> None:
    st = KeyState()
    change(st, edit("A", "x", 1, 1.0, "a1"))
    seen: list[ConflictCase] = []

    def spy(case: ConflictCase) -> Decision:
        seen.append(case)
        return lww(case)

    out = change(st, edit("B", "y", 1, 2.0, "b1"), spy)  # B never received x
    assert out.kind is Kind.RESOLVED and out.conflict is not None
    (case,) = seen
    assert (case.current.endpoint, case.current.vector, case.current.content) == \
        ("A", vv(A=1), row("x"))
    assert (case.incoming.endpoint, case.incoming.vector, case.incoming.content) == \
        ("B", vv(B=1), row("y"))
    assert out.conflict.new_vector == st.vector == vv(A=1, B=1, **{RESOLVER: 1})
    assert st.content == row("y")  # B's edit is later
    assert out.conflict.conflict_id == conflict_id_of("item", KEY, vv(A=1), vv(B=1))


def test_the_incoming_winner_alone_holds_the_resolved_version() -> None:
    st = synced("x")
    change(st, edit("B", "y", 1, 5.0, "b2", before="x"))  # B's edit goes out...
    # ...while C edits concurrently, later: C wins
    out = change(st, edit("C", "z", 1, 6.0, "c2", before="x"), lww)
    assert out.kind is Kind.RESOLVED
    assert st.content == row("z")
    assert st.at("C").known == st.vector
    assert st.at("B").known == vv(A=1, B=1)
    assert {"A", "B"} <= st.outbox


def test_the_current_winner_raises_k_only_where_it_is_held_exactly() -> None:
    st = synced("x")
    change(st, edit("B", "y", 1, 9.0, "b2", before="x"))
    a, c = jobs(st)
    assert on_applied(st, a, "a2")  # A now holds B's version exactly
    on_skipped(st, c)  # C's row moved: C edited x, earlier
    out = change(st, edit("C", "z", 1, 5.0, "c2", before="x"), lww)
    assert out.kind is Kind.RESOLVED
    assert st.content == row("y")
    for holder in ("A", "B"):
        assert st.at(holder).known == st.vector
    assert st.at("C").known != st.vector
    assert st.outbox == {"C"}


def test_equal_content_is_not_the_same_version() -> None:
    """B holds 'y' by an edit of its own: no write there, and K_B is not raised."""
    st = KeyState()
    change(st, edit("A", "x", 1, 1.0, "a1"))
    change(st, edit("C", "y", 1, 2.0, "c1"), lww)  # conflict, C wins with 'y'
    todo = {j.target: j for j in jobs(st)}
    assert on_applied(st, todo.pop("A"), "a2")
    on_skipped(st, todo.pop("B"))  # B inserted 'y' itself, a little earlier
    for j in todo.values():
        assert on_applied(st, j, "c2")
    out = change(st, edit("B", "y", 1, 1.5, "b1"), lww)
    assert out.kind is Kind.RESOLVED
    assert st.content == row("y")  # the current side (C's) wins, B's edit lost
    assert not st.outbox  # equal content everywhere: no write
    assert st.at("A").known == st.at("C").known == st.vector  # they hold it exactly
    assert st.at("B").known != st.vector  # equal content, another version


def test_an_update_of_no_synchronised_column_is_no_edit() -> None:
    st = synced("x")
    v = st.vector
    out = change(st, edit("B", "x", 1, 2.0, "b2", before="x"))
    assert out.kind is Kind.UNCHANGED
    assert st.vector == v and not st.outbox
    assert st.at("B").row_version == "b2"
    assert st.at("B").last_pos == (1,)


def test_a_no_op_update_that_made_an_apply_skip_does_not_strand_the_endpoint() -> None:
    """Minimal counterexample found by the property tests (P1 divergence).

    B holds x. A's delete goes out; at B the compare-and-set fails because a
    user updated B in between — to the same content (only unsynchronised
    columns changed). The skip expects that edit to come back as a conflict,
    but it is no edit: the apply is due again, now on B's new row version.
    """
    st = synced("x")
    change(st, edit("A", None, 2, 2.0, "a2", before="x"))
    job = next(j for j in jobs(st) if j.target == "B")
    on_skipped(st, job)  # B's row moved: b1 -> b2
    assert "B" not in st.outbox
    out = change(st, edit("B", "x", 1, 3.0, "b2", before="x"))
    assert out.kind is Kind.UNCHANGED
    (again,) = [j for j in jobs(st) if j.target == "B"]
    assert (again.content, again.expected) == (None, "b2")


def test_a_skip_explained_by_a_no_op_read_already_keeps_the_apply() -> None:
    """The daemon's order of the same story: the no-op update is read while the
    apply is in flight, and the skip arrives after it (found by the property
    tests in the daemon's mode, P1 divergence)."""
    st = synced("x")
    change(st, edit("A", None, 2, 2.0, "a2", before="x"))
    job = next(j for j in jobs(st) if j.target == "B")
    assert change(st, edit("B", "x", 1, 3.0, "b2", before="x")).kind is Kind.UNCHANGED
    on_skipped(st, job)  # it had met b2
    (again,) = [j for j in jobs(st) if j.target == "B"]
    assert (again.content, again.expected) == (None, "b2")


# --- parked conflicts and stewards ---------------------------------------------------------


def parked() -> KeyState:
    st = KeyState()
    change(st, edit("A", "x", 1, 1.0, "a1"))
    b, c = jobs(st)
    on_skipped(st, b)  # B inserted 'y' meanwhile
    assert on_applied(st, c, "c1")
    out = change(st, edit("B", "y", 1, 2.0, "b1"), Manual().decide)
    assert out.kind is Kind.PARKED and out.conflict is not None
    assert out.conflict.new_vector is None
    assert isinstance(out.conflict.decision, Park)
    return st


def test_a_parked_key_has_no_applies_and_collects_later_edits() -> None:
    st = parked()
    v = st.vector
    assert jobs(st) == []
    assert st.parked is not None and sorted(st.parked.sides) == ["A", "B"]
    out = change(st, edit("C", "z", 1, 3.0, "c2", before="x"), never)
    assert out == Outcome(Kind.PARKED)
    assert sorted(st.parked.sides) == ["A", "B", "C"]
    assert st.parked.sides["C"].content == row("z")
    assert st.vector == v and jobs(st) == []


def test_a_steward_picks_a_side() -> None:
    st = parked()
    assert st.parked is not None
    sides = dict(st.parked.sides)
    new_v = resolve_parked(st, row("y"), chosen="B", sinks=SINKS, when=9.0)
    assert st.parked is None and st.vector == new_v
    for s in sides.values():
        assert new_v.dominates(s.vector) and new_v != s.vector
    for e in st.endpoints.values():
        assert new_v.dominates(e.known)
    assert st.at("B").known == new_v  # holds exactly the chosen side
    assert st.at("A").known != new_v
    assert st.outbox == {"A", "C"}
    assert {j.target for j in jobs(st)} == {"A", "C"}


def test_a_chosen_side_that_moved_since_is_not_held_exactly() -> None:
    st = parked()
    change(st, edit("B", "w", 2, 3.0, "b2", before="y"), never)  # B moved on, still parked
    assert st.parked is not None
    st.parked.sides["B"] = st.parked.sides["A"]  # a stale pick: B's side as it was
    resolve_parked(st, row("x"), chosen="B", sinks=SINKS, when=9.0)
    assert st.at("B").known != st.vector
    assert "B" in st.outbox


def test_a_steward_can_write_new_content() -> None:
    st = parked()
    resolve_parked(st, row("q"), chosen=None, sinks=SINKS, when=9.0)
    assert st.content == row("q")
    assert st.outbox == set(SINKS)
    assert all(e.known != st.vector for e in st.endpoints.values())


def test_resolving_a_key_that_is_not_parked_is_an_error() -> None:
    with pytest.raises(ValueError, match="not parked"):
        resolve_parked(synced(), row("q"), chosen=None, sinks=SINKS, when=1.0)


# --- rule 4: no blind overwrites -----------------------------------------------------------


def test_jobs_carry_the_row_version_last_known_and_the_version_token() -> None:
    st = synced("x")
    change(st, edit("A", "y", 2, 2.0, "a2", before="x"))
    assert jobs(st) == [
        ApplyJob("B", row("y"), vv(A=2), "b1", token_of(vv(A=2))),
        ApplyJob("C", row("y"), vv(A=2), "c1", token_of(vv(A=2))),
    ]


def test_an_applied_job_records_what_the_target_now_holds() -> None:
    st = KeyState()
    change(st, edit("A", "x", 1, 1.0, "a1"))
    job = next(j for j in jobs(st) if j.target == "C")
    assert on_applied(st, job, "c9", identity="C@4")
    c = st.at("C")
    assert (c.known, c.row_version, c.pending) == (st.vector, "c9", ["C@4"])
    assert st.outbox == {"B"}


def test_a_skipped_job_waits_for_the_edit_that_moved_the_row() -> None:
    st = synced("x")
    change(st, edit("A", "y", 2, 2.0, "a2", before="x"))
    job = next(j for j in jobs(st) if j.target == "B")
    on_skipped(st, job)
    assert st.outbox == {"C"}
    assert st.at("B").known == vv(A=1)
    # the edit at B that moved the row is concurrent: rule 3
    out = change(st, edit("B", "z", 1, 3.0, "b2", before="x"), lww)
    assert out.kind is Kind.RESOLVED


def test_tokens_identify_versions() -> None:
    assert token_of(vv(A=1, B=2)) == token_of(VersionVector({"B": 2, "A": 1}))
    assert token_of(vv(A=1)) != token_of(vv(A=2))


# --- rule 5: results of superseded jobs change nothing ----------------------------------


def test_a_superseded_result_leaves_the_newer_apply_pending() -> None:
    st = synced("x")
    change(st, edit("A", "y", 2, 2.0, "a2", before="x"))
    old = next(j for j in jobs(st) if j.target == "B")
    change(st, edit("A", "z", 3, 3.0, "a3", before="y"))
    assert not on_applied(st, old, "b2", identity="B@9")
    assert st.outbox == {"B", "C"}
    assert st.at("B").pending == ["B@9"]  # its echo is still ours
    (new,) = [j for j in jobs(st) if j.target == "B"]
    assert (new.content, new.vector) == (row("z"), vv(A=3))
    assert new.expected == "b2"  # B holds y at the row version our write produced
    assert st.at("B").known == vv(A=2)


def test_a_superseded_result_does_not_hide_a_newer_read() -> None:
    st = synced("x")
    change(st, edit("A", "y", 2, 2.0, "a2", before="x"))
    old = next(j for j in jobs(st) if j.target == "B")
    # our write lands at B, a user edits B, and that edit is read first
    change(st, edit("B", "w", 1, 3.0, "b3", before="y"), lww)
    on_applied(st, old, "b2")
    assert st.at("B").row_version == "b3"
    assert st.at("B").known != vv(A=2)


def test_on_skipped_ignores_a_superseded_job() -> None:
    st = synced("x")
    change(st, edit("A", "y", 2, 2.0, "a2", before="x"))
    old = next(j for j in jobs(st) if j.target == "B")
    change(st, edit("A", "z", 3, 3.0, "a3", before="y"))
    on_skipped(st, old)
    assert "B" in st.outbox


def test_a_row_gone_where_the_content_is_unknown_is_written_over_its_absence() -> None:
    """A row that vanished where we knew what it held is a user's delete on its way;
    where we did not (a write of ours may stand there: on_stale, check_marks), it may
    be our own delete, which no log shows: the apply stays due, over the absence."""
    for known in (True, False):
        st = synced("x")
        change(st, edit("A", "y", 2, 2.0, "a2", before="x"))
        if not known:
            st.at("B").hash = None
        job = next(j for j in jobs(st) if j.target == "B")
        due = on_skipped(st, job, absent=True)
        assert due is (not known)
        assert ("B" in st.outbox) is (not known)
        if not known:
            assert st.at("B").row_version is None  # the next job expects no row
            assert next(j for j in jobs(st) if j.target == "B").expected is None



def test_a_skip_of_a_job_built_before_our_own_write_was_recorded_is_applied_again() -> None:
    """Version 2 is decided while version 1's apply to B flies, and version 3 (the row
    put back) before version 1's result is recorded: a job for 3 built from that state
    (the daemon's reader hands it to its applier) expects the row version 1 replaced.
    Its compare-and-set fails on our own write, not on a user's edit: it stays due, and
    the next job expects the row as it is now."""
    st = synced("x")
    change(st, edit("A", None, 2, 2.0, "a2", before="x"))  # deleted at A
    first = next(j for j in jobs(st) if j.target == "B")
    change(st, edit("A", "z", 3, 3.0, "a3", before=None))  # inserted again
    stale = next(j for j in jobs(st) if j.target == "B")
    assert not on_applied(st, first, None)  # the delete, superseded: B is known absent
    assert on_skipped(st, stale, absent=True) is True
    assert "B" in st.outbox
    (again,) = [j for j in jobs(st) if j.target == "B"]
    assert again.expected is None and again.content == stale.content
    # the same skip for a job built on what is known now: a user's edit is on its way
    assert on_skipped(st, again, absent=True) is False and "B" not in st.outbox

# --- snapshots ---------------------------------------------------------------------------


def snap(st: KeyState, reads: dict[str, Edit | None], resolve: Any = never) -> list[Outcome]:
    return on_snapshot(st, reads, entity="item", key=KEY, sinks=SINKS, resolve=resolve)


def test_a_key_every_endpoint_holds_alike_is_the_baseline() -> None:
    st = KeyState()
    outs = snap(st, {n: edit(n, "x", None, 1.0, f"{n}1") for n in SINKS})
    assert outs == [Outcome(Kind.UNCHANGED)]
    assert st.content == row("x") and not st.outbox and jobs(st) == []
    assert st.at("B").row_version == "B1"
    # an edit anywhere then dominates
    assert change(st, edit("B", "y", 1, 2.0, "B2", before="x")).kind is Kind.APPLIED


def test_a_missing_row_is_an_insert() -> None:
    st = KeyState()
    snap(st, {"A": edit("A", "x", None, 1.0, "A1"), "B": edit("B", "x", None, 1.0, "B1"),
              "C": None})
    (job,) = jobs(st)
    assert (job.target, job.content, job.expected) == ("C", row("x"), None)


def test_an_insert_racing_the_snapshot_insert_is_a_conflict() -> None:
    """Minimal counterexample found by the property tests (P2 silent loss).

    A holds x, B has no row. Before the service's insert reaches B, a user
    inserts y at B. B never saw x: the edit is concurrent with it, so it must
    be a conflict, not a new version that silently replaces x everywhere.
    """
    st = KeyState()
    snap(st, {"A": edit("A", "x", None, 1.0, "A1"), "B": None, "C": None})
    (job_b,) = [j for j in jobs(st) if j.target == "B"]
    on_skipped(st, job_b)  # B's row moved: the user's insert
    out = change(st, edit("B", "y", 1, 0.5, "B1"), lww)
    assert out.kind is Kind.RESOLVED and out.conflict is not None
    assert out.conflict.case.current.content == row("x")
    assert st.content == row("x")  # A's row is later
    assert "B" in st.outbox


def test_rows_that_differ_at_snapshot_are_a_conflict() -> None:
    st = KeyState()
    outs = snap(st, {"A": edit("A", "x", None, 1.0, "A1"), "B": edit("B", "y", None, 2.0, "B1"),
                     "C": edit("C", "x", None, 1.0, "C1")}, lww)
    assert [o.kind for o in outs].count(Kind.RESOLVED) == 1
    assert st.content == row("y")
    assert {"A", "C"} <= st.outbox
    assert st.at("B").known == st.vector


@pytest.mark.parametrize("later", ["A", "B"])
def test_when_a_snapshot_read_each_row_decides_nothing(later: str) -> None:
    """A snapshot's reads carry when they were read, not when the rows were written:
    last_writer_wins breaks the tie by endpoint name (B > A) whichever endpoint was
    read (staged, a chunk of it) later. Until 2026-12-07 the later read won, so a
    staged first snapshot kept the rows of the endpoint it staged last, and a merged
    one (every read at one moment) those of the greater name."""
    st = KeyState()
    t = {"A": 1.0, "B": 1.0}
    t[later] = 2.0
    (out,) = [o for o in snap(st, {"A": edit("A", "x", None, t["A"], "A1"),
                                   "B": edit("B", "y", None, t["B"], "B1"), "C": None}, lww)
              if o.conflict is not None]
    assert st.content == row("y") and st.committed_at == 2.0 and st.snapshot_read
    assert st.outbox == {"A", "C"}
    assert out.conflict is not None
    case = out.conflict.case
    assert case.current.snapshot_read and case.incoming.snapshot_read
    assert case.current.committed_at == case.incoming.committed_at == 2.0
    assert isinstance(out.conflict.decision, Resolution)
    assert out.conflict.decision.reason == (
        "B and A: both rows were read by a snapshot at 1970-01-01T00:00:02Z, which tells no"
        " commit times; tie broken by endpoint name: 'B' > 'A'")
    # a later edit is no snapshot read: its time is its commit's
    deliver(st)
    change(st, edit("A", "z", 1, 3.0, "A2", before="y"))
    assert st.content == row("z") and not st.snapshot_read


def test_snapshot_reads_that_tell_commit_times_are_decided_by_them() -> None:
    """Where every read of a key carries its row's commit time (PostgreSQL's), the later
    row wins, whatever the names say (A < B here), and the report says committed."""
    st = KeyState()
    a = replace(edit("A", "x", None, 5.0, "A1"), commit_known=True)
    b = replace(edit("B", "y", None, 3.0, "B1"), commit_known=True)
    (out,) = [o for o in snap(st, {"A": a, "B": b, "C": None}, lww) if o.conflict is not None]
    assert st.content == row("x") and st.committed_at == 5.0 and not st.snapshot_read
    assert st.outbox == {"B", "C"}
    assert out.conflict is not None and isinstance(out.conflict.decision, Resolution)
    assert out.conflict.decision.reason == (
        "A's edit at 1970-01-01T00:00:05Z is later than B's at 1970-01-01T00:00:03Z")


def test_a_commit_time_is_not_compared_with_a_read_that_tells_none() -> None:
    """A's commit time (PostgreSQL) against B's read time (SQLite, MariaDB): which row
    was written later is unknown, so both count as read at one moment and the tie-break
    decides, as when neither tells."""
    st = KeyState()
    a = replace(edit("A", "x", None, 7.0, "A1"), commit_known=True)  # (a clock ahead)
    b = edit("B", "y", None, 6.0, "B1")
    (out,) = [o for o in snap(st, {"A": a, "B": b, "C": None}, lww) if o.conflict is not None]
    assert st.content == row("y") and st.snapshot_read
    assert out.conflict is not None
    assert out.conflict.case.current.committed_at == out.conflict.case.incoming.committed_at
    assert out.conflict.case.current.snapshot_read and out.conflict.case.incoming.snapshot_read


def test_a_side_picked_after_a_snapshot_is_written_only_where_it_is_not_held() -> None:
    """A and C held x at the first snapshot, B held y, parked. Picking x: only B is
    written. Until 2026-12-07 A and C were written x too (B's row, taken in first, had
    queued it for them), and a bulk decision wrote every row twice."""
    st = KeyState()
    snap(st, {"A": edit("A", "x", None, 1.0, "a1"), "B": edit("B", "y", None, 1.0, "b1"),
              "C": edit("C", "x", None, 1.0, "c1")}, Manual().decide)
    assert st.parked is not None and sorted(st.parked.sides) == ["A", "B"]
    new_v = resolve_parked(st, row("x"), chosen="A", sinks=SINKS, when=9.0)
    assert st.outbox == {"B"} and [j.target for j in jobs(st)] == ["B"]
    assert st.at("A").known == st.at("C").known == new_v


def test_a_snapshot_read_against_an_edit_says_it_was_read() -> None:
    """Against a known version, a resync's read is later than its commit (it read what
    the lost log held since): the reason says it is a read, not an edit at that time."""
    st = synced("x")
    change(st, edit("A", "y", 5, 3.0, "A2", before="x"))  # B does not hold it yet
    (out,) = snap(st, {"A": edit("A", "y", None, 4.0, "a7"),
                       "B": edit("B", "w", None, 4.0, "b7"), "C": None}, lww)[1:]
    assert out.conflict is not None and isinstance(out.conflict.decision, Resolution)
    assert out.conflict.decision.reason == (
        "B's row as read at 1970-01-01T00:00:04Z is later than A's at"
        " 1970-01-01T00:00:03Z")


def test_a_resnapshot_learns_row_versions_of_rows_it_knows() -> None:
    st = synced("x")
    v = st.vector
    outs = snap(st, {"A": edit("A", "x", None, 1.0, "a7"), "B": edit("B", "x", None, 1.0, "b7"),
                     "C": edit("C", "y", None, 5.0, "c7")}, lww)
    assert [o.kind for o in outs] == [Kind.UNCHANGED, Kind.UNCHANGED, Kind.APPLIED]
    assert st.at("B").row_version == "b7"
    assert st.vector.dominates(v) and st.content == row("y")


def test_a_column_added_since_is_no_edit_where_it_is_null() -> None:
    """A resync after ``ALTER TABLE ADD COLUMN n DEFAULT 5`` at A (the column added at B
    and C too, NULL there): A's rows are the edit; B's and C's are the rows known, with
    a NULL column more. Before, they were edits too, concurrent with A's, and the
    policy could keep their NULL over A's values (at A as well)."""
    st = synced("x")
    wide = {**row("x"), "n": 5}
    outs = snap(st, {"A": Edit("A", wide, None, 1.0, "a7"),
                     "B": Edit("B", {**row("x"), "n": None}, None, 2.0, "b7"),
                     "C": Edit("C", {**row("x"), "n": None}, None, 3.0, "c7")})
    assert [o.kind for o in outs] == [Kind.APPLIED, Kind.UNCHANGED, Kind.UNCHANGED]
    assert st.content == wide and st.outbox == {"B", "C"}
    assert {j.target: j.expected for j in jobs(st)} == {"B": "b7", "C": "c7"}
    # A value there, or a NULL where the content knew the column, is an edit
    st = synced("x")
    outs = snap(st, {"A": Edit("A", wide, None, 1.0, "a7"),
                     "B": Edit("B", {**row("x"), "n": 6}, None, 2.0, "b7"), "C": None}, lww)
    assert [o.kind for o in outs].count(Kind.RESOLVED) == 1 and st.content["n"] == 6
    st = synced("x")
    change(st, Edit("A", wide, (2,), 2.0, "a2", row("x")))
    deliver(st, {"B": "b2", "C": "c2"})
    outs = snap(st, {"A": Edit("A", wide, None, 3.0, "a2"),
                     "B": Edit("B", {**row("x"), "n": None}, None, 3.0, "b8"),
                     "C": Edit("C", wide, None, 3.0, "c2")})
    assert [o.kind for o in outs] == [Kind.UNCHANGED, Kind.APPLIED, Kind.UNCHANGED]


@pytest.mark.parametrize("winner", [Winner.CURRENT, Winner.INCOMING])
def test_resolutions_dominate_both_sides(winner: Winner) -> None:
    def pick(case: ConflictCase) -> Decision:
        return Resolution(case.side(winner).content, winner, "test")

    st = KeyState()
    change(st, edit("A", "x", 1, 1.0, "a1"))
    change(st, edit("B", "y", 1, 2.0, "b1"), pick)
    assert st.vector.dominates(vv(A=1)) and st.vector.dominates(vv(B=1))
    assert st.content == (row("x") if winner is Winner.CURRENT else row("y"))


# --- ABA on absence: edits that stand before our write in the endpoint's log ----------


def test_edits_read_after_our_insert_but_made_before_it_are_concurrent_with_it() -> None:
    """A deletes; B's user inserts and deletes the key (unread) while A inserts it
    again; our insert at B finds no row (no row version survives a delete). B's
    insert and delete, read afterwards, stand before our write in B's log: B still
    holds our write, and the edits are concurrent with the version we wrote."""
    st = synced("x")
    change(st, edit("A", None, 2, 2.0))
    deliver(st, {"B": None, "C": None})
    change(st, edit("A", "a", 3, 3.0, "a3"))
    job = next(j for j in jobs(st) if j.target == "B")
    before = st.at("B").known
    assert on_applied(st, job, "b-ours", position=(50, -1))  # found no row
    assert st.at("B").wrote_at == (50, -1) and st.at("B").known_before == before
    ours = st.at("B").hash
    # B's log, read now: the user's insert and delete, both before our write.
    out = change(st, edit("B", "b", 40, 4.0, "b40"), resolve=lww)
    assert out.kind is Kind.RESOLVED  # concurrent with A's insert, not made knowing it
    assert st.content == row("b")  # the later write wins (last writer wins)
    assert st.at("B").hash == ours and st.at("B").row_version == "b-ours"  # B holds ours
    assert "B" in st.outbox  # so B gets the outcome like any other target
    out = change(st, edit("B", None, 41, 5.0), resolve=lww)
    assert out.kind is Kind.RESOLVED and st.content is None
    assert {"A", "B", "C"} <= st.outbox
    b_job = next(j for j in jobs(st) if j.target == "B")
    assert b_job.content is None and b_job.expected == "b-ours"  # deletes our write
    # An edit after our write is read as usual, and ends the window.
    deliver(st)
    change(st, edit("B", "later", 60, 6.0, "b60"))
    assert st.content == row("later") and st.at("B").wrote_at is None


def test_a_write_without_a_position_opens_no_window() -> None:
    st = synced("x")
    change(st, edit("A", "y", 2, 2.0, "a2"))
    deliver(st)
    assert all(e.wrote_at is None for e in st.endpoints.values())
    # an edit read from B then is taken as made knowing what B holds (rule 3)
    assert change(st, edit("B", "z", 1, 3.0, "b0")).kind is Kind.APPLIED
