"""Everything a run of one pipeline needs open: store, endpoints, bindings, policies."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from conflict.case import ConflictCase, Decision, Park
from conflict.store import ConflictStore
from connectors.base import Binding, Endpoint, SchemaError, TableSchema
from sync.signals import Interrupted
from sync.state.store import StateStore, open_store

log = logging.getLogger("cdcsync")
T = TypeVar("T")

# Types in order of preference when endpoints disagree on a column: a column
# that PostgreSQL calls timestamptz and SQLite calls TEXT is a timestamp.
_WEAK_TYPES = ("any", "text")


def entity_types(schemas: dict[str, TableSchema], bindings: dict[str, Binding]) -> dict[str, str]:
    """The logical type of each entity column, the most specific one any endpoint declares."""
    out: dict[str, str] = {}
    for name, sch in schemas.items():
        rev = bindings[name].entity_names
        for col in sch.columns:
            ent = rev.get(col.name, col.name)
            have = out.get(ent)
            if have is None or (have in _WEAK_TYPES and col.logical not in _WEAK_TYPES):
                out[ent] = col.logical
    return out


@dataclass
class EntityContext:
    name: str
    cfg: Any  # config.EntityConfig
    bindings: dict[str, Binding]
    sources: list[str]
    sinks: list[str]
    types: dict[str, str]
    resolver: Any  # conflict policy with .decide()
    ignored: set[str] = field(default_factory=set)  # new columns left out (schema_changes)
    schemas: dict[str, TableSchema] = field(default_factory=dict)  # by endpoint, at open

    def table_columns_at(self, endpoint: str) -> dict[str, Any]:
        """Every column of the endpoint's table, synced or not, in entity names, with
        its Column."""
        sch = self.schemas.get(endpoint)
        if sch is None:
            return {}
        rev = self.bindings[endpoint].entity_names
        return {rev.get(col.name, col.name): col for col in sch.columns}

    def columns_at(self, endpoint: str) -> dict[str, Any]:
        """The synced entity columns the endpoint's table has, with its Column."""
        b = self.bindings[endpoint]
        return {n: col for n, col in self.table_columns_at(endpoint).items() if b.synced(n)}

    def resolve(self, case: ConflictCase) -> Decision:
        try:
            decision = self.resolver.decide(case)
        except Exception as exc:  # a custom policy's own bug must not stop the pipeline
            log.warning("conflict policy failed on %s: %s", self.name, exc)
            return Park(policy="error", reason=f"the conflict policy failed: {exc}")
        if decision is None:
            return Park(policy="manual", reason="no policy could decide")
        return decision  # type: ignore[no-any-return]


@dataclass
class PipelineContext:
    cfg: Any  # config.PipelineConfig
    store: StateStore
    conflicts: ConflictStore
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    entities: dict[str, EntityContext] = field(default_factory=dict)
    run_id: int | None = None
    #: entity -> target -> keys this run must not write there before its catch-up is
    #: done: a run that died may have written them (sync/apply.py replay_outbox)
    fence: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    #: set (SIGTERM/SIGINT) to end a snapshot or catch-up at its next :meth:`stop_point`
    stop: threading.Event | None = None

    @property
    def pipeline(self) -> str:
        return str(self.cfg.pipeline)

    def stop_point(self) -> None:
        """A durable point of a long piece of work (a snapshot chunk or a batch saved):
        raise :class:`~sync.signals.Interrupted` here if a stop was asked for. The
        next run resumes from here."""
        if self.stop is not None and self.stop.is_set():
            raise Interrupted("stopped as asked, after the last saved batch; "
                              "the next run resumes from there")

    def close(self) -> None:
        for ep in self.endpoints.values():
            try:
                ep.close()
            except Exception:  # closing is best effort
                log.debug("closing endpoint failed", exc_info=True)
        self.store.close()


def bindings_for(cfg: Any, entity_name: str) -> dict[str, Binding]:
    ent = cfg.entities[entity_name]
    out: dict[str, Binding] = {}
    for ep_name, eb in ent.endpoints.items():
        out[ep_name] = Binding(
            entity=entity_name,
            endpoint=ep_name,
            table=eb.table,
            key=tuple(ent.key),
            columns=dict(eb.columns or {}),
            only=frozenset(ent.include) if ent.include else None,
            exclude=frozenset(ent.exclude or ()),
        )
    return out


