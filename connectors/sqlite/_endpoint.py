"""``SqliteEndpoint``: one SQLite file as a source and a sink."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from connectors.base import (
    ApplyOp,
    ApplyResult,
    Binding,
    ConnectorError,
    ContentionError,
    KeyGenerator,
    ReferenceRejected,
    RowRejected,
    SchemaError,
    TableSchema,
)
from connectors.claims import Claim
from connectors.sqlite import _capture, _create, _sink, _source
from connectors.sqlite._capture import (
    LOG,
    Captured,
    check_binding,
    log_end,
    log_id,
    trigger_names,
)
from connectors.sqlite._rows import Codec
from connectors.sqlite._schema import introspect, quote
from sync.change import ChangeBatch, Checkpoint, SnapshotChunk

_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED


@contextmanager
def _translated(where: str) -> Iterator[None]:
    """sqlite3 errors as connector errors: busy/locked is contention (another writer holds
    the file; retriable), the rest is permanent."""
    try:
        yield
    except ConnectorError:
        raise
    except OverflowError as exc:  # an int beyond SQLite's 64 bits, bound as a parameter
        raise RowRejected(f"{where}: {exc}") from exc
    except sqlite3.Error as exc:
        msg = str(exc)
        code = getattr(exc, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF in _BUSY) or "locked" in msg or "busy" in msg:
            raise ContentionError(f"{where}: {msg}") from exc
        if isinstance(exc, sqlite3.IntegrityError):  # CHECK, NOT NULL, UNIQUE, FOREIGN KEY
            cls = ReferenceRejected if "FOREIGN KEY" in msg else RowRejected
            raise cls(f"{where}: {msg}") from exc
        if msg.startswith(("no such table", "no such column")):
            raise SchemaError(f"{where}: {msg} (is the pipeline set up? `cdcsync setup`)") from exc
        raise ConnectorError(f"{where}: {msg}") from exc


class SqliteEndpoint:
    """An SQLite database file: trigger-based change capture and conditional apply.

    Needs nothing but Python's ``sqlite3``. One connection in WAL mode
    (readers never block the user's writers), explicit transactions, and a
    lock so that threads may share the endpoint.

    Row versions are the per-key change sequence (``_cdcsync_rowver.ver``,
    the ``seq`` of the key's latest log row); see ``_capture`` for the
    objects ``setup`` creates and ``_types`` for how values are stored.

    ``confirm`` does nothing: the engine calls :meth:`prune` with the
    checkpoints every reader of the log is past (a batch run after its
    catch-up, the daemon's reader every ``PRUNE_EVERY`` seconds after it
    confirms), and the lowest one wins. Pipelines that share one database file
    share its log, and each prunes only the tables it reads; setup refuses two
    pipelines reading one table (connectors.claims), and a reader finding changes
    it had not read pruned says so (``_source._PRUNED``).
    """

    own_writes_tagged = True  # by the session marker (connectors.base.Sink)

    def __init__(self, name: str, path: Path | str, *, busy_timeout: float = 10.0,
                 pipeline: str = "") -> None:
        self.name = name
        self.pipeline = pipeline
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._tables = _sink.KeyTables()
        self._cache: dict[str, tuple[int, Captured]] = {}
        self._conn: sqlite3.Connection | None = None
        if not self.path.is_file():
            raise ConnectorError(f"endpoint {name!r}: SQLite database {self.path} does not exist")
        with self._lock:
            self._open()

    # --- connection and transactions ---------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            with _translated(f"{self.name}: opening {self.path}"):
                conn = sqlite3.connect(
                    self.path.resolve().as_uri() + "?mode=rw",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=self._busy_timeout,
                )
                try:
                    conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                    conn.execute("PRAGMA journal_mode = WAL").fetchone()
                except BaseException:
                    conn.close()
                    raise
            self._conn = conn
            self._tables.forget()
        return self._conn

    @contextmanager
    def _txn(self, what: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated(f"{self.name}: {what} on {self.path}"):
            conn = self._open()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):  # the original error matters more
                        conn.execute("ROLLBACK")
                self._tables.forget()  # a TEMP table made in this transaction is gone too
                raise

    def _captured(self, conn: sqlite3.Connection, binding: Binding) -> Captured:
        """The bound table as set up, re-checked whenever the schema changed."""
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        hit = self._cache.get(binding.table)
        if hit is not None and hit[0] == version and hit[1].key == binding.endpoint_key:
            check_binding(hit[1].info, binding, self.path)  # the binding's own columns
            return hit[1]
        cap = _capture.captured(conn, binding, self.path)
        self._cache[binding.table] = (version, cap)
        return cap

    def _readable(self, conn: sqlite3.Connection, binding: Binding) -> Captured:
        """For plain reads: a table not set up is read too, without row versions."""
        if _capture.is_set_up(conn, binding.table):
            return self._captured(conn, binding)
        info = check_binding(introspect(conn, binding.table), binding, self.path)
        return Captured(info, binding.endpoint_key, versions=False)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqliteEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- setup ---------------------------------------------------------------------------

    def setup(self, bindings: Sequence[Binding], pipeline: str = "", *,
              read: Sequence[Binding] | None = None,
              written: Sequence[Binding] | None = None) -> list[str]:
        """Create the capture objects (idempotent); returns what was created or found.

        Made for every binding, ``read`` or not: the triggers also keep the row versions
        the sink compares and tell its own writes apart. The pipeline's tables are
        recorded in the file, and a table another pipeline reads or writes so that
        one of them would miss changes is refused (:mod:`connectors.claims`)."""
        claim = Claim.of(pipeline, self.name, bindings, read, written)
        with self._txn("setup", write=True) as conn:
            lines = _capture.setup(conn, bindings, self.path, claim)
        self._cache.clear()
        return lines

    def unread(self, bindings: Sequence[Binding], pipeline: str = "") -> list[str]:
        """The tables of ``bindings`` the pipeline did not read here until now: their
        capture triggers are missing, or the pipeline's record of the tables it reads
        (:mod:`connectors.claims`) lacks them, and its stream checkpoint has passed
        the log rows of their writes meanwhile, unread (sync/setup.py resyncs an
        entity whose table this was)."""
        with self._txn("setup", write=False) as conn:
            mine = [c for c in _capture.claims(conn) if (c.pipeline, c.endpoint) == (
                pipeline, self.name)]
            read = mine[0].reads if mine else None  # (none recorded: set up before 2026-12-03)
            return [b.table for b in bindings if not _capture.is_captured(conn, b.table)
                    or (read is not None and b.table not in read)]

    def create_table(self, binding: Binding, source: TableSchema, source_binding: Binding, *,
                     source_kind: str | None = None) -> list[str]:
        """Create a one-way target table from the source's schema if it does not exist
        (type mapping: _create.py, docs/types.md); returns what was done."""
        with self._txn("creating a table", write=True) as conn:
            lines = _create.create_table(conn, binding, source, source_binding,
                                         source_kind=source_kind)
        self._cache.clear()
        return lines

    def teardown(self, bindings: Sequence[Binding], pipeline: str = "") -> list[str]:
        with self._txn("teardown", write=True) as conn:
            lines = _capture.teardown(conn, bindings, (pipeline, self.name))
        self._cache.clear()
        return lines

    def schema(self, binding: Binding) -> TableSchema:
        """The table in endpoint names; a table set up for capture is also checked for drift."""
        with self._txn("schema", write=False) as conn:
            info = check_binding(introspect(conn, binding.table), binding, self.path)
            if _capture.is_set_up(conn, binding.table):
                self._captured(conn, binding)
        return info.table_schema(binding.endpoint_key)

    def key_generator(self, binding: Binding) -> KeyGenerator | None:
        """SQLite's rowid, when the key is the table's one ``INTEGER PRIMARY KEY``: a row
        inserted without it gets one more than the largest (sync/keygen.py)."""
        if len(binding.endpoint_key) != 1:
            return None
        with self._txn("schema", write=False) as conn:
            info = introspect(conn, binding.table)
            made = conn.execute("SELECT sql FROM main.sqlite_master WHERE type = 'table'"
                                " AND name = ?", (binding.table,)).fetchone()
        pk = [c for c in info.columns if c.pk] if info is not None else []
        if (len(pk) != 1 or pk[0].name != binding.endpoint_key[0]
                or pk[0].declared.upper() != "INTEGER" or made is None
                or re.search(r"\bWITHOUT\s+ROWID\b", str(made[0]), re.IGNORECASE)):
            return None
        return KeyGenerator("its rowid, one past the largest", 1, 1)

    def table_schema(self, binding: Binding) -> TableSchema:
        """The table in endpoint names as it is, its capture unchecked: what setup reads
        to create one-way targets, before it sets up the capture anew (a key or columns
        changed since the last setup stopped :meth:`schema`, and with it that setup)."""
        with self._txn("schema", write=False) as conn:
            info = check_binding(introspect(conn, binding.table), binding, self.path)
        return info.table_schema(binding.endpoint_key)

    def status(self) -> dict[str, Any]:
        """Health for ``cdcsync status``: log size, captured tables, warnings."""
        with self._txn("status", write=False) as conn:
            if log_id(conn) is None:
                return {"path": str(self.path), "warnings": [
                    f"{self.path} is not set up for capture: run `cdcsync setup`"]}
            tables = _capture.captured_tables(conn)
            warnings = [
                f"capture trigger {t} is missing: rerun `cdcsync setup`"
                for table in tables for t in trigger_names(table).values()
                if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                                (t,)).fetchone() is None
            ]
            rows = int(conn.execute(f"SELECT count(*) FROM {quote(LOG)}").fetchone()[0])
            return {"path": str(self.path), "tables": tables, "log_rows": rows,
                    "log_seq": log_end(conn), "warnings": warnings}

    # --- source --------------------------------------------------------------------------

    def position(self) -> Checkpoint:
        with self._txn("position", write=False) as conn:
            return _source.position(conn, self.path)

    def held_up_to(self, checkpoint: Checkpoint) -> tuple[int, ...]:
        """The greatest change position at or before ``checkpoint`` (a change's position
        is its log row's ``(seq,)``; sync/snapshot_floor.py)."""
        return (int(checkpoint["seq"]),)

    def snapshot(
        self, binding: Binding, after_key: Mapping[str, Any] | None, limit: int
    ) -> SnapshotChunk:
        with self._txn("snapshot", write=False) as conn:
            codec = Codec(binding, self._readable(conn, binding))
            return _source.snapshot(conn, codec, after_key, limit)

    def changes(
        self, bindings: Sequence[Binding], after: Checkpoint | None, limit: int
    ) -> ChangeBatch:
        with self._txn("reading changes", write=False) as conn:
            codecs = [Codec(b, self._captured(conn, b)) for b in bindings]
            return _source.changes(conn, self.name, self.path, codecs, after, limit,
                                   self.pipeline)

    def confirm(self, checkpoint: Checkpoint) -> None:
        """Nothing to release here: see :meth:`prune`."""

    def prune(self, upto: int | Iterable[Checkpoint],
              tables: Sequence[str] | None = None) -> int:
        """Delete log rows at or before ``upto`` (a ``seq``, or the lowest of several
        checkpoints, ignoring those of an older log) of ``tables`` (``None``: of every
        table); returns how many. The log is the file's, not the pipeline's: another
        pipeline may read other tables of it from an older position."""
        with self._txn("pruning the log", write=True) as conn:
            return _source.prune_upto(conn, upto, tables)

    # --- sink ----------------------------------------------------------------------------

    def apply(self, binding: Binding, ops: Sequence[ApplyOp]) -> list[ApplyResult]:
        if not ops:
            return []
        with self._txn(f"applying to {binding.table}", write=True) as conn:
            codec = Codec(binding, self._captured(conn, binding))
            return _sink.apply(conn, self._tables, codec, ops)

    def read(
        self, binding: Binding, keys: Iterable[Mapping[str, Any]]
    ) -> dict[str, tuple[dict[str, Any], Any]]:
        with self._txn(f"reading {binding.table}", write=False) as conn:
            codec = Codec(binding, self._readable(conn, binding))
            return _sink.read(conn, self._tables, codec, keys)


def open_endpoint(name: str, settings: Any, *, pipeline: str = "") -> SqliteEndpoint:
    """The registry's entry point: ``settings`` has ``.path``."""
    return SqliteEndpoint(name, Path(settings.path), pipeline=pipeline)

