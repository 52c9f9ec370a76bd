"""The per-key version-vector protocol of DESIGN.md, as pure functions on state.

Nothing here does I/O. The engine loads :class:`KeyState` values from the state
store, feeds them the changes it reads (:func:`on_change`) and the results of
its applies (:func:`on_applied`, :func:`on_skipped`, :func:`on_stale`), and
writes the states back in one transaction together with the checkpoint they
belong to.

The rules, with the names used below:

1. *Echo*: a change whose identity is one of the service's own pending writes
   at that endpoint is dropped (engines that tag the service's writes never
   show them, so nothing is content-filtered).
2. *Duplicates*: a change at or before the last processed position of that
   key at that endpoint is skipped.
3. *New edit*: a change from A gets ``W`` = ``K_A`` with A's counter set past
   every counter of A seen so far. If ``W`` dominates ``V`` it becomes the
   current version and goes to every other sink; otherwise it is concurrent
   and the conflict policy decides (or the key is parked for a steward).
4. *No blind overwrites*: apply jobs carry the row version the service last
   knew at the target (the sink's compare-and-set).
5. *One apply in flight per key*: an apply job carries the vector it was made
   for; a result for a superseded vector changes nothing.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from conflict.canonical import canonical_json, row_hash
from conflict.case import ConflictCase, Decision, Park, Resolution, Side, Winner
from conflict.vector import RESOLVER, VersionVector

Row = Mapping[str, Any]
Position = tuple[int, ...]
EMPTY = VersionVector()  # immutable: one for every new state
#: the prefix of :attr:`EndpointState.hash` (before the hash it had) at an endpoint
#: restored from an older copy, until a snapshot reads it again: what it holds of a
#: known key is no edit but a copy that lags, and the key's content is written over it
#: (``cdcsync resync --restored``)
BEHIND = "~behind:"


def mark_behind(e: EndpointState, behind: bool = True) -> bool:
    """Mark ``e`` restored from an older copy (see :data:`BEHIND`), or take the mark
    back (``behind=False``: its rows are its edits after all); whether it changed."""
    if e.hash is None or e.hash.startswith(BEHIND) == behind:
        return False
    e.hash = BEHIND + e.hash if behind else e.hash[len(BEHIND):]
    return True


def is_behind(e: EndpointState) -> bool:
    return e.hash is not None and e.hash.startswith(BEHIND)


@dataclass(slots=True)
class EndpointState:
    """What the service knows of one key at one endpoint."""

    known: VersionVector = EMPTY  # K_E
    row_version: Any = None  # the endpoint's row version last seen or produced
    hash: str | None = None  # content hash last seen or produced ("" = absent, None = unknown;
    #                          prefixed BEHIND: restored from an older copy)
    last_pos: Position | None = None  # last processed log position of this key here
    pending: list[str] = field(default_factory=list)  # identities of own writes awaiting echo
    reads: int = 0  # how many times this endpoint's log told us about the key
    #: where our last write that found no row stands in this endpoint's log, and what
    #: the endpoint knew before it (K_E then), while edits before it may be unread
    #: (see :func:`_overwritten`)
    wrote_at: Position | None = None
    known_before: VersionVector | None = None


@dataclass(slots=True)
class KeyState:
    """The protocol state of one (entity, key)."""

    vector: VersionVector = EMPTY  # V
    content: dict[str, Any] | None = None  # None: absent (tombstone when vector is non-empty)
    committed_at: float = 0.0
    origin: str | None = None  # endpoint of the last writer
    #: the current version is a row as a snapshot read it (no commit time known):
    #: ``committed_at`` is when it was read
    snapshot_read: bool = False
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    outbox: set[str] = field(default_factory=set)  # endpoints with a pending apply
    parked: ParkedConflict | None = None
    key: dict[str, Any] | None = None  # the key columns, for applies replayed from the outbox
    #: forms derived from ``content`` (its hash; the store's JSON of it), each kept with
    #: the content object it was made from and remade when ``content`` is replaced.
    #: Contents are replaced, never changed in place, so identity says they are current.
    memo: dict[str, tuple[object, Any]] = field(default_factory=dict, repr=False,
                                                 compare=False)

    def at(self, endpoint: str) -> EndpointState:
        st = self.endpoints.get(endpoint)
        if st is None:
            st = self.endpoints[endpoint] = EndpointState()
        return st

    @property
    def content_hash(self) -> str:
        """``row_hash(content)``, made once per content (every apply result asks for it)."""
        memo = self.memo.get("hash")
        if memo is not None and memo[0] is self.content:
            return str(memo[1])
        h = row_hash(self.content)
        self.memo["hash"] = (self.content, h)
        return h

    def set_content(self, content: Row | None, content_hash: str | None = None) -> None:
        """Replace the content (a copy of ``content``), with its hash if the caller has it."""
        self.content = None if content is None else dict(content)
        if content_hash is not None:
            self.memo["hash"] = (self.content, content_hash)

    @property
    def is_new(self) -> bool:
        return not self.vector and self.content is None and not self.endpoints


@dataclass(slots=True)
class ParkedConflict:
    """A conflict left to a steward: the sides as they stand now, by endpoint."""

    conflict_id: str
    sides: dict[str, Side]
    base: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Edit:
    """A change read from an endpoint, as the protocol sees it."""

    endpoint: str
    content: Row | None  # None: the row was deleted
    position: Position | None  # None: a snapshot read (no log position)
    committed_at: float
    row_version: Any = None
    before: Row | None = None
    identity: str | None = None  # how an echo of our own write would be recognised
    #: ``row_hash(content)`` where the reader has it already (an engine whose row
    #: versions are content hashes: MariaDB); None: made here
    content_hash: str | None = None
    #: a snapshot read whose ``committed_at`` is when the row was committed, as its
    #: engine recorded it (PostgreSQL's ``track_commit_timestamp``), not when it was read
    commit_known: bool = False

    @property
    def untimed(self) -> bool:
        """A snapshot read that tells no commit time: ``committed_at`` is when it was read."""
        return self.position is None and not self.commit_known


class Kind(enum.StrEnum):
    DUPLICATE = "duplicate"
    ECHO = "echo"
    APPLIED = "applied"  # a new edit that dominates: goes everywhere
    RESOLVED = "resolved"  # a conflict decided by policy
    PARKED = "parked"  # a conflict left to a steward (or an edit of a parked key)
    UNCHANGED = "unchanged"  # a snapshot read that matches what is known


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """Everything the conflict report needs about one conflict."""

    conflict_id: str
    case: ConflictCase
    decision: Decision
    new_vector: VersionVector | None  # None while parked


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    conflict: ConflictRecord | None = None


@dataclass(frozen=True, slots=True)
class ApplyJob:
    """Make ``target`` hold ``content`` at version ``vector``, if its row is still ``expected``."""

    target: str
    content: dict[str, Any] | None
    vector: VersionVector
    expected: Any
    token: str
    reads: int = 0  # the target's read count when the job was built (see on_applied)
    #: row_hash(content), when the builder knew it (derived: not part of the job's identity)
    content_hash: str | None = field(default=None, compare=False)


Resolver = Callable[[ConflictCase], Decision]


@functools.lru_cache(maxsize=4096)
def token_of(vector: VersionVector) -> str:
    """A short identity of a version, stored with the write it produces.

    Cached: every apply job asks, and a batch's keys share few vectors.
    """
    text = canonical_json(vector.as_dict())
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def conflict_id_of(entity: str, key: Row, vector: VersionVector, incoming: VersionVector) -> str:
    text = canonical_json([entity, {k: str(v) for k, v in key.items()}, vector.as_dict(),
                           incoming.as_dict()])
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# --- reading -------------------------------------------------------------------------


def _record_read(st: KeyState, e: EndpointState, edit: Edit, w: VersionVector,
                 content_hash: str | None = None) -> None:
    e.reads += 1
    e.known = w
    e.row_version = edit.row_version
    e.hash = row_hash(edit.content) if content_hash is None else content_hash
    if edit.position is not None:
        e.last_pos = edit.position
        e.wrote_at = e.known_before = None  # the log is read past any write of ours


def on_change(
    st: KeyState,
    edit: Edit,
    *,
    entity: str,
    key: Row,
    sinks: Iterable[str],
    resolve: Resolver,
) -> Outcome:
    """Process one change read from ``edit.endpoint`` (rules 1-3), updating ``st``.

    Pending applies are added to ``st.outbox``; build the jobs with :func:`jobs`.
    """
    e = st.at(edit.endpoint)
    # Rule 2: per key, not per endpoint (delivery may be reordered across keys).
    if edit.position is not None and e.last_pos is not None and edit.position <= e.last_pos:
        return Outcome(Kind.DUPLICATE)
    # Rule 1: identity, never content.
    if edit.identity is not None and edit.identity in e.pending:
        e.pending.remove(edit.identity)
        if edit.position is not None:
            e.last_pos = edit.position
        return Outcome(Kind.ECHO)
    if (e.wrote_at is not None and edit.position is not None
            and edit.position < e.wrote_at):
        return _overwritten(st, e, edit, entity=entity, key=key, sinks=sinks, resolve=resolve)

    # An update that changed none of the synchronised columns (only columns this
    # entity leaves alone) of a row whose content we know exactly is no edit:
    # the endpoint still holds version K_E. Learn its new row version only.
    h = row_hash(edit.content) if edit.content_hash is None else edit.content_hash
    if (edit.before is not None and edit.content is not None and e.hash
            and h == e.hash and row_hash(edit.before) == h):
        e.row_version = edit.row_version
        e.reads += 1
        if edit.position is not None:
            e.last_pos = edit.position
        # The update may be what made an apply here skip (rule 4 expects an
        # edit to follow, and this is none): that apply is due again.
        if st.parked is None and e.hash != st.content_hash:
            st.outbox.add(edit.endpoint)
        return Outcome(Kind.UNCHANGED)

    # Rule 3. The counter of A goes past every counter of A seen so far: V[A]
    # normally, K_A[A] too while a key is parked and V does not move.
    counter = max(st.vector[edit.endpoint], e.known[edit.endpoint]) + 1
    w = e.known.with_counter(edit.endpoint, counter)
    _record_read(st, e, edit, w, h)
    incoming = Side(edit.endpoint, w, _own(edit.content), edit.committed_at,
                    edit.untimed)

    if st.parked is not None:
        # Later edits of a parked key update its sides and stay parked with it.
        st.parked.sides[edit.endpoint] = incoming
        return Outcome(Kind.PARKED)

    sink_set = [s for s in sinks]
    if w.dominates(st.vector):
        _adopt(st, edit, w, e.hash)
        st.outbox |= {t for t in sink_set if t != edit.endpoint}
        return Outcome(Kind.APPLIED)

    return _conflict(st, edit, incoming, entity=entity, key=key, sinks=sink_set,
                     resolve=resolve, incoming_held=True)


def _adopt(st: KeyState, edit: Edit, w: VersionVector, content_hash: str | None = None) -> None:
    """The edit dominates: its version ``w`` becomes the key's current one (rule 3)."""
    st.vector = w
    st.set_content(edit.content, content_hash)
    st.committed_at = edit.committed_at
    st.snapshot_read = edit.untimed
    st.origin = edit.endpoint


