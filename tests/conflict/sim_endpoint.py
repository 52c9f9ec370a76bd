"""The endpoints of the simulated world (tests/conflict/sim.py): rows, logs, sinks.

An endpoint is a ``key -> row`` store. Every row has a row version (a number
drawn from one counter for the whole world, like a transaction id) and the
set of user edit ids its content descends from (its history, which the
property checks read). Users' writes go to the endpoint's ordered change log;
the service's writes too unless the world tags them. The sink applies with
compare-and-set on the row version and tells a replay of its own write by
its token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from conflict.canonical import key_text
from conflict.protocol import ApplyJob
from connectors.base import ApplyResult, ApplyStatus

#: The value alphabet: tiny on purpose (``None`` is a deletion).
VALUES: tuple[str | None, ...] = ("a", "b", None)
ENTITY = "item"

Hist = frozenset[int]
Action = tuple[Any, ...]
Order = Literal["inorder", "perkey", "any"]
Policy = Literal["lww", "park"]
SinkMemory = Literal["tokens", "row", "content"]


class Violation(AssertionError):
    """A property of the protocol failed; the message carries the run's trace."""


@dataclass(frozen=True)
class WorldConfig:
    endpoints: int = 3
    keys: int = 2
    tagged: bool = False  # the service's writes never appear in the logs
    order: Order = "inorder"  # inorder | perkey (reordered across keys) | any (within a key too)
    duplicates: bool = False  # already delivered entries are delivered again
    skew: bool = True  # endpoint clocks disagree (LWW timestamps)
    policy: Policy = "lww"
    #: rows that exist before the sync starts, reconciled by ``on_snapshot``:
    #: one value index per key, per endpoint (empty: no snapshot, keys start absent)
    initial: tuple[tuple[int, ...], ...] = ()
    #: persist states through the state store's JSON codec instead of a deep copy
    codec: bool = False
    #: a deleted row keeps a row version (False: an absent row has none, so
    #: compare-and-set cannot tell "never existed" from "inserted and deleted")
    tombstone_versions: bool = True
    #: without tombstones: the sink records the row version each delete of its own
    #: removed (PostgreSQL's cdcsync.deleted_rows), and answers STALE where a row it
    #: deleted is gone and an apply expects that very version
    own_deletes: bool = False
    #: the sink tells where each write it applied stands in the endpoint's log
    #: (ApplyResult.position: the PostgreSQL and MariaDB sinks; the protocol keeps it
    #: for writes not checked against a version it read, e.g. a row known absent)
    insert_positions: bool = False
    #: the daemon's way: a key is read while its applies are in flight (one job
    #: per key and target at a time), every read and every apply result is its
    #: own transaction. False: the batch engine's way, a key's jobs all finish
    #: before it is read again, and a commit is an action of its own.
    beside: bool = False
    #: users may update a row to the content it has (an update of columns that
    #: are not synchronised). The protocol takes such an update for no edit,
    #: which is only sound when each key's log is read in order (see
    #: test_protocol_properties.py): off with ``order="any"``.
    noop_updates: bool = True
    #: how a sink tells a replay of its own write: "tokens" remembers every
    #: token it wrote (and the row version and identity that write produced);
    #: "row" knows only the token of the row as it stands (the SQLite sink's
    #: ROWVER table), so a replay after a user edit of the row is a skip;
    #: "content": a row that holds the op's content is taken for a replay
    #: whatever its version (the MySQL sink, with ``content_versions``).
    sink_memory: SinkMemory = "tokens"
    #: the row version is the content itself (MySQL: a hash of the
    #: synchronised columns), so compare-and-set cannot see ABA
    content_versions: bool = False
    #: a batch run's way (sync/capture.py save_once): jobs go out as soon as a
    #: key is decided, before its state is committed, so a crash loses the
    #: reads as well as the results. Each such job first leaves a mark
    #: (persisted at once, by run); a commit clears its run's marks of the keys
    #: it saves. The run after a crash notes the marks left and writes none of
    #: those keys at those targets until it has caught up (every log read,
    #: everything applied and committed); then it applies each one's current
    #: version there, its content unknown (sync/apply.py check_marks).
    save_once: bool = False
    #: with save_once: False, the run after a crash writes marked targets as soon as
    #: it decides them (and still checks them once caught up)
    fence: bool = True
    #: P2 not checked: edits may be superseded without a conflict record (see
    #: test_limit_an_edit_over_a_dead_runs_insert; P1, P3 and P4 still hold)
    unrecorded_losses: bool = False


@dataclass(frozen=True)
class Row:
    content: str | None
    version: int | None
    hist: Hist
    token: str | None = None  # the service's write this row holds, unchanged since


ABSENT = Row(None, None, frozenset())


