"""An adversarial world for the conflict protocol, for property tests.

The same world as the reference model in ``shared/protocol/model.py``, driving
OUR :mod:`conflict.protocol` the way the engine does:

- 2-4 endpoints, each a ``key -> row`` store with a row version and an
  ordered change log. The service's writes are either *tagged* (they never
  appear in the log, like SQLite triggers with a session marker or PG
  replication origins) or not: then they appear in the log, and the sink
  reports the log position of its write as ``ApplyResult.identity``, which the
  source reports back as ``Edit.identity`` (echo by identity).
- Users edit any key anywhere at any time from a tiny alphabet, so ABA,
  identical-content edits and inserts of one key on two sides are common.
- The service reads log entries in order, reordered across keys or within a
  key, and duplicated. It decides a batch on its in-memory states, commits
  the states with the conflicts and the source checkpoint atomically (a deep
  copy, or the state store's JSON codec, is the store), then applies the
  committed jobs with compare-and-set on the row version; sinks tell a
  replay of their own write by its token (ALREADY). A crash loses everything
  since the last commit; the outbox is replayed on restart. A key's jobs all
  finish before the key is read again (one apply in flight per key) -- or,
  the daemon's way (``beside``), keys are read while their applies fly and
  every read and every result is its own transaction -- or, a batch run's
  way (``save_once``), a key's jobs go out before its state is committed,
  with marks that the run after a crash checks once it has caught up.
- Or the key starts on several endpoints and is reconciled by ``on_snapshot``.
- Conflicts go to last-writer-wins (with clock skew) or are parked for a
  steward who later picks a side or writes new content (``resolve_parked``).

Every user edit has an id; every row carries the set of edit ids its content
descends from (its *history*), and so does every service write. After users
stop and everything is drained, :meth:`World.check` asserts:

- P1 convergence: every endpoint holds the same content for every key, and
  the service agrees with them;
- P2 no silent loss: every user edit is in some endpoint's history, or lost a
  conflict that was recorded (policy or steward);
- P3 quiescence: draining again, after a crash, and after the sources deliver
  their whole logs again, writes nothing;
- P4 no edit applied twice in effect: no apply writes a version whose history
  is strictly older than the history of the row it overwrites (checked at
  every write).

A failure raises :class:`Violation` with the trace of the run.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conflict.case import ConflictCase, Decision, Resolution, Winner
from conflict.policies import LastWriterWins, Manual
from conflict.protocol import (
    ApplyJob,
    ConflictRecord,
    Edit,
    KeyState,
    Kind,
    jobs,
    on_applied,
    on_change,
    on_skipped,
    on_snapshot,
    on_stale,
    resolve_parked,
)
from connectors.base import ApplyStatus
from sync.state.codec import state_from_json, state_to_json
from tests.conflict.sim_endpoint import (
    ENTITY,
    VALUES,
    Action,
    Endpoint,
    Entry,
    Hist,
    Order,
    Policy,
    Row,
    SinkMemory,
    Violation,
    WorldConfig,
    key_of,
    row_of,
    value_of,
)

__all__ = ["VALUES", "Action", "Endpoint", "Order", "Policy", "SinkMemory", "Violation",
           "World", "WorldConfig", "run"]


@dataclass
class KeyRecord:
    """One key's state in the store, with the harness's shadow of it."""

    state: KeyState
    hist: Hist = frozenset()  # the edits the current version V has seen
    sides: dict[str, Hist] = field(default_factory=dict)  # while parked: each side's edits


@dataclass
class Store:
    """What the service persists in one transaction per batch."""

    keys: dict[int, KeyRecord]
    delivered: list[set[int]]  # the source checkpoints (positions read, per endpoint)
    conflicts: list[tuple[int, ConflictRecord]] = field(default_factory=list)
    decided: dict[int, set[int]] = field(default_factory=dict)  # edits that lost, recorded


def clone(x: Any) -> Any:
    """A deep copy that shares what is immutable (a fast ``copy.deepcopy`` for the store)."""
    if isinstance(x, dict):
        return {k: clone(v) for k, v in x.items()}
    if isinstance(x, list):
        return [clone(v) for v in x]
    if isinstance(x, set):
        return set(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        params = getattr(type(x), "__dataclass_params__", None)
        if params is not None and params.frozen:
            return x  # frozen records (Side, ConflictRecord, ApplyJob) are never changed
        return type(x)(**{f.name: clone(getattr(x, f.name)) for f in _fields(type(x))})
    return x  # None, str, int, float, tuples, VersionVector: immutable


@functools.cache
def _fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


@dataclass(frozen=True)
class Job:
    key: int
    job: ApplyJob
    hist: Hist


class World:
    """Endpoints, users and the service; ``run`` plays a list of actions.

    Actions (integers are reduced modulo what they choose among):

    - ``("user", e, k, v)``: a user at endpoint ``e`` writes ``VALUES[v]`` to key ``k``;
    - ``("read", e, x, dup)``: the service reads one entry of ``e``'s log (the
      ``x``-th candidate; ``dup``: an already delivered one, when duplicates are on);
    - ``("apply", x)``: the ``x``-th in-flight apply job runs at its sink;
    - ``("lost", x)``: the same, but the worker dies before it records the result;
    - ``("commit",)``: the service commits its states and checkpoints, then
      queues the jobs of every key that has none in flight;
    - ``("crash",)``: the service restarts from the store and replays the outbox;
    - ``("check",)``: with ``save_once``, once caught up, the marks a dead run left
      are checked (the drain does it too);
    - ``("steward", x, y)``: a steward decides the ``x``-th parked key: side
      ``y`` whole, or (``y`` past the sides) new content ``VALUES[y]``.
    """

    def __init__(self, cfg: WorldConfig) -> None:
        self.cfg = cfg
        self._version = 0
        self.names = [f"e{i}" for i in range(cfg.endpoints)]
        self.endpoints = [Endpoint(n, cfg, self._next_version) for n in self.names]
        self.skew = [((i * 7) % 5) - 2 if cfg.skew else 0 for i in range(cfg.endpoints)]
        self.now = 0
        self.eid = 0
        self.edits: dict[int, list[int]] = {k: [] for k in range(cfg.keys)}
        self.resolve: Callable[[ConflictCase], Decision] = (
            LastWriterWins().decide if cfg.policy == "lww" else Manual().decide)
        self.working = Store(
            keys={k: KeyRecord(KeyState(key=key_of(k))) for k in range(cfg.keys)},
            delivered=[set() for _ in self.names],
        )
        self.touched: set[int] = set(self.working.keys)  # keys changed since the last commit
        self.persisted = self._copy(self.working, self.touched)
        # save_once: the marks in the store, (key, target, run), and those dead runs
        # left, noted by this run: not written until it has caught up (the fence)
        self.run_id = 0
        self.marks: set[tuple[int, str, int]] = set()
        self.noted: set[tuple[int, str]] = set()
        self.fenced: set[tuple[int, str]] = set()
        self.inflight: list[Job] = []
        self.dirty = False
        self.writes = 0
        self.trace: list[str] = []
        if cfg.initial:
            self._snapshot(cfg.initial)

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _new_edit(self, key: int) -> int:
        self.eid += 1
        self.edits[key].append(self.eid)
        return self.eid

    def fail(self, message: str) -> Violation:
        return Violation(message + "\ntrace:\n  " + "\n  ".join(self.trace))

    # --- the store ----------------------------------------------------------------

    def _copy(self, store: Store, keys: Iterable[int], into: Store | None = None) -> Store:
        """What a commit (or a restart) copies: ``keys``' records and everything else."""
        out = into or Store({}, [])
        for k in keys:
            rec: KeyRecord = clone(store.keys[k])
            if self.cfg.codec:
                rec.state = state_from_json(json.loads(json.dumps(state_to_json(rec.state))))
            out.keys[k] = rec
        out.delivered = [set(d) for d in store.delivered]
        out.conflicts = list(store.conflicts)
        out.decided = {k: set(v) for k, v in store.decided.items()}
        return out

    def commit(self) -> None:
        if self.cfg.save_once and self.inflight:
            return  # a batch's states are saved once its applies are done
        self._copy(self.working, self.touched, into=self.persisted)
        self.marks = {m for m in self.marks if m[2] != self.run_id or m[0] not in self.touched}
        self.touched.clear()
        self.dirty = False
        self.trace.append("commit")
        self._queue_jobs()

    def crash(self) -> None:
        self.trace.append(f"CRASH ({len(self.inflight)} applies in flight lost)")
        self.working = self._copy(self.persisted, self.persisted.keys)
        self.touched.clear()
        self.inflight = []
        self.dirty = False
        self.run_id += 1
        self.noted = {(k, t) for k, t, _ in self.marks}  # before the replay writes anything
        self.fenced = set(self.noted) if self.cfg.fence else set()
        self._queue_jobs()

    def _busy(self, key: int) -> bool:
        return any(j.key == key for j in self.inflight)

    def _queue_jobs(self) -> None:
        """The applies of committed states, one job per key and target at a time."""
        flying = {(j.key, j.job.target) for j in self.inflight}
        for k, rec in sorted(self.working.keys.items()):
            due = [Job(k, job, rec.hist) for job in jobs(rec.state)
                   if (k, job.target) not in flying and (k, job.target) not in self.fenced]
            if self.cfg.save_once and k in self.touched and rec.state.parked is None:
                self.marks |= {(k, j.job.target, self.run_id) for j in due}
            self.inflight.extend(due)

    def caught_up(self) -> bool:
        """Every log read, every job applied, every state committed (a run's catch-up)."""
        return (not self.inflight and not self.dirty
                and not any(self.candidates(e) for e in range(len(self.names))))

    def check_marks(self) -> bool:
        """After the catch-up: the noted marks' current versions, content unknown."""
        if not self.noted or not self.caught_up():
            return False
        self.now += 1
        for k, t in sorted(self.noted):
            st = self.working.keys[k].state
            st.at(t).hash = None  # parked: written when a steward decides
            if st.parked is None:
                st.outbox.add(t)
            self.touched.add(k)
        # the checks go in the outbox with the marks' clearing, in one commit
        self.marks = {m for m in self.marks if m[2] == self.run_id}
        self.trace.append(f"check marks {sorted(self.noted)}")
        self.noted, self.fenced = set(), set()
        self.dirty = True
        self.commit()
        return True

    def _sweep(self) -> bool:
        """Queue outbox work that no job in flight carries (the daemon's sweeper)."""
        n = len(self.inflight)
        self._queue_jobs()
        return len(self.inflight) > n

    # --- users --------------------------------------------------------------------

    def user(self, e: int, key: int, value: str | None) -> None:
        self.now += 1
        ep = self.endpoints[e]
        before = ep.row(key).content
        if before is None and value is None:
            return  # deleting an absent row: nothing happens
        # An update to the same content changes nothing that is synchronised
        # (like an update of other columns): no edit id, nothing to keep.
        if before == value and not self.cfg.noop_updates:
            return
        eid = None if before == value else self._new_edit(key)
        entry = ep.user_edit(key, value, eid, float(self.now + self.skew[e]))
        if entry is None:
            return
        self.trace.append(f"user@{ep.name} k{key}: {before!r}->{value!r} "
                          f"(edit #{eid}, pos {entry.pos}, v{entry.version})")

    # --- the service: reading -----------------------------------------------------

    def candidates(self, e: int) -> list[Entry]:
        delivered = self.working.delivered[e]
        pending = [x for x in self.endpoints[e].log if x.pos not in delivered]
        if self.cfg.order == "inorder":
            return pending[:1]
        if self.cfg.order == "perkey":
            seen: set[int] = set()
            out: list[Entry] = []
            for x in pending:
                if x.key not in seen:
                    seen.add(x.key)
                    out.append(x)
            return out
        return pending

    def read(self, e: int, x: int, dup: bool = False) -> bool:
        self.now += 1
        delivered = self.working.delivered[e]
        if dup and self.cfg.duplicates and delivered:
            old = sorted(delivered)
            entry = self.endpoints[e].log[old[x % len(old)]]
        else:
            cands = self.candidates(e)
            if not cands:
                return False
            entry = cands[x % len(cands)]
        if self._busy(entry.key) and not self.cfg.beside:
            return False
        delivered.add(entry.pos)
        self._process(e, entry)
        self.touched.add(entry.key)
        self.dirty = True
        if self.cfg.beside:
            self.commit()
        elif self.cfg.save_once:
            self._queue_jobs()  # applied before the commit
        return True

    def _edit_of(self, e: int, entry: Entry) -> Edit:
        return Edit(
            endpoint=self.names[e],
            content=row_of(entry.key, entry.content),
            position=(entry.pos,),
            committed_at=entry.ts,
            row_version=entry.version,
            before=row_of(entry.key, entry.before),
            identity=None if self.cfg.tagged else str(entry.pos),
        )

    def _process(self, e: int, entry: Entry) -> None:
        k = entry.key
        rec = self.working.keys[k]
        st = rec.state
        old_v = st.vector
        out = on_change(st, self._edit_of(e, entry), entity=ENTITY, key=key_of(k),
                        sinks=self.names, resolve=self.resolve)
        what = (f"read {self.names[e]} pos{entry.pos} k{k} "
                f"{'svc' if entry.by_service else 'user'} {entry.content!r} -> {out.kind}")
        if out.kind in (Kind.APPLIED, Kind.RESOLVED) and (
                not st.vector.dominates(old_v) or st.vector == old_v):
            raise self.fail(f"V did not advance: {old_v} -> {st.vector}")
        if out.kind is Kind.APPLIED:
            rec.hist = entry.hist
            what += f", V={st.vector.as_dict()}"
        elif out.kind is Kind.RESOLVED:
            assert out.conflict is not None
            decision = out.conflict.decision
            assert isinstance(decision, Resolution)
            cur, inc = rec.hist, entry.hist
            if decision.winner is Winner.INCOMING:
                lost = cur - inc
            elif decision.winner is Winner.CURRENT:
                lost = inc - cur
            else:
                lost = cur | inc
            self._record(k, out.conflict, lost)
            rec.hist = cur | inc
            what += (f" CONFLICT {decision.winner} -> {value_of(st.content)!r}, "
                     f"lost {sorted(lost)}, V={st.vector.as_dict()}")
        elif out.kind is Kind.PARKED:
            if out.conflict is not None:
                rec.sides = {out.conflict.case.current.endpoint: rec.hist}
                self._record(k, out.conflict, set())
            rec.sides[self.names[e]] = entry.hist
            what += f" sides {sorted(rec.sides)}"
        self.trace.append(what)

    def _record(self, key: int, conflict: ConflictRecord, lost: Iterable[int]) -> None:
        self.working.conflicts.append((key, conflict))
        self.working.decided.setdefault(key, set()).update(lost)

    # --- the service: applying ----------------------------------------------------

    def apply(self, x: int, *, record: bool = True) -> bool:
        """Run one job at its sink; ``record=False``: the worker dies before recording."""
        if not self.inflight:
            return False
        self.now += 1
        job = self.inflight.pop(x % len(self.inflight))
        t = self.names.index(job.job.target)
        ep = self.endpoints[t]
        before = ep.row(job.key)
        try:
            res = ep.apply(job.key, job.job, job.hist, float(self.now + self.skew[t]))
        except Violation as v:
            raise self.fail(str(v)) from None
        if not record:
            self.trace.append(f"apply k{job.key} {value_of(job.job.content)!r} -> {ep.name}: "
                              f"{res.status}, the result is lost")
            return True
        st = self.working.keys[job.key].state
        if res.status is ApplyStatus.SKIPPED:
            on_skipped(st, job.job, absent=res.row_version is None)
        elif res.status is ApplyStatus.STALE:
            on_stale(st, job.job, res.row_version, res.identity)
        elif not on_applied(st, job.job, res.row_version, res.identity,
                            res.position) and not self.cfg.beside:
            raise self.fail(f"on_applied refused the only job in flight for k{job.key}")
        if res.status is ApplyStatus.APPLIED and ep.row(job.key) != before:
            self.writes += 1
        self.trace.append(f"apply k{job.key} {value_of(job.job.content)!r} -> {ep.name} "
                          f"(expected v{job.job.expected}, row {before.content!r} "
                          f"v{before.version}): {res.status}")
        self.touched.add(job.key)
        self.dirty = True
        if self.cfg.beside:
            self.commit()
        return True

    # --- stewards -----------------------------------------------------------------

    def steward(self, x: int, y: int) -> bool:
        parked = [k for k, rec in sorted(self.working.keys.items())
                  if rec.state.parked is not None and (self.cfg.beside or not self._busy(k))]
        if not parked:
            return False
        self.now += 1
        k = parked[x % len(parked)]
        rec = self.working.keys[k]
        st = rec.state
        assert st.parked is not None
        sides = sorted(st.parked.sides.items())
        seen = rec.hist.union(*rec.sides.values())
        chosen: str | None
        if y < len(sides):
            chosen, side = sides[y]
            content = side.content
            kept = rec.sides.get(chosen, frozenset())
        else:  # content of the steward's own: every side's edits were decided
            chosen, content = None, row_of(k, VALUES[y % len(VALUES)])
            kept = frozenset()
        resolve_parked(st, content, chosen=chosen, sinks=self.names, when=float(self.now))
        self.working.decided.setdefault(k, set()).update(seen - kept)
        rec.hist = seen  # the decided version has seen every side
        rec.sides = {}
        self.touched.add(k)
        self.trace.append(f"steward k{k}: {chosen or 'new content'} {value_of(content)!r}, "
                          f"V={st.vector.as_dict()}")
        self.commit()  # a steward's decision is its own transaction
        return True

    # --- the initial snapshot -----------------------------------------------------

    def _snapshot(self, initial: Sequence[Sequence[int]]) -> None:
        for e, values in enumerate(initial[: len(self.names)]):
            for k, v in enumerate(values[: self.cfg.keys]):
                value = VALUES[v % len(VALUES)]
                if value is not None:
                    eid = self._new_edit(k)
                    self.endpoints[e].rows[k] = Row(value, self._next_version(), frozenset({eid}))
        for k, rec in self.working.keys.items():
            reads: dict[str, Edit | None] = {}
            groups: dict[str | None, Hist] = {}
            for e, ep in enumerate(self.endpoints):
                row = ep.row(k)
                if row.content is None:
                    reads[ep.name] = None
                    continue
                reads[ep.name] = Edit(ep.name, row_of(k, row.content), None,
                                      float(self.skew[e] - 10), row.version)
                groups[row.content] = groups.get(row.content, frozenset()) | row.hist
            outs = on_snapshot(rec.state, reads, entity=ENTITY, key=key_of(k), sinks=self.names,
                               resolve=self.resolve)
            records = [o.conflict for o in outs if o.conflict is not None]
            if len(groups) > 1 and not records:
                raise self.fail(f"P2 snapshot: k{k} differs across endpoints, no conflict")
            st = rec.state
            seen = frozenset().union(*groups.values())
            rec.hist = groups.get(value_of(st.content), frozenset())
            lost: set[int] = set()
            if st.parked is not None:
                rec.sides = {n: groups[value_of(s.content)] for n, s in st.parked.sides.items()}
            else:
                lost = set(seen - rec.hist)
                rec.hist = seen
            for ep in self.endpoints:  # equal rows at snapshot time are one version
                row = ep.row(k)
                if row.content is not None:
                    ep.rows[k] = Row(row.content, row.version, groups[row.content])
            for r in records:
                self._record(k, r, ())
            self.working.decided.setdefault(k, set()).update(lost)
            shown = [None if r is None else value_of(r.content) for r in reads.values()]
            self.trace.append(f"snapshot k{k}: {shown} -> {[o.kind.value for o in outs]}, "
                              f"V={st.vector.as_dict()}")
        self.commit()

    # --- running ------------------------------------------------------------------

    def act(self, a: Action) -> None:
        n, keys = self.cfg.endpoints, self.cfg.keys
        match a:
            case ("user", e, k, v):
                self.user(e % n, k % keys, VALUES[v % len(VALUES)])
            case ("read", e, x, dup):
                self.read(e % n, x, bool(dup))
            case ("apply", x):
                self.apply(x)
            case ("lost", x):
                self.apply(x, record=False)
            case ("commit",):
                self.commit()
            case ("crash",):
                self.crash()
            case ("check",):
                self.check_marks()
            case ("steward", x, y):
                self.steward(x, y)
            case _:
                raise ValueError(f"unknown action {a!r}")

    def drain(self, bound: int = 2000) -> None:
        """Users have stopped: run the service until it has nothing left to do."""
        for _ in range(bound):
            if self.inflight:
                self.apply(0)
            elif self.dirty:
                self.commit()
            elif any(self.candidates(e) for e in range(len(self.names))):
                e = next(e for e in range(len(self.names)) if self.candidates(e))
                if not self.read(e, 0):
                    raise self.fail("drain: a read made no progress")
            elif self.check_marks() or self._sweep():
                pass
            elif not self.steward(0, 0):
                return
        raise self.fail("P3 no quiescence: the drain does not terminate (ping-pong)")

    def check(self) -> None:
        """P1-P3 after a drain (P4 is checked at every write)."""
        self.trace.append("--- check ---")
        for k, rec in sorted(self.working.keys.items()):
            vals = [ep.row(k).content for ep in self.endpoints]
            if len(set(vals)) > 1:
                raise self.fail(f"P1 divergence on k{k}: " + ", ".join(
                    f"{ep.name}={v!r}" for ep, v in zip(self.endpoints, vals, strict=True)))
            st = rec.state
            if st.outbox or st.parked is not None:
                raise self.fail(f"P3 k{k} not at rest: outbox {st.outbox}, parked {st.parked}")
            if not st.is_new and value_of(st.content) != vals[0]:
                raise self.fail(f"P1 the service holds {value_of(st.content)!r} for k{k}, "
                                f"every endpoint {vals[0]!r}")
        for k, eids in sorted(self.edits.items()):
            survived = frozenset().union(*(ep.row(k).hist for ep in self.endpoints))
            recorded = self.persisted.decided.get(k, set())
            lost = [x for x in eids if x not in survived and x not in recorded]
            if lost and not self.cfg.unrecorded_losses:
                raise self.fail(f"P2 silent loss on k{k}: edits {lost} neither survive "
                                f"nor lost a recorded conflict")
        vectors = {k: rec.state.vector for k, rec in self.working.keys.items()}
        writes = self.writes
        self.drain()
        self.crash()
        self.drain()
        # The sources deliver their whole logs again (a checkpoint lost).
        for d in self.working.delivered:
            d.clear()
        self.trace.append("--- every log delivered again ---")
        self.drain()
        if self.writes != writes:
            raise self.fail(f"P3 {self.writes - writes} writes after the drain")
        now = {k: rec.state.vector for k, rec in self.working.keys.items()}
        if now != vectors:
            raise self.fail(f"P3 versions moved after the drain: {vectors} -> {now}")


def run(cfg: WorldConfig, actions: Sequence[Action]) -> World:
    """Play ``actions``, stop the users, drain, and check the properties."""
    w = World(cfg)
    for a in actions:
        w.act(a)
    w.trace.append("--- users stop; drain ---")
    w.drain()
    w.check()
    return w