def check_named_columns(cfg: Any, name: str, schemas: Mapping[str, TableSchema],
                        bindings: Mapping[str, Binding]) -> None:
    """Stop on a column that entity ``name``'s ``include:``, ``exclude:`` or
    ``conflict.columns`` names and that no endpoint's table has (``schemas``: by
    endpoint, those read). A column at some of them only is no error (a one-way target
    gains the source's columns; a column dropped at the source is kept by the targets).

    Until 2026-12-07 only SQLite refused such a name, at its own tables: at PostgreSQL
    and MariaDB a misspelt ``include: [colour]`` synchronised no ``color``, and
    ``verify`` said in sync (a misspelt ``exclude:`` synchronised the column)."""
    if not schemas:
        return
    ent = cfg.entities[name]
    have: set[str] = set()
    for ep, sch in schemas.items():
        rev = bindings[ep].entity_names
        have.update(rev.get(col.name, col.name) for col in sch.columns)
    named = {"include": list(ent.include or ()), "exclude": list(ent.exclude or ()),
             "conflict.columns": list(ent.conflict.columns)}
    unknown = [(where, col) for where, cols in named.items() for col in cols if col not in have]
    if not unknown:
        return
    tables = []
    for ep, sch in schemas.items():
        rev = bindings[ep].entity_names
        cols = ", ".join(f"{rev[c.name]} (its column {c.name})" if c.name in rev else c.name
                         for c in sch.columns)
        tables.append(f"endpoint {ep}: table {sch.table} has {cols}")
    hints = sorted({f"{col} at {ep} is entity column {bindings[ep].entity_names[col]}"
                    for _where, col in unknown for ep in schemas
                    if col in bindings[ep].entity_names})
    what = "; ".join(f"{where} names {col!r}" for where, col in unknown)
    raise SchemaError(
        f"entity {name}: {what}, which no endpoint's table has ({'; '.join(tables)})"
        + (f" ({'; '.join(hints)}: those lists name entity columns)" if hints else "")
        + f": correct the name in {cfg.path} (or leave it out); nothing was changed")


def _as_they_are(bindings: Mapping[str, Binding]) -> dict[str, Binding]:
    """``bindings`` without ``include:``/``exclude:``: what reads a table whole."""
    return {ep: replace(b, only=None, exclude=frozenset()) for ep, b in bindings.items()}


def _read_as_they_are(cfg: Any, ep_name: str, ep: Any, bindings: list[Binding]
                      ) -> dict[str, TableSchema]:
    """The tables of ``bindings`` (each of its own entity) at endpoint ``ep``, by entity,
    their capture unchecked (SQLite's ``table_schema``); a table that cannot be read
    left out."""
    read = getattr(ep, "table_schema", ep.schema)
    out: dict[str, TableSchema] = {}
    for b in bindings:
        try:
            out[b.entity] = reach(cfg, f"reading {b.table} at endpoint {ep_name!r}",
                                  functools.partial(read, b))
        except SchemaError:
            continue
    return out


def check_columns_before_setup(cfg: Any) -> None:
    """:func:`check_named_columns` for every entity that names columns, before a setup
    changes anything: the tables as they are, a table that cannot be read left out
    (a one-way target that setup creates; setup itself says what is wrong with it)."""
    wanted = {n: _as_they_are(bindings_for(cfg, n)) for n, e in cfg.entities.items()
              if e.include or e.exclude or e.conflict.columns}
    schemas: dict[str, dict[str, TableSchema]] = {n: {} for n in wanted}
    for ep_name in cfg.endpoints:
        bound = [b[ep_name] for b in wanted.values() if ep_name in b]
        if not bound:
            continue
        ep = connect(cfg, ep_name)
        try:
            for n, sch in _read_as_they_are(cfg, ep_name, ep, bound).items():
                schemas[n][ep_name] = sch
        finally:
            ep.close()
    for n, bindings in wanted.items():
        check_named_columns(cfg, n, schemas[n], bindings)


def open_state(cfg: Any) -> StateStore:
    """The pipeline's state store, a server that cannot be reached tried again as
    :func:`reach` does for endpoints."""
    return reach(cfg, "opening the state store", functools.partial(open_store, cfg.state.url))


def connect(cfg: Any, name: str) -> Any:
    """Open endpoint ``name`` of ``cfg`` (connectors connect lazily: see :func:`reach`)."""
    from connectors.registry import open_endpoint

    return open_endpoint(name, cfg.endpoints[name], pipeline=cfg.pipeline)


