"""``cdcsync setup`` / ``teardown`` / ``resync``: preparing endpoints and starting over.

Setup creates what capture needs at every endpoint (triggers, publications,
slots, origins) and, for a one-way entity whose target table does not exist,
creates it from the source's schema (the type mapping is in docs/types.md).

Resync re-snapshots one entity: its snapshot markers are removed, so the next
run (or daemon start) reads every endpoint again and reconciles against what
the state store knows: rows that match are left alone, rows that differ are
edits (or conflicts). With ``reset_stream`` the entity's source logs are read
from their current end afterwards: the answer to a purged binlog or a lost
slot, where the old position cannot be read any more. Every entity reading
the same log is resynced with it, since it lost the same changes. A
PostgreSQL slot is moved to the log's current end there and then (it would
read on from where it was confirmed: past changes it cannot decode, such as
those logged while its publication was dropped).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Set
from typing import Any

from sqlalchemy import Connection

from connectors.base import KeyGenerator
from sync.capture import STREAM
from sync.context import bindings_for, check_columns_before_setup, connect, open_state, reach
from sync.keygen import clashing_generators, key_generators
from sync.runlock import RunLock, RunLocked
from sync.state.schema import checkpoints
from sync.state.store import StateStore


class PipelineBusy(Exception):
    """A batch run, a daemon or a worker of the pipeline is alive: a teardown would
    take its slot, triggers or origins from under it (and stop halfway, with some
    endpoints torn down and others not)."""


def _create_tables(cfg: Any) -> list[str]:
    lines: list[str] = []
    for name, ent in cfg.entities.items():
        if ent.direction != "one-way":
            continue
        bindings = bindings_for(cfg, name)
        src_ep = connect(cfg, ent.source)
        try:
            # The table as it is: a SQLite source's schema() also stops on a capture
            # that drifted (key or columns changed), which this very setup repairs.
            read = getattr(src_ep, "table_schema", src_ep.schema)
            source_schema = reach(cfg, f"reading {ent.source}'s schema",
                                  functools.partial(read, bindings[ent.source]))
        finally:
            src_ep.close()
        for target in ent.sinks():
            ep = connect(cfg, target)
            try:
                create = getattr(ep, "create_table", None)
                if create is None:
                    continue  # such an endpoint needs its table made by hand (setup says so)
                done = create(bindings[target], source_schema, bindings[ent.source],
                              source_kind=cfg.endpoints[ent.source].kind)
                lines.extend(f"{target}: {line}" for line in done)
            finally:
                ep.close()
    return lines


def _reset_allowed(store: StateStore, pipeline: str, endpoint: str) -> None:
    """Refuse to make anew the lost log of ``endpoint`` while the pipeline is worked on:
    the stream reset would go on under a daemon that does not snapshot before it is
    restarted, and once the log is made the next setup cannot tell it was lost.

    Raises:
        PipelineBusy: a run, daemon or worker of the pipeline is alive.
    """
    who = busy_with(store, pipeline)
    if who is not None:
        raise PipelineBusy(
            f"pipeline {pipeline} is being worked on by {who}, and the log it read at"
            f" {endpoint} is gone: stop it and run setup again, which makes the log anew"
            " and snapshots again the entities read there (nothing was changed there)")


def _reset_lost(cfg: Any, store: StateStore,
                lost: dict[str, tuple[str, bool]]) -> tuple[list[str], set[str]]:
    """Reset the stream of each endpoint whose log the pipeline read and is gone
    (``lost``: endpoint -> (why, whether the server's log went back before the
    checkpoint)), as ``cdcsync resync ... --reset-stream`` does: each entity read there
    is snapshotted again, and the positions known there forgotten. Where the log went
    back, the server was put back (a backup, a standby that lagged) and holds older
    copies: as with ``--restored``, the snapshot writes the known copies over them
    where it receives writes (two ways), instead of taking them for its edits and
    taking back everywhere the edits made since the copy.

    The changes since the checkpoint were kept for no one. A slot made anew past the
    checkpoint stopped the run, which named the resync; one made below it was read on
    from the checkpoint, and every write since the restore up to the old position was
    dropped as read already, the run saying ok (until 2026-12-07;
    tests/test_pg_restored.py). Returns what was done and the entities snapshotted
    again."""
    lines: list[str] = []
    again: set[str] = set()
    for ep, (why, back) in sorted(lost.items()):
        names = sorted(n for n, e in cfg.entities.items() if ep in e.sources())
        behind = {ep} if back else set()
        with store.transaction() as conn:
            _reset_streams(conn, cfg, names, {ep}, behind)
            store.audit(conn, cfg.pipeline, "cli", "resync",
                        {"entities": names, "reset_stream": [ep], "lost": why,
                         "restored": sorted(behind)})
        lines.append(f"{ep}: its log was read up to the pipeline's checkpoint, and {why}"
                     + (": the server's log now ends before that checkpoint, so it was put"
                        " back (restored from a backup, or failed over to a standby that"
                        " lagged)" if back else " (dropped? the server restored from a"
                        " backup, or failed over?)")
                     + ": the changes since were kept for no one, so its stream starts anew")
        two_way = [n for n in names if n not in again and ep in cfg.entities[n].sinks()]
        lines += [f"{name}: snapshot again at the next run (reconciled with what is known)"
                  for name in names if name not in again]
        if two_way and back:
            lines.append(
                f"{ep}: where it holds another copy of a known key than the one known, the"
                " snapshot writes the known one over it, as `--restored` does (rows it holds"
                " that nothing knows are its own); `cdcsync resync PIPELINE ENTITY"
                f" --reset-stream` before the next run takes its rows for its edits instead,"
                " undoing everywhere what the restore undid")
        elif two_way:
            lines.append(
                f"{ep}: its rows that differ from what is known are taken as its edits;"
                f" if it was put back from an older copy, `cdcsync resync PIPELINE ENTITY"
                f" --restored {ep}` before the next run writes the known copies over them"
                " instead")
        again.update(names)
    return lines, again


def _resync_unread(cfg: Any, store: StateStore, gaps: dict[str, set[str]],
                   skip: set[str]) -> list[str]:
    """Snapshot again each entity that ran before and whose table at one of its sources
    the pipeline did not read until this setup (``gaps``: endpoint -> those tables).

    Writes to it meanwhile were not read: an entity taken out of the pipeline file and
    put back (its table left the PostgreSQL publication; the stream checkpoint of a
    SQLite file passed its log rows), a SQLite table made anew (its triggers gone with
    it). Until 2026-12-07 the stream read on as if nothing was missing, and the other
    endpoints kept the rows as they were, or setup only said so.
    """
    from sync.renamed import known_entities

    known = known_entities(store, cfg.pipeline)
    lines = []
    for name, ent in cfg.entities.items():
        if name not in known or name in skip:
            continue
        bindings = bindings_for(cfg, name)
        missed = sorted(ep for ep in ent.sources() if bindings[ep].table in gaps.get(ep, ()))
        if not missed:
            continue
        with store.transaction() as conn:
            _snapshot_again(conn, cfg.pipeline, name, cfg.entities[name].endpoints)
            store.audit(conn, cfg.pipeline, "cli", "resync",
                        {"entities": [name], "unread": missed})
        lines.append(
            f"entity {name}: its table at {' and '.join(missed)} was not read until now"
            " (taken out of the pipeline file and put back? made anew?), so writes to it"
            " meanwhile were not read: it is snapshotted again at the next run")
    return lines


def setup_pipeline(cfg: Any, verb: str = "setup") -> list[str]:
    """Run ``setup`` (or ``teardown``) at every endpoint; return what was done."""
    if verb != "setup":  # (a teardown --force goes on without a state store)
        return _each_endpoint(cfg, verb, None)
    check_columns_before_setup(cfg)  # (a misspelt include: name, before anything is made)
    store = open_state(cfg)
    try:
        return _each_endpoint(cfg, verb, store)
    finally:
        store.close()


def _each_endpoint(cfg: Any, verb: str, store: StateStore | None) -> list[str]:
    """:func:`setup_pipeline`, with the state store open for a setup."""
    lines = _create_tables(cfg) if store is not None else []
    gaps: dict[str, set[str]] = {}  # endpoint -> tables the pipeline did not read there till now
    lost: dict[str, tuple[str, bool]] = {}  # endpoint -> why the log read there is gone,
    #                                         and whether the server went back (restored)
    makers: dict[str, dict[str, KeyGenerator]] = {}  # endpoint -> entity -> how keys are made
    for name in cfg.endpoints:
        bound = [(e, b) for e in cfg.entities
                 for ep, b in bindings_for(cfg, e).items() if ep == name]
        bindings = [b for _e, b in bound]
        # what the pipeline reads here (the entities this endpoint is a source of) and
        # writes (those it is a sink of)
        extra = {} if store is None else {
            "read": [b for e, b in bound if name in cfg.entities[e].sources()],
            "written": [b for e, b in bound if name in cfg.entities[e].sinks()]}
        ep = connect(cfg, name)
        try:
            probe = getattr(ep, "unread", None)
            if store is not None and probe is not None and extra["read"]:
                gaps[name] = set(reach(cfg, f"reading the capture at endpoint {name!r}",
                                       functools.partial(probe, extra["read"], cfg.pipeline)))
            gone = getattr(ep, "log_lost", None)
            if store is not None and gone is not None and extra["read"]:
                streamed = store.checkpoint(cfg.pipeline, name, STREAM)
                why = reach(cfg, f"reading the capture at endpoint {name!r}",
                            functools.partial(gone, cfg.pipeline, streamed))
                if why is not None and streamed is not None:  # (else nothing was missed)
                    _reset_allowed(store, cfg.pipeline, name)  # before the log is made anew
                    lost[name] = why
            done: list[str] = reach(cfg, f"{verb} at endpoint {name!r}", functools.partial(
                getattr(ep, verb), bindings, cfg.pipeline, **extra))
            if store is not None:
                makers[name] = key_generators(cfg, name, ep)
        finally:
            ep.close()
        lines.extend(f"{name}: {line}" for line in done)
    if store is not None:
        reset, again = _reset_lost(cfg, store, lost)
        lines.extend(reset)
        lines.extend(_resync_unread(cfg, store, gaps, skip=again))
        lines.extend(clashing_generators(cfg, makers))
    return lines


def busy_with(store: StateStore, pipeline: str) -> str | None:
    """Who works on ``pipeline`` now (a live lease in the state store), if anyone:
    ``HOLDER (what it does)`` of the first, as ``cdcsync status`` lists them."""
    from sync.status import processes

    found = processes(store, pipeline)
    if not found:
        return None
    first = found[0]
    more = f" and {len(found) - 1} more" if len(found) > 1 else ""
    gone = (f"; that process is gone, and its lease ends within "
            f"{max(0, round(first['until'] - time.time()))} s" if first["alive"] is False
            else "")
    return f"{first['holder']} ({', '.join(first['doing'])}{gone}){more}"


def teardown_pipeline(cfg: Any, *, force: bool = False) -> list[str]:
    """``setup_pipeline(cfg, "teardown")``, refused while the pipeline is worked on:
    the check runs before any endpoint is touched, and the run lock is held until
    the last one is done, so that no batch run starts in between. ``force`` skips
    both (a state store that is gone, leases of processes known dead)."""
    if force:
        return setup_pipeline(cfg, "teardown")
    store = open_state(cfg)
    try:
        who = busy_with(store, cfg.pipeline)
        if who is None:
            try:
                with RunLock(store, cfg.pipeline):
                    return setup_pipeline(cfg, "teardown")
            except RunLocked:
                who = busy_with(store, cfg.pipeline) or "another process"
        raise PipelineBusy(
            f"pipeline {cfg.pipeline} is being worked on by {who} (`cdcsync status`"
            " lists them): stop it before the teardown, which removes the slots, triggers"
            " and origins it uses (nothing was removed; --force skips this check)")
    finally:
        store.close()


def _snapshot_again(conn: Connection, pipeline: str, entity: str,
                    endpoints: Iterable[str]) -> None:
    """Drop the entity's checkpoints at ``endpoints``: its next run snapshots it there
    (and reconciles with the key states it keeps)."""
    conn.execute(checkpoints.delete().where(
        checkpoints.c.pipeline == pipeline, checkpoints.c.entity == entity,
        checkpoints.c.endpoint.in_(list(endpoints))))


def _reset_streams(conn: Connection, cfg: Any, entities: Iterable[str], sources: set[str],
                   behind: Set[str] = frozenset()) -> None:
    """Snapshot ``entities`` again, forgetting the positions known in the logs of
    ``sources`` (``behind``: restored from an older copy), and read those logs from
    their current end: what ``resync`` and setup's reset of a lost log share."""
    for name in entities:
        _snapshot_again(conn, cfg.pipeline, name, cfg.entities[name].endpoints)
        if sources:
            _forget_positions(conn, cfg.pipeline, name, sources, behind)
    if sources:
        conn.execute(checkpoints.delete().where(
            checkpoints.c.pipeline == cfg.pipeline, checkpoints.c.endpoint.in_(sorted(sources)),
            checkpoints.c.entity == STREAM))