def _conflict(st: KeyState, edit: Edit, incoming: Side, *, entity: str, key: Row,
              sinks: list[str], resolve: Resolver, incoming_held: bool) -> Outcome:
    """Rule 3's concurrent case: resolve by policy, or park. ``incoming_held``: the
    edit's endpoint still holds the incoming version exactly."""
    w = incoming.vector
    current = Side(_current_side(st, edit.endpoint), st.vector, st.content, st.committed_at,
                   st.snapshot_read)
    case = ConflictCase(entity, key, current, incoming, _own(edit.before))
    cid = conflict_id_of(entity, key, st.vector, w)
    decision = resolve(case)
    if isinstance(decision, Park):
        st.parked = ParkedConflict(cid, {current.endpoint: current, edit.endpoint: incoming},
                                   _own(edit.before))
        return Outcome(Kind.PARKED, ConflictRecord(cid, case, decision, None))
    new_v = _settle(st, decision, sinks, holders_of_current=_holders(st, st.vector),
                    holders_of_incoming=[edit.endpoint] if incoming_held else [],
                    incoming=incoming, incoming_endpoint=edit.endpoint)
    return Outcome(Kind.RESOLVED, ConflictRecord(cid, case, decision, new_v))


def _current_side(st: KeyState, incoming: str) -> str:
    """Whose the current version is, in a conflict with an edit from ``incoming``.

    Its last writer, unless that is ``incoming`` itself: a version decided column
    by column (a steward's, a merge) keeps the origin it had, and the parked
    conflict's sides, keyed by endpoint, then held the incoming edit only (the
    decided version could be neither seen nor kept). It is then the version of an
    endpoint known to hold its content, or the resolver's."""
    origin = st.origin or ""
    if origin != incoming:
        return origin
    target = st.content_hash
    holders = sorted(n for n, e in st.endpoints.items() if n != incoming and e.hash == target)
    return holders[0] if holders else RESOLVER


