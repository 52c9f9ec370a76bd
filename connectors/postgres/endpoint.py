"""PostgresEndpoint: the source, the sink and the setup verbs of one PostgreSQL database.

Settings (duck-typed; built by ``config/``): ``dsn`` and/or ``host``,
``port``, ``user``, ``password``, ``dbname``, ``connect_timeout``; ``slot``
and ``publication`` (default ``cdcsync_<pipeline>_<endpoint>``, sanitised);
``schema`` for unqualified table names (default ``public``); ``streaming``
(default false) to read changes over the replication protocol, as the daemon
should (see stream.py; :meth:`PostgresEndpoint.use_streaming` does the same).
The password never appears in a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg import sql

from connectors.base import (
    ApplyOp,
    ApplyResult,
    Binding,
    Column,
    KeyGenerator,
    RangesOfSource,
    SchemaError,
    TableSchema,
    nullable_key,
)
from connectors.postgres import ddl
from connectors.postgres import setup as capture
from connectors.postgres.catalog import published, table_for
from connectors.postgres.connect import classified, conninfo, schema_of
from connectors.postgres.names import Names
from connectors.postgres.pgoutput import parse_lsn
from connectors.postgres.sink import PostgresSink
from connectors.postgres.source import PostgresSource
from connectors.postgres.stream import PostgresStream
from sync.change import ChangeBatch, Checkpoint, SnapshotChunk


class PostgresEndpoint(RangesOfSource):
    kind = "postgres"
    source: PostgresSource
    own_writes_tagged = True  # by the replication origin (connectors.base.Sink)
    parallel_apply = True  # a server: sessions side by side (connectors.base.Sink)

    def __init__(self, name: str, settings: Any, *, pipeline: str = "") -> None:
        self.name = name
        self.settings = settings
        self.pipeline = pipeline
        self.info = conninfo(settings)
        self.names = Names.of(pipeline, name, settings)
        self.default_schema = schema_of(settings)
        self.source = PostgresSource(name, self.info, self.names, self.default_schema)
        self.sink = PostgresSink(name, self.info, self.names, self.default_schema)
        self.stream: PostgresStream | None = None
        if getattr(settings, "streaming", False):
            self.use_streaming()

    def use_streaming(self, on: bool = True, *, wait: float = 0.2) -> None:
        """Read changes over the replication protocol (the daemon) instead of the SQL
        interface (batch runs); ``wait``: how long ``changes`` waits for a first change."""
        if self.stream is not None:
            self.stream.close()
        self.stream = PostgresStream(self.source, wait=wait) if on else None

    # --- source -----------------------------------------------------------------------

    def schema(self, binding: Binding) -> TableSchema:
        return self.source.schema(binding)

    def key_generator(self, binding: Binding) -> KeyGenerator | None:
        return self.source.key_generator(binding)

    def position(self) -> Checkpoint:
        return self.source.position()

    def held_up_to(self, checkpoint: Checkpoint) -> tuple[int, ...]:
        return self.source.held_up_to(checkpoint)

    def snapshot(
        self, binding: Binding, after_key: Mapping[str, Any] | None, limit: int
    ) -> SnapshotChunk:
        return self.source.snapshot(binding, after_key, limit)

    def prior_values(self, binding: Binding, columns: Sequence[str]) -> dict[str, str | None]:
        """What rows older than the added ``columns`` hold in them (source.py)."""
        return self.source.prior_values(binding, columns)

    def commit_times(self, versions: Sequence[int]) -> dict[int, float]:
        """The commit times of the transactions that wrote rows read at these versions,
        where the server recorded them (sync/snapshot.py ``with_commit_times``)."""
        return self.source.commit_times(versions)

    def changes(
        self, bindings: Sequence[Binding], after: Checkpoint | None, limit: int
    ) -> ChangeBatch:
        self.source.end_snapshot()
        reader = self.stream if self.stream is not None else self.source
        batch = reader.changes(bindings, after, limit)
        if batch.events:
            self.sink.forget_schema()
        return batch

    def end_snapshot(self) -> None:
        """The snapshot is read: release the exported snapshot (source.py)."""
        self.source.end_snapshot()

    def confirm(self, checkpoint: Checkpoint) -> None:
        (self.stream or self.source).confirm(checkpoint)

    def prune(self, checkpoints: Sequence[Checkpoint],
              tables: Sequence[str] | None = None) -> None:
        """Move the slot to the oldest of ``checkpoints`` (``tables``: the slot is the
        pipeline's own, so every table in it is this pipeline's)."""
        (self.stream or self.source).prune(checkpoints)

    # --- sink -------------------------------------------------------------------------

    def apply(self, binding: Binding, ops: Sequence[ApplyOp]) -> list[ApplyResult]:
        return self.sink.apply(binding, ops)

    def truncate(self, binding: Binding) -> None:
        self.sink.truncate(binding)

    def add_columns(self, binding: Binding, columns: Sequence[Column],
                    *, source_kind: str | None = None,
                    defaults: Mapping[str, str] | None = None) -> list[str]:
        return self.sink.add_columns(binding, columns, source_kind=source_kind,
                                     defaults=defaults)

    def read(
        self, binding: Binding, keys: Iterable[Mapping[str, Any]]
    ) -> dict[str, tuple[dict[str, Any], Any]]:
        return self.sink.read(binding, keys)

    # --- setup ------------------------------------------------------------------------

    def _names(self, pipeline: str) -> Names:
        return self.names if pipeline == self.pipeline else Names.of(pipeline, self.name,
                                                                     self.settings)

    def setup(
        self, bindings: Sequence[Binding], pipeline: str, *,
        read: Sequence[Binding] | None = None, written: Sequence[Binding] | None = None
    ) -> list[str]:
        """Create publication, slot, origin (idempotent); returns what was done.

        ``written`` is not needed: replication origins tell each pipeline's writes apart.

        The publication lists the tables of ``read`` (default: all ``bindings``), and
        loses those an earlier setup read. With none read (an endpoint only written
        to) there is no publication and no slot (an unread slot holds the cluster's
        WAL), and those an earlier setup made are dropped.
        """
        conn = self.source.connection()
        with classified(f"set up {self.name}"):
            infos = [table_for(conn, b, self.default_schema) for b in bindings]  # each checked
            read_here = [(b, info) for b, info in zip(bindings, infos, strict=True)
                         if read is None or b in read]  # (not the tables only written to)
            for b, info in read_here:
                loose = [k for k in b.endpoint_key
                         if (col := info.column(k)) is not None and col.nullable]
                if loose:
                    target = info.ident.as_string(conn)
                    raise SchemaError(nullable_key(self.name, info.qualified, b.entity, {
                        c: f"ALTER TABLE {target} ALTER COLUMN"
                           f" {sql.Identifier(c).as_string(conn)} SET NOT NULL" for c in loose}))
            tables = {info.qualified: info for _b, info in read_here}
            return capture.setup(conn, self._names(pipeline), list(tables.values()))

    def log_lost(self, pipeline: str, checkpoint: Mapping[str, Any] | None
                 ) -> tuple[str, bool] | None:
        """Why the log the pipeline read here is gone, if it is: its slot does not exist
        (dropped, or the server restored from a base backup or failed over to a standby,
        neither of which holds it), and whether the server's log went back before
        ``checkpoint`` (the pipeline's stream checkpoint here, if any): then the server
        was put back, and holds older copies of the rows. Setup makes the slot anew, and
        resets the pipeline's stream here if it had one (sync/setup.py)."""
        slot = self._names(pipeline).slot
        with classified(f"read the replication slot at {self.name}"):
            row = self.source.connection().execute(
                "SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = %s"
                " AND database = current_database()), pg_current_wal_insert_lsn()::text",
                (slot,)).fetchone()
        assert row is not None  # (one row, always)
        found, end = row
        if found:
            return None
        back = checkpoint is not None and int(checkpoint.get("lsn", 0)) > parse_lsn(str(end))
        return f"replication slot {slot} does not exist", back

    def unread(self, bindings: Sequence[Binding], pipeline: str) -> list[str]:
        """The tables of ``bindings`` the pipeline did not read here until now: its
        publication does not list them, so writes to them were not decoded
        (sync/setup.py resyncs an entity whose table this was)."""
        conn = self.source.connection()
        with classified(f"read the publication at {self.name}"):
            listed = {t.qualified for t in published(conn, self._names(pipeline).publication)}
            out = []
            for b in bindings:
                try:
                    info = table_for(conn, b, self.default_schema)
                except SchemaError:  # (setup says what is wrong with it)
                    continue
                if info.qualified not in listed:
                    out.append(b.table)
            return out

    def create_table(
        self,
        binding: Binding,
        source: TableSchema,
        source_binding: Binding,
        *,
        source_kind: str | None = None,
    ) -> list[str]:
        """Create a one-way target table from the source's schema if it does not exist
        (type mapping: ddl.py, docs/types.md); returns what was done."""
        with classified(f"create table {binding.table} at {self.name}"):
            return ddl.create_table(self.source.connection(), binding, source, source_binding,
                                    self.default_schema, source_kind=source_kind)

    def teardown(self, bindings: Sequence[Binding], pipeline: str) -> list[str]:
        self.sink.close()  # our own sessions must not hold what is being dropped
        if self.stream is not None:
            self.stream.close()
        with classified(f"tear down {self.name}"):
            return capture.teardown(self.source.connection(), self._names(pipeline))

    def reset_stream(self) -> list[str]:
        """``cdcsync resync --reset-stream``: the slot moves to the log's current end."""
        if self.stream is not None:
            self.stream.close()
        return self.source.reset_stream()

    def slot_status(self) -> dict[str, Any]:
        warn = getattr(self.settings, "warn_retained_wal_bytes", None)
        with classified(f"read the slot status of {self.name}"):
            return capture.slot_status(
                self.source.connection(), self.names,
                warn_retained=int(warn) if warn else capture.DEFAULT_WARN_RETAINED,
            )

    def status(self) -> dict[str, Any]:
        """For ``cdcsync status``: slot lag, retained WAL and loud warnings."""
        return self.slot_status()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.sink.close()
        self.source.close()


def open_endpoint(name: str, settings: Any, *, pipeline: str = "") -> PostgresEndpoint:
    return PostgresEndpoint(name, settings, pipeline=pipeline)