def _forget_positions(conn: Connection, pipeline: str, entity: str,
                      endpoints: set[str], behind: Set[str] = frozenset()) -> None:
    """Forget where each key was last read and written in the logs of ``endpoints``,
    whose stream is reset: a binlog reset (``RESET MASTER``) or a server restored or
    replaced numbers its positions anew, lower than those, and every change read
    from it was taken for one read already and dropped (until 2026-12-07, after the
    resync that was the way out). The new snapshot reads every key; the stream starts
    after it, so no change before it is read again.

    ``behind``: endpoints restored from an older copy, whose rows of known keys the
    snapshot takes for copies that lag, not for edits (conflict.protocol.BEHIND)."""
    from conflict.canonical import key_text
    from conflict.protocol import mark_behind
    from sync.rekey import pages

    for page in pages(conn, pipeline, entity):
        changed: dict[str, Any] = {}
        for st in page:
            held = [e for ep, e in st.endpoints.items() if ep in endpoints and (
                e.last_pos is not None or e.wrote_at is not None)]
            for e in held:
                e.last_pos = e.wrote_at = e.known_before = None
            # (marked restored; or marked before and reset now without it: its rows are
            # its edits after all)
            lag = [ep for ep, e in st.endpoints.items()
                   if ep in endpoints | behind and mark_behind(e, ep in behind)]
            if (held or lag) and st.key is not None:
                changed[key_text(st.key)] = st
        if changed:
            StateStore.save(conn, pipeline, entity, changed)