def _overwritten(st: KeyState, e: EndpointState, edit: Edit, *, entity: str, key: Row,
                 sinks: Iterable[str], resolve: Resolver) -> Outcome:
    """An edit that stands before a write of ours in its endpoint's log, read after it.

    Compare-and-set lets that happen in two cases. We knew the row as absent, and
    a user inserted it and deleted it again before our insert found no row
    (PostgreSQL keeps no row version across a delete: ABA on absence). Or the row
    held a write of ours whose result a crash lost, made after edits this state
    never read (the crash also lost their reading), and our write passed against
    it (on_stale). The endpoint
    holds our write, so what is known of it stays; the edit was made knowing what
    the endpoint knew before our write (rule 3, "K_A as of that point in A's log"),
    so it is concurrent with the version we wrote and decided as such, and the
    endpoint gets the outcome like any other (it does not hold the edit).
    """
    if edit.position is not None:
        e.last_pos = edit.position
    counter = max(st.vector[edit.endpoint], e.known[edit.endpoint]) + 1
    w = (e.known_before or VersionVector()).with_counter(edit.endpoint, counter)
    e.known_before = w  # the next edit before our write was made knowing this one
    incoming = Side(edit.endpoint, w, _own(edit.content), edit.committed_at,
                    edit.untimed)
    if st.parked is not None:
        st.parked.sides[edit.endpoint] = incoming
        return Outcome(Kind.PARKED)
    sink_set = list(sinks)
    if w.dominates(st.vector):  # we had written a version it already knew
        _adopt(st, edit, w)
        st.outbox |= set(sink_set)  # its own endpoint too: it holds our write, not the edit
        return Outcome(Kind.APPLIED)
    out = _conflict(st, edit, incoming, entity=entity, key=key, sinks=sink_set,
                    resolve=resolve, incoming_held=False)
    if (out.kind is Kind.RESOLVED and edit.endpoint in sink_set
            and not e.known.dominates(st.vector)):
        # It holds our write, not the version decided: written even if the content is
        # equal (equal content is not the same version, and the edit's history must
        # reach it, like any holder's).
        st.outbox.add(edit.endpoint)
    return out