@dataclass(frozen=True)
class Entry:
    """One change in an endpoint's log."""

    pos: int
    key: int
    content: str | None
    before: str | None
    version: int | None
    hist: Hist
    by_service: bool
    ts: float


def row_of(key: int, value: str | None) -> dict[str, Any] | None:
    return None if value is None else {"id": key, "v": value}


def value_of(row: Any) -> str | None:
    return None if row is None else str(row["v"])


def key_of(key: int) -> dict[str, Any]:
    return {"id": key}


class Endpoint:
    """A key -> row store with a change log and a compare-and-set sink."""

    def __init__(self, name: str, cfg: WorldConfig, next_version: Callable[[], int]) -> None:
        self.name = name
        self.cfg = cfg
        self.next_version = next_version
        self.rows: dict[int, Row] = {}
        self.log: list[Entry] = []
        # (key, token) -> (row version produced, identity) of the service's writes
        self.written: dict[tuple[int, str], tuple[int | None, str | None]] = {}
        self.deleted: dict[int, int | None] = {}  # key -> the version our delete removed

    def row(self, key: int) -> Row:
        return self.rows.get(key, ABSENT)

    def _version(self, content: str | None) -> int | None:
        if content is None and not self.cfg.tombstone_versions:
            return None
        if self.cfg.content_versions:
            return None if content is None else VALUES.index(content) + 1
        return self.next_version()

    def user_edit(self, key: int, value: str | None, eid: int | None, ts: float) -> Entry | None:
        """A user writes ``value``; ``eid`` is None for an update to the same content."""
        cur = self.row(key)
        if cur.content is None and value is None:
            return None  # deleting an absent row changes nothing and logs nothing
        hist = cur.hist if eid is None else cur.hist | {eid}
        version = self._version(value)
        self.rows[key] = Row(value, version, hist)
        entry = Entry(len(self.log), key, value, cur.content, version, hist, False, ts)
        self.log.append(entry)
        return entry

    def apply(self, key: int, job: ApplyJob, hist: Hist, ts: float) -> ApplyResult:
        """A conditional write, as a sink does it (DESIGN.md rule 4)."""
        kt = key_text(key_of(key))
        cur = self.row(key)
        value = value_of(job.content)
        if cur.version == job.expected:
            if hist < cur.hist:
                raise Violation(
                    f"P4 regression: wrote {value!r} (edits {sorted(hist)}) over {cur.content!r} "
                    f"(edits {sorted(cur.hist)}) at {self.name} k{key}")
            if cur.content is None and value is None:
                # DELETE of an absent row: no row version changes, nothing is
                # logged; the absence now stands for the version written.
                self.rows[key] = Row(None, cur.version, hist, job.token)
                self.written[(key, job.token)] = (cur.version, None)
                return ApplyResult(kt, ApplyStatus.APPLIED, cur.version, None)
            version = self._version(value)
            # Without tombstones a deleted row leaves nothing to tell whose delete it
            # was (PostgreSQL: no row, no xmin), unless the sink remembers every token.
            kept = job.token if (value is not None or self.cfg.tombstone_versions
                                 or self.cfg.sink_memory == "tokens") else None
            self.rows[key] = Row(value, version, hist, kept)
            if value is None and self.cfg.own_deletes:
                self.deleted[key] = cur.version
            # after every entry logged so far, before any logged from now on
            position = (len(self.log) - 1, 0) if self.cfg.insert_positions else None
            identity = None
            if not self.cfg.tagged:
                pos = len(self.log)
                self.log.append(Entry(pos, key, value, cur.content, version, hist, True, ts))
                identity = str(pos)
            self.written[(key, job.token)] = (version, identity)
            return ApplyResult(kt, ApplyStatus.APPLIED, version, identity, position)
        done = self.written.get((key, job.token))
        if self.cfg.sink_memory == "row" and cur.token != job.token:
            done = None
        if self.cfg.sink_memory == "content" and cur.content == value:
            done = (cur.version, None)
        if done is not None:
            # A replay of a write we made (a crash lost its result): the row
            # version that write produced, and how its echo looks.
            return ApplyResult(kt, ApplyStatus.ALREADY, done[0], done[1])
        if (self.cfg.own_deletes and cur.content is None and cur.version is None
                and key in self.deleted and self.deleted[key] == job.expected):
            return ApplyResult(kt, ApplyStatus.STALE, None)  # gone by our own delete
        if cur.token is not None and self.cfg.sink_memory != "content":
            # The row holds another write of ours, unchanged since (its result
            # was lost with a worker): no user edit is on its way.
            ident = self.written.get((key, cur.token), (None, None))[1]
            return ApplyResult(kt, ApplyStatus.STALE, cur.version, ident)
        return ApplyResult(kt, ApplyStatus.SKIPPED, cur.version)