def _key_changes(cfg: Any, store: StateStore, entities: list[str],
                 reset_stream: bool) -> dict[str, frozenset[str]]:
    """The ``entities`` whose key changed in the pipeline file, each with the key its
    states are stored under; raises, changing nothing, where their states cannot move
    to the new key (sync/rekey.py): without ``reset_stream``, while anybody is at work,
    or while anything refers to the old keys."""
    from connectors.base import SchemaError
    from sync.rekey import refuse_pending, stored_key

    changed = {n: was for n in entities
               if (was := stored_key(store, cfg.pipeline, n)) is not None
               and was != frozenset(cfg.entities[n].key)}
    if not changed:
        return {}
    if not reset_stream:
        raise SchemaError(
            f"the key of {', '.join(changed)} changed in the pipeline file: resync with"
            " --reset-stream (what was logged under the old key is read from the rows as"
            " they are; nothing was changed)")
    who = busy_with(store, cfg.pipeline)
    if who is not None:
        raise PipelineBusy(f"pipeline {cfg.pipeline} is being worked on by {who}: stop it"
                           " before its states move to the new key (nothing was changed)")
    with store.engine.connect() as conn:
        for n, was in changed.items():
            refuse_pending(conn, cfg.pipeline, n, was, cfg.entities[n].key)
    return changed


