"""The connector contract: a small source and sink interface, Kafka Connect style.

A **source** reads a consistent snapshot of an entity and then the changes after
an opaque checkpoint, in commit order. A **sink** applies a batch idempotently
and *conditionally*: a row is changed only if it still has the row version the
service last knew (DESIGN.md rule 4), and it reports per key what it applied
and what it skipped. Connectors never touch the state store: the engine keeps
checkpoints and row versions and hands them back.

Errors are classified by type: :class:`RetriableError` for transient faults
(connection lost, deadlock, server restarting), :class:`RowRejected` for a sink's
batch refused for a row's data, anything else is permanent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from conflict.canonical import key_text
from sync.change import ChangeBatch, Checkpoint, SnapshotChunk, SnapshotRow


class ConnectorError(Exception):
    """A permanent connector fault: retrying will not help."""


class RetriableError(ConnectorError):
    """A transient fault (lost connection, deadlock, server restarting)."""


class RefusedError(RetriableError):
    """The server answered and refused the connection: bad credentials, an unknown
    database, no access from this host. An operator must act, so a command's first
    connection reports it at once instead of retrying (sync/context.py ``reach``);
    a running daemon takes it for the endpoint being down (its breaker holds the
    work until the operator has fixed it), never for a fault of the rows."""


class ContentionError(RetriableError):
    """The endpoint answered but the statement lost to other transactions (a deadlock,
    a lock wait timeout, a serialization failure, a row inserted meanwhile): trying
    again helps, and the endpoint is up (a circuit breaker must not count it)."""


class RowRejected(ConnectorError):
    """The endpoint refused a batch for the data of a row in it: a constraint (CHECK,
    NOT NULL, a unique index other than the key, a foreign key) or a value the column
    cannot hold. The same batch fails every time; without that row it may pass. The
    engine isolates such rows and parks them in the dead-letter queue (sync/apply.py),
    so that one bad row does not stop a pipeline."""


class ReferenceRejected(RowRejected):
    """Refused for a foreign key: the row it references is not there (yet), or rows
    still reference the one being deleted. Often a matter of order (a parent applied
    after its child, by another entity or worker), so a batch run tries such rows
    again at its end before it dead-letters them."""


class UnreadableValue(ConnectorError):
    """A source row holds a value its column's type cannot read (SQLite keeps any value
    in any column: ``'n/a'`` in an INTEGER). The reader cannot go past it without losing
    the change; a later change of the row (the user's fix) supersedes it, and the reader
    then goes on by itself: a batch run fails until then, a daemon's reader waits."""


class SchemaError(ConnectorError):
    """The endpoint's schema does not fit the pipeline (missing table/column...)."""


def nullable_key(endpoint: str, table: str, entity: str, alter: Mapping[str, str]) -> str:
    """Why a source table cannot key ``entity`` by columns that allow NULL: a unique
    index lets several rows hold NULL there, and the service would take them for one
    row (the target got one of them; the run said every row arrived). ``alter``: each
    such column and the statement that makes it NOT NULL."""
    columns = list(alter)
    cols = ", ".join(columns)
    fixes = "; ".join(alter.values())
    many = len(columns) > 1
    return (f"endpoint {endpoint}: table {table}: key column{'s' if many else ''} {cols} of"
            f" entity {entity} allow{'' if many else 's'} NULL, and rows holding NULL there"
            f" cannot be told apart: declare {'them' if many else 'it'} NOT NULL ({fixes}) or"
            " key the entity by other columns")


@dataclass(frozen=True, slots=True)
class KeyGenerator:
    """How an endpoint makes a key column's values itself for rows inserted without
    one (a sequence, ``AUTO_INCREMENT``, SQLite's rowid): ``increment`` apart,
    ``start`` being one of them (a sequence's next value, ``auto_increment_offset``).
    Two endpoints of a two-way entity that make keys on the same steps give two
    records one key (sync/keygen.py)."""

    what: str  # for the user: "sequence public.t_id_seq, every 2 from 5", ...
    increment: int
    start: int
    #: how to make it step apart from the others, for the user ("" if it cannot)
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # endpoint column name
    logical: str  # conflict.canonical.LogicalType
    native: str  # the engine's own type text, e.g. "numeric(12,2)"
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class TableSchema:
    table: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True, slots=True)