def _own(row: Row | None) -> dict[str, Any] | None:
    return None if row is None else dict(row)


def _holders(st: KeyState, version: VersionVector) -> list[str]:
    """Endpoints known to hold ``version`` exactly (their K has reached it)."""
    return [name for name, e in st.endpoints.items() if e.known.dominates(version)]


def _settle(
    st: KeyState,
    decision: Resolution,
    sinks: list[str],
    *,
    holders_of_current: list[str],
    holders_of_incoming: list[str],
    incoming: Side,
    incoming_endpoint: str,
) -> VersionVector:
    """Install a resolved version that dominates both sides; queue its applies.

    Only endpoints known to hold exactly the winning version get their K
    raised (equal content is not the same version); every sink whose content
    differs gets the write.
    """
    new_v = st.vector.merge(incoming.vector).increment(RESOLVER)
    if decision.winner is Winner.INCOMING:
        exact = holders_of_incoming
        st.origin = incoming_endpoint
        st.committed_at = incoming.committed_at
        st.snapshot_read = incoming.snapshot_read
    elif decision.winner is Winner.CURRENT:
        exact = holders_of_current
    else:
        exact = []
        st.committed_at = max(st.committed_at, incoming.committed_at)
        st.snapshot_read = st.snapshot_read and incoming.snapshot_read
    st.vector = new_v
    st.content = _own(decision.content)
    winner_hash = row_hash(decision.content)
    for name in exact:
        st.at(name).known = new_v
    for t in sinks:
        if st.at(t).hash != winner_hash:
            st.outbox.add(t)
    return new_v