def resync(cfg: Any, entities: list[str], *, reset_stream: bool = False,
           forget: list[str] | None = None, restored: list[str] | None = None) -> list[str]:
    """Mark ``entities`` for a new snapshot; return what was done, for the user.

    ``forget``: endpoints the entities no longer name, whose checkpoints are dropped
    (sync/renamed.py). ``restored``: endpoints restored from an older copy (a backup):
    their streams are reset, and the snapshot writes what is known of each key over
    the copy they hold, instead of taking it for their edits."""
    wanted = set(entities)
    behind = set(restored or ())
    # (a restored endpoint's log is reset where it is read; a target only takes the
    # known copies at the snapshot as it is)
    sources = {ep for ep in behind if any(ep in e.sources() for e in cfg.entities.values())}
    if reset_stream:
        for name in entities:
            sources.update(cfg.entities[name].sources())
    if sources:
        for name, ent in cfg.entities.items():  # every entity reading those logs lost changes
            if set(ent.sources()) & sources or set(ent.endpoints) & behind:
                wanted.add(name)
    store = open_state(cfg)
    lines: list[str] = []
    try:
        rekeyed = _key_changes(cfg, store, sorted(wanted), reset_stream or bool(sources))
        if forget:
            from sync.renamed import forget as forget_endpoint

            lines += [forget_endpoint(store, cfg.pipeline, name, ep, cfg.entities[name].endpoints)
                      for name in entities for ep in forget]
        # One transaction: a resync stopped part way (Ctrl-C, a kill) changed nothing.
        # Checkpoints gone with the states left under the old key, every run would
        # refuse; states moved with the old checkpoints kept, a SQLite log's entries of
        # old keys would be read as keys of the new columns; positions not forgotten,
        # a reset log's changes would be dropped as read already.
        with store.transaction() as conn:
            if rekeyed:
                from sync.rekey import rekey

                lines += [rekey(conn, cfg.pipeline, n, cfg.entities[n].key, was)
                          for n, was in rekeyed.items()]
            _reset_streams(conn, cfg, sorted(wanted), sources, behind)
            lines += [f"{name}: snapshot again at the next run"
                      f" ({', '.join(sorted(cfg.entities[name].endpoints))})"
                      for name in sorted(wanted)]
            for ep in sorted(behind):
                lines.append(f"{ep}: restored from an older copy: where it is written to,"
                             " the snapshot writes the copy known of each key over the one"
                             " it holds (in a two-way entity, rows it holds that nothing"
                             " knows are its own edits, and go to the others; a one-way"
                             " source's targets follow it)")
            lines += [f"{ep}: its log will be read from its current end"
                      for ep in sorted(sources)]
            store.audit(conn, cfg.pipeline, "cli", "resync",
                        {"entities": sorted(wanted), "reset_stream": sorted(sources),
                         "restored": sorted(behind)})
    finally:
        store.close()
    for name in sorted(sources):  # a PostgreSQL slot reads on from where it was confirmed
        ep = connect(cfg, name)
        try:
            move = getattr(ep, "reset_stream", None)
            if move is not None:
                done: list[str] = reach(cfg, f"moving {name}'s log to its end", move)
                lines.extend(f"{name}: {line}" for line in done)
        finally:
            ep.close()
    return lines