def reach(cfg: Any, what: str, fn: Callable[[], T]) -> T:
    """Run ``fn``, a command's first I/O with an endpoint: a server that cannot be
    reached (a :class:`~connectors.base.RetriableError`) is tried again with backoff,
    as the pipeline's ``connect:`` section says, each retry logged, before the last
    error is raised. A server that refused us (bad credentials, an unknown database:
    :class:`~connectors.base.RefusedError`) is reported at once: no retry helps."""
    from connectors.base import RefusedError, RetriableError
    from sync.retry import with_retries

    tries = int(cfg.connect.tries)
    try:
        return with_retries(what, fn, tries=tries, base_delay=float(cfg.connect.backoff_s),
                            retry_refused=False)
    except RefusedError as exc:  # (still a RefusedError: a daemon's worker waits it out)
        raise RefusedError(f"{exc} (the server refused the connection: check its user,"
                           " password and database; not retried)") from exc
    except RetriableError as exc:
        if tries == 1:
            raise
        raise RetriableError(f"{exc} (gave up after {tries} attempts; "
                        "the pipeline's connect: section sets how many)") from exc


def _check_columns(ctx: PipelineContext) -> None:
    """Stop on a column an edit of the pipeline file took into an entity (sync/columns.py)."""
    from sync.columns import check_columns
    from sync.snapshot import needs_snapshot

    for name, e in ctx.entities.items():
        synced: set[str] = set()
        tables: set[str] = set()
        for source in e.sources:
            synced.update(e.columns_at(source))
            tables.update(e.table_columns_at(source))
        check_columns(ctx.store, ctx.pipeline, name, synced, tables,
                      snapshot_due=needs_snapshot(ctx, e))


@contextmanager
def open_pipeline(cfg: Any, *, with_types: bool = True) -> Iterator[PipelineContext]:
    """Open the state store and every endpoint of ``cfg``; close them all afterwards."""
    from conflict.policies import build_resolver
    from sync.checks import make_importable

    make_importable(cfg)
    store = open_state(cfg)
    ctx = PipelineContext(cfg, store, ConflictStore(store.engine))
    try:
        for name in cfg.endpoints:
            ctx.endpoints[name] = connect(cfg, name)
        for name, ent in cfg.entities.items():
            bindings = bindings_for(cfg, name)
            types: dict[str, str] = {}
            schemas: dict[str, TableSchema] = {}
            if with_types:
                try:
                    schemas = {
                        ep: reach(cfg, f"reading {b.table} at endpoint {ep!r}",
                                  functools.partial(ctx.endpoints[ep].schema, b))
                        for ep, b in bindings.items()
                    }
                except SchemaError:  # a SQLite table refuses a name in include: it lacks
                    whole = _as_they_are(bindings)
                    check_named_columns(cfg, name, {
                        ep: sch for ep, b in whole.items() for sch in _read_as_they_are(
                            cfg, ep, ctx.endpoints[ep], [b]).values()}, whole)
                    raise  # (not for a name no endpoint has: another reason)
                types = entity_types(schemas, bindings)
            stamp = ent.conflict.timestamp_column
            if with_types and stamp is not None and stamp not in types:
                raise SchemaError(
                    f"entity {name}: conflict.timestamp_column {stamp!r} is not one of its"
                    f" columns ({', '.join(sorted(types))}) in {cfg.path}")
            if with_types:
                check_named_columns(cfg, name, schemas, bindings)
            ctx.entities[name] = EntityContext(
                name=name, cfg=ent, bindings=bindings, sources=list(ent.sources()),
                sinks=list(ent.sinks()), types=types, resolver=build_resolver(ent.conflict),
                schemas=schemas,
            )
        if with_types:  # (a run's worker processes: the run checked)
            from sync.rekey import check_keys
            from sync.renamed import check_renamed, check_renamed_entities

            check_keys(store, cfg.pipeline, {n: e.key for n, e in cfg.entities.items()})
            check_renamed(store, cfg.pipeline,
                          {n: list(e.endpoints) for n, e in cfg.entities.items()})
            check_renamed_entities(store, cfg.pipeline, {
                n: (list(e.endpoints), list(e.key)) for n, e in cfg.entities.items()})
            _check_columns(ctx)
        yield ctx
    finally:
        ctx.close()