class Binding:
    """How one entity maps onto one endpoint's table.

    ``columns`` maps entity column names to endpoint column names; a column not
    in the map has the same name on both sides. ``only`` (when not ``None``) is
    the set of entity columns synchronised; every other column is left alone.
    """

    entity: str
    endpoint: str
    table: str
    key: tuple[str, ...]  # entity column names
    columns: Mapping[str, str] = field(default_factory=dict)
    only: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()

    def endpoint_column(self, entity_column: str) -> str:
        return self.columns.get(entity_column, entity_column)

    @property
    def endpoint_key(self) -> tuple[str, ...]:
        return tuple(self.endpoint_column(c) for c in self.key)

    @property
    def entity_names(self) -> dict[str, str]:
        """Endpoint column name -> entity column name, for the renamed columns (every
        other column has the same name on both sides: ``.get(c, c)``)."""
        return {v: k for k, v in self.columns.items()}

    def synced(self, entity_column: str) -> bool:
        if entity_column in self.key:
            return True
        if entity_column in self.exclude:
            return False
        return self.only is None or entity_column in self.only

    def to_entity(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Endpoint column names -> entity column names, unsynced columns dropped."""
        rev = self.entity_names
        out: dict[str, Any] = {}
        for col, value in row.items():
            name = rev.get(col, col)
            if self.synced(name):
                out[name] = value
        return out

    def to_endpoint(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {self.endpoint_column(c): v for c, v in row.items()}

    def key_of(self, entity_row: Mapping[str, Any]) -> dict[str, Any]:
        return {c: entity_row[c] for c in self.key}


@dataclass(frozen=True, slots=True)
class ApplyOp:
    """One conditional write: make the row at ``key`` equal ``row`` (``None``: delete it).

    ``expected`` is the row version the service last knew at this endpoint;
    ``None`` means the service knows of no version there (the row must not
    exist, or exist untouched since the snapshot where the engine's row version
    is kept outside the row). ``token`` identifies the version being written so
    that a replay after a crash between the write and the state commit is
    recognised as already applied rather than as a user edit.
    """

    key: Mapping[str, Any]
    row: Mapping[str, Any] | None
    expected: Any
    token: str

    @property
    def key_text(self) -> str:
        return key_text(self.key)


class ApplyStatus(enum.StrEnum):
    APPLIED = "applied"  # written now
    ALREADY = "already"  # this very token was written before (a replay)
    SKIPPED = "skipped"  # the row moved since the service last knew it: a user edit is on its way
    #: the row moved, but only by another write of the service's own, unchanged
    #: since (a write whose result was lost with a worker): no user edit is on
    #: its way, so the apply is due again against the row version reported
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class ApplyResult:
    key_text: str
    status: ApplyStatus
    row_version: Any = None  # the row version now (after our write, or the one that blocked it)
    identity: str | None = None  # for engines that cannot tag writes: how the echo will look
    # (for STALE: how the echo of the write the row holds will look, where the sink knows it)
    #: for a write that found no row (an insert where the row was known absent): where it
    #: stands in the endpoint's log, in the form of its changes' positions, where the
    #: sink can tell. A user may have inserted and deleted the row since it was known
    #: absent; those edits, read later, are then known to come before this write.
    position: tuple[int, ...] | None = None

    def placed(self, position: tuple[int, ...]) -> ApplyResult:
        """This result, standing at ``position`` in the endpoint's log. (Built directly:
        ``dataclasses.replace`` costs twice as much, and sinks call this per insert.)"""
        return ApplyResult(self.key_text, self.status, self.row_version, self.identity,
                           position)


@runtime_checkable
class Source(Protocol):
    """Reads snapshots and change streams of an endpoint.

    A source whose row versions are :func:`conflict.canonical.row_hash` of the rows
    it gives (entity names, as read: MariaDB, which has no row version of its own)
    says so with a class attribute ``hashed_versions = True``: the engine then takes
    a row's version for its content's hash instead of making it again, wherever its
    typing kept every value as read (sync/capture.py ``edit_of``).
    """

    name: str

    def schema(self, binding: Binding) -> TableSchema: ...

    def position(self) -> Checkpoint:
        """The current end of the endpoint's log (where a snapshot taken now resumes)."""
        ...

    def snapshot(
        self, binding: Binding, after_key: Mapping[str, Any] | None, limit: int
    ) -> SnapshotChunk: ...

    def changes(
        self, bindings: Sequence[Binding], after: Checkpoint | None, limit: int
    ) -> ChangeBatch:
        """Up to about ``limit`` changes after ``after``, in commit order, never
        splitting what the checkpoint cannot resume inside of."""
        ...

    def confirm(self, checkpoint: Checkpoint) -> None:
        """Everything up to ``checkpoint`` is durably applied: release the log."""
        ...

    def close(self) -> None: ...