def on_snapshot(
    st: KeyState,
    reads: Mapping[str, Edit | None],
    *,
    entity: str,
    key: Row,
    sinks: Iterable[str],
    resolve: Resolver,
    gone: Iterable[str] = (),
    when: float = 0.0,
    hashes: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Reconcile one key read by snapshots of its endpoints (``None``: absent there).

    Endpoints that hold equal content at snapshot time hold one version: a key
    every endpoint holds alike becomes the common baseline with no write at
    all. Otherwise each group of equal rows enters as one edit through
    :func:`on_change`, so rows that differ are a conflict and missing rows are
    inserts.

    ``gone``: endpoints read as absent whose absence is news (a snapshot taken
    again after their log was lost, by a caller that made sure nothing it knows
    of the key is newer than the read): where the service believed a row was
    there, the absence enters as a delete made at ``when``.

    ``hashes``: :func:`row_hash` of reads' contents that the caller has made already
    (by endpoint; a staged snapshot hashes each distinct row of a key once).
    """
    sink_list = list(sinks)
    known = hashes or {}
    for name, r in reads.items():
        if r is None and st.at(name).hash is None:
            st.at(name).hash = ""  # known absent: an apply expects no row there
    present = {name: r for name, r in sorted(reads.items()) if r is not None}
    # A snapshot read mostly carries when it was read, not when the row was written
    # (SQLite and MariaDB do not tell that): such reads count as made at one moment, so
    # that which endpoint, or which chunk, was read later decides nothing.
    # last_writer_wins then breaks the tie by endpoint name whatever path the snapshot
    # took. (Until 2026-12-07 the endpoint staged last won a staged first snapshot, the
    # greater name a merged one.) Reads that all tell their rows' commit times
    # (PostgreSQL's, where recorded) keep them; where one does not, the others' are
    # not compared with it either: every snapshot read of the key counts as untimed.
    moment = None
    if len(present) > 1 and any(r.untimed for r in present.values()):
        moment = max(r.committed_at for r in present.values() if r.position is None)
    if moment is not None:
        present = {name: r if r.position is not None or (r.committed_at == moment
                                                         and r.untimed)
                   else replace(r, committed_at=moment, commit_known=False)
                   for name, r in present.items()}
    # Known before (a resync, a resumed snapshot): a version or a baseline content.
    # Endpoint entries alone do not count: absent and target-only reads make them.
    if st.vector or st.content is not None:
        outs: list[Outcome] = []
        for name in sorted(set(gone)):
            if name in reads and reads[name] is None and st.at(name).hash:
                outs.append(on_change(st, Edit(name, None, None, when), entity=entity, key=key,
                                      sinks=sink_list, resolve=resolve))
        # (each read against the state as loaded: an edit taken in changes its content)
        same = {name: _holds_known(st, st.at(name), r.content,
                                   known.get(name) or row_hash(r.content))
                for name, r in present.items()}
        for name, r in present.items():
            e = st.at(name)
            if same[name]:
                e.row_version = r.row_version
                outs.append(Outcome(Kind.UNCHANGED))
            else:
                outs.append(on_change(st, r, entity=entity, key=key, sinks=sink_list,
                                      resolve=resolve))
        if st.parked is None:
            # A target that is read, not a source (not in ``reads``), holds what it was
            # read holding: where that is not the key's content, it is written again,
            # as for a key known for the first time below. Until 2026-12-07 a resync
            # left a one-way target restored from a backup as it was.
            for t in sink_list:
                held = st.endpoints.get(t)
                if t not in reads and held is not None and held.hash is not None \
                        and held.hash != st.content_hash:
                    st.outbox.add(t)
        return outs
    groups: dict[str, list[Edit]] = {}
    for name, r in present.items():
        groups.setdefault(known.get(name) or row_hash(r.content), []).append(r)
    if len(groups) == 1 and len(present) == len(reads):
        # Only when no endpoint lacks the row: an insert racing the one we
        # send to an endpoint that lacks it must be concurrent with it, which
        # the empty baseline vector cannot tell.
        (h, members), = groups.items()
        st.set_content(members[0].content, h)
        st.committed_at = max(r.committed_at for r in members)
        st.snapshot_read = all(r.untimed for r in members)
        st.origin = members[0].endpoint
        for r in members:
            _record_read(st, st.at(r.endpoint), r, st.vector, h)
        for t in sink_list:
            if st.at(t).hash != st.content_hash:
                st.outbox.add(t)
        return [Outcome(Kind.UNCHANGED)]
    outs = []
    for members in groups.values():
        rep, others = members[0], members[1:]
        for r in others:
            _record_read(st, st.at(r.endpoint), r, st.at(r.endpoint).known)
        outs.append(on_change(st, rep, entity=entity, key=key, sinks=sink_list, resolve=resolve))
        for r in others:
            st.at(r.endpoint).known = st.at(rep.endpoint).known
            if st.at(r.endpoint).hash == st.content_hash:
                st.outbox.discard(r.endpoint)
        held = st.at(rep.endpoint)
        if held.hash == st.content_hash and held.known == st.vector:
            # a group that won a conflict after another was taken in: it holds the
            # version decided, which the other group's adoption had queued for it
            st.outbox.discard(rep.endpoint)
    return outs


def _holds_known(st: KeyState, e: EndpointState, content: Row | None, h: str) -> bool:
    """Is ``content`` (hashed ``h``), read at endpoint ``e``, what the service knows
    ``e`` holds?

    Also when ``e`` held the key's content and the read has columns that content
    lacks, each NULL: columns added to the table since the content was recorded
    (``ALTER TABLE ADD COLUMN``, then a resync to bring over the values a default
    gave the source's rows). Such a row is the same row. Until 2026-12-07 it was an
    edit, concurrent with the source's rows (which hold the default), and the
    conflict policy could keep its NULL and write it over the source's values.
    """
    if e.hash == h:
        return True
    if content is None or not e.hash or e.hash != st.content_hash:
        return False
    was = st.content
    if was is None:
        return False
    added = content.keys() - was.keys()
    if not added or any(content[c] is not None for c in added):
        return False
    return row_hash({c: v for c, v in content.items() if c in was}) == e.hash


def snapshot_like(template: KeyState, read: Edit, key: Row) -> KeyState:
    """What :func:`on_snapshot` makes of ``read`` for a fresh key read as ``template``'s
    was: the same endpoints read as absent and ``read``'s endpoint the one holding it.

    Such a decision does not depend on the row (one group of content, no conflict,
    no resolver): only the content, its hash and the row version at ``read``'s
    endpoint differ. A direct snapshot decides one key of a chunk with
    :func:`on_snapshot` and makes the others like it (sync/snapshot_direct.py).
    """
    if template.parked is not None or template.origin != read.endpoint:
        raise ValueError("the template is no lone snapshot read of this endpoint")
    h = row_hash(read.content) if read.content_hash is None else read.content_hash
    held = template.content_hash
    st = KeyState(vector=template.vector, committed_at=template.committed_at,
                  snapshot_read=template.snapshot_read, origin=template.origin,
                  outbox=set(template.outbox), key=dict(key))
    st.set_content(read.content, h)
    for name, e in template.endpoints.items():
        st.endpoints[name] = EndpointState(
            known=e.known,
            row_version=read.row_version if name == read.endpoint else e.row_version,
            hash=h if e.hash == held else e.hash,
            last_pos=e.last_pos,
            pending=list(e.pending),
            reads=e.reads,
        )
    return st


# --- applying ------------------------------------------------------------------------


def jobs(st: KeyState) -> list[ApplyJob]:
    """The pending applies of a key (none while it is parked)."""
    if st.parked is not None:
        return []
    tok = token_of(st.vector)
    h = st.content_hash
    return [
        ApplyJob(t, st.content, st.vector, st.at(t).row_version, tok, st.at(t).reads, h)
        for t in sorted(st.outbox)
    ]


def on_applied(st: KeyState, job: ApplyJob, row_version: Any, identity: str | None = None,
               position: Position | None = None) -> bool:
    """The sink wrote ``job`` (or had written it before). False if the job was superseded.

    A superseded result still says something true: the target now holds
    exactly ``job.vector`` at ``row_version``. Recording it keeps the newer
    version's pending apply valid (its compare-and-set expects the row our own
    write produced, not the one before it); forgetting it would make that apply
    fail against our own write and leave the target behind forever (rule 5).
    """
    e = st.at(job.target)
    # Our write passed compare-and-set, so any log read of this key at the
    # target since the job was built is of an edit made after our write: that
    # knowledge is newer than ours and stays.
    if e.reads == job.reads:
        if (position is not None and (job.expected is None or e.hash is None)
                and (e.wrote_at is None or position > e.wrote_at)):
            # A write whose compare-and-set did not check a version read from the log:
            # it found no row, or a row of ours whose content we lost (on_stale, a
            # crash). Edits made before it may still be unread there (_overwritten).
            e.wrote_at, e.known_before = position, e.known
        if job.vector.dominates(e.known):
            e.known = job.vector
        e.row_version = row_version
        e.hash = row_hash(job.content) if job.content_hash is None else job.content_hash
    if identity is not None:
        e.pending.append(identity)
    if job.vector != st.vector:
        return False  # a newer version is still pending for this target
    st.outbox.discard(job.target)
    return True


def on_skipped(st: KeyState, job: ApplyJob, *, absent: bool = False) -> bool:
    """The row moved at the target: a user edit is on its way in its log (rule 4).

    The edit, when read, is concurrent with ``V`` and is handled by rule 3, so
    the apply is dropped rather than retried. Unless the target's log was read
    since the job was built: what moved the row is known already, and the
    outbox says what is due (an update that changed nothing keeps the apply).

    ``absent``: the sink found no row, where one was expected. If what the target
    holds is unknown (no content hash: a write of ours may stand there whose
    result was lost, sync/apply.py check_marks, on_stale), the row may be gone by
    a delete of ours, which its log never shows: waiting for an edit would then
    strand the target. The row is taken as absent and the apply stays due: written
    over the absence, it is placed in the log (on_applied), so that a user's
    delete before it, read later, is still decided as concurrent with it.
    A job built before a result of ours at the target was recorded (a state the
    daemon's reader handed over, sync/daemon/runtime.py) expected the row that our
    own write has replaced since: its failed compare-and-set says nothing of a user
    edit, so the apply stays due, against the row version known now.
    Returns True when the apply is due again now.
    """
    e = st.at(job.target)
    if job.vector != st.vector or e.reads != job.reads:
        return False
    if job.expected != e.row_version:
        return st.parked is None
    if absent and e.hash is None and job.expected is not None and job.content is not None:
        e.row_version = None
        return st.parked is None
    st.outbox.discard(job.target)
    return False


def on_stale(st: KeyState, job: ApplyJob, row_version: Any, identity: str | None = None) -> bool:
    """The row at the target holds another write of ours, unchanged since.

    That happens when a worker wrote a version and died before recording the
    result while the reader decided a newer one: the newer apply expects the
    row version from before the lost write, and its compare-and-set fails
    although no user edit is on its way. Dropping it like a skip would strand
    the target forever on engines whose own writes never come back in their
    log. Instead the row version is learnt and the apply stays due; which of
    our versions the row holds is unknown, so its content hash is forgotten
    and ``K`` is left as it was (a later edit there is then taken for
    concurrent, never for one that saw more than it did).

    Returns True when the apply is due again now (the caller may retry at
    once rather than wait for the outbox to be swept).
    """
    e = st.at(job.target)
    if e.reads != job.reads:
        return False  # the target's log was read since: what it said stands
    e.row_version = row_version
    e.hash = None
    if identity is not None and identity not in e.pending:
        e.pending.append(identity)
    return st.parked is None and job.target in st.outbox


# --- stewards ------------------------------------------------------------------------


def resolve_parked(
    st: KeyState,
    content: Row | None,
    *,
    chosen: str | None,
    sinks: Iterable[str],
    when: float,
) -> VersionVector:
    """Apply a steward's decision to a parked key.

    ``chosen`` is the endpoint whose side was picked whole (its holder gets
    exactly the new version), or ``None`` for content assembled field by field.
    """
    parked = st.parked
    if parked is None:
        raise ValueError("the key is not parked")
    new_v = st.vector
    for s in parked.sides.values():
        new_v = new_v.merge(s.vector)
    for e in st.endpoints.values():
        new_v = new_v.merge(e.known)
    new_v = new_v.increment(RESOLVER)
    st.vector = new_v
    st.content = _own(content)
    st.committed_at = max(st.committed_at, when)
    st.snapshot_read = False  # a steward's decision, made at ``when``
    st.parked = None
    target_hash = row_hash(content)
    if chosen is not None:
        side = parked.sides.get(chosen)
        # The chosen endpoint, and any other known to hold the very version of its side
        # (rows equal at a snapshot), hold the decision exactly if nothing moved them.
        for name, e in st.endpoints.items():
            if side is not None and e.known == side.vector and e.hash == target_hash:
                e.known = new_v
                # (it may be due an apply from before the conflict: the version that
                # the other side's edit, taken in first, had queued for it)
                st.outbox.discard(name)
        st.origin = chosen
    for t in sinks:
        if st.at(t).hash != target_hash:
            st.outbox.add(t)
    return new_v