class RangeSnapshots(Protocol):
    """A source that reads its snapshot by key ranges, in the snapshot it shares with
    other sessions (PostgreSQL's exported snapshots) or, in another session, in one of
    that session's own: a batch run's worker processes then read a large snapshot's
    chunks themselves, each a key range (sync/snapshot_direct.py,
    sync/snapshot_merged.py)."""

    def shared_snapshot(self) -> str | None:
        """The name other sessions read the snapshot's chunks in (None: their own, later
        snapshot: current data)."""
        ...

    def snapshot_bounds(self, binding: Binding, after_key: Mapping[str, Any] | None,
                        limit: int, parts: int) -> tuple[list[dict[str, Any]], bool]:
        """The last keys of ``parts`` about equal ranges of the next ``limit`` rows
        after ``after_key`` (fewer where fewer rows are left), and whether those are
        the table's last rows."""
        ...

    def snapshot_range(self, binding: Binding, after_key: Mapping[str, Any] | None,
                       until: Mapping[str, Any], snapshot: str | None) -> list[SnapshotRow]:
        """The rows after ``after_key`` up to ``until`` included, in the snapshot named
        ``snapshot``."""
        ...

    def rows_up_to(self, binding: Binding, limit: int) -> int:
        """How many rows the table holds, counted up to ``limit`` (whether a snapshot is
        large enough for worker processes: sync/snapshot_direct.py ``large_table``)."""
        ...


class RangesOfSource:
    """An endpoint's :class:`RangeSnapshots` methods, handed to its ``source``."""

    source: RangeSnapshots

    def shared_snapshot(self) -> str | None:
        return self.source.shared_snapshot()

    def snapshot_bounds(self, binding: Binding, after_key: Mapping[str, Any] | None,
                        limit: int, parts: int) -> tuple[list[dict[str, Any]], bool]:
        return self.source.snapshot_bounds(binding, after_key, limit, parts)

    def snapshot_range(self, binding: Binding, after_key: Mapping[str, Any] | None,
                       until: Mapping[str, Any], snapshot: str | None) -> list[SnapshotRow]:
        return self.source.snapshot_range(binding, after_key, until, snapshot)

    def rows_up_to(self, binding: Binding, limit: int) -> int:
        return self.source.rows_up_to(binding, limit)


@runtime_checkable
class Sink(Protocol):
    """Applies batches conditionally and idempotently; reads rows by key.

    A sink whose endpoint tells the service's own writes apart in its log by
    identity (a replication origin, a flag, a session marker), so that they
    never come back as changes, says so with a class attribute
    ``own_writes_tagged = True``: batch runs then apply before they save
    (sync/capture.py sync_batch). One whose writes come back, to be matched
    by :attr:`ApplyResult.identity`, leaves it out.

    A sink that takes transactions from several sessions at once (a database
    server, unlike a SQLite file) says ``parallel_apply = True``: a batch run
    on a backlog then has worker processes apply the keys of a batch side by
    side, each key always in the same one (sync/parallel.py).
    """

    name: str

    def apply(self, binding: Binding, ops: Sequence[ApplyOp]) -> list[ApplyResult]:
        """Apply ``ops`` in ONE transaction; results in the order of ``ops``."""
        ...

    def read(
        self, binding: Binding, keys: Iterable[Mapping[str, Any]]
    ) -> dict[str, tuple[dict[str, Any], Any]]:
        """Current ``(row, row_version)`` by :func:`key_text`, absent keys left out."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Endpoint(Source, Sink, Protocol):
    """Most endpoints are both; the setup verbs belong to the endpoint."""

    def setup(self, bindings: Sequence[Binding], pipeline: str, *,
              read: Sequence[Binding] | None = None,
              written: Sequence[Binding] | None = None) -> list[str]:
        """Create capture objects (triggers, publication, slot...); return what was done.

        ``read``: those of ``bindings`` whose changes the pipeline reads here (``None``:
        all). The others are only written to (one-way from another endpoint), so what
        only a reader needs is made for ``read`` alone: a PostgreSQL publication lists
        their tables only (the sink's writes elsewhere are not decoded and sent for
        nothing, nor their tables set to ``REPLICA IDENTITY FULL``), and with none read
        there is no slot, which would hold the cluster's WAL unread. ``written``: those
        the pipeline writes (``None``: all); where every pipeline's writes are tagged
        alike, a table another pipeline reads or writes so that one of them would miss
        changes is refused (:mod:`connectors.claims`)."""
        ...

    def teardown(self, bindings: Sequence[Binding], pipeline: str) -> list[str]: ...
