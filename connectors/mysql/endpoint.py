"""MysqlEndpoint: the source and the sink of one MySQL/MariaDB database, and its setup."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from connectors.base import (
    ApplyOp,
    ApplyResult,
    Binding,
    ConnectorError,
    KeyGenerator,
    RangesOfSource,
    TableSchema,
)
from connectors.claims import Claim
from connectors.mysql import applied, create
from connectors.mysql import setup as _setup
from connectors.mysql.session import classify, close_quietly, connect, error_code
from connectors.mysql.sink import MysqlSink
from connectors.mysql.source import MysqlSource
from sync.change import ChangeBatch, Checkpoint, SnapshotChunk


class MysqlEndpoint(RangesOfSource):
    """Both halves of a ``kind: mysql`` endpoint (``flavor: mariadb`` or ``mysql``).

    ``echo`` chooses how the service's own writes are recognised:
    ``skip_replication`` (MariaDB's default) or ``marker`` (MySQL's; it also
    works on MariaDB, which is how it is tested).
    """

    source: MysqlSource
    own_writes_tagged = True  # either way the reader drops them (connectors.base.Sink)
    hashed_versions = True  # a row's version is its content's hash (connectors.base.Source)
    parallel_apply = True  # a server: sessions side by side (connectors.base.Sink)

    def __init__(self, name: str, settings: Any, *, pipeline: str = "",
                 echo: str | None = None, heartbeat: float = 1.0) -> None:
        self.name = name
        self.settings = settings
        self.pipeline = pipeline
        self.source = MysqlSource(name, settings, pipeline=pipeline, heartbeat=heartbeat,
                                  echo=echo)
        self.sink = MysqlSink(name, settings, pipeline=pipeline, echo=self.source.echo)

    @property
    def echo(self) -> str:
        return self.source.echo

    # Source
    def schema(self, binding: Binding) -> TableSchema:
        return self.source.schema(binding)

    def key_generator(self, binding: Binding) -> KeyGenerator | None:
        return self.source.key_generator(binding)

    def prior_values(self, binding: Binding, columns: Sequence[str]) -> dict[str, str | None]:
        return self.source.prior_values(binding, columns)

    def position(self) -> Checkpoint:
        return self.source.position()

    def held_up_to(self, checkpoint: Checkpoint) -> tuple[int, ...] | None:
        return self.source.held_up_to(checkpoint)

    def snapshot(self, binding: Binding, after_key: Mapping[str, Any] | None,
                 limit: int) -> SnapshotChunk:
        return self.source.snapshot(binding, after_key, limit)

    def changes(self, bindings: Sequence[Binding], after: Checkpoint | None,
                limit: int) -> ChangeBatch:
        return self.source.changes(bindings, after, limit)

    def confirm(self, checkpoint: Checkpoint) -> None:
        self.source.confirm(checkpoint)

    def use_streaming(self, on: bool = True, *, wait: float = 0.2) -> None:
        """Wait on the binlog for changes (the daemon); see MysqlSource.use_streaming."""
        self.source.use_streaming(on, wait=wait)

    # Sink
    def apply(self, binding: Binding, ops: Sequence[ApplyOp]) -> list[ApplyResult]:
        return self.sink.apply(binding, ops)

    def read(self, binding: Binding, keys: Iterable[Mapping[str, Any]]
             ) -> dict[str, tuple[dict[str, Any], Any]]:
        return self.sink.read(binding, keys)

    # Setup
    def setup(self, bindings: Sequence[Binding], pipeline: str, *,
              read: Sequence[Binding] | None = None,
              written: Sequence[Binding] | None = None) -> list[str]:
        return _setup.setup(self.settings, bindings, echo=self.echo,
                            writer=applied.writer_id(pipeline, self.name),
                            claim=Claim.of(pipeline, self.name, bindings, read, written),
                            capture=read is None or bool(read))

    def create_table(self, binding: Binding, source: TableSchema, source_binding: Binding, *,
                     source_kind: str | None = None) -> list[str]:
        """Create a one-way target table from the source's schema if it does not exist
        (type mapping: create.py, docs/types.md); returns what was done."""
        conn = connect(self.settings)
        try:
            with conn.cursor() as cur:
                return create.create_table(cur, str(self.settings.database), binding, source,
                                           source_binding, source_kind=source_kind)
        except ConnectorError:
            raise
        except Exception as exc:
            raise classify(exc, f"{self.name}: creating table {binding.table}") from exc
        finally:
            conn.close()

    def teardown(self, bindings: Sequence[Binding], pipeline: str) -> list[str]:
        return _setup.teardown(self.settings, writer=applied.writer_id(pipeline, self.name),
                               pipeline=pipeline, endpoint=self.name)

    def status(self) -> dict[str, Any]:
        """For ``cdcsync status``: where the server's binlog ends (``gtid``; ``file`` and
        ``pos`` where the user may read them: BINLOG MONITOR) and how much of it the
        server keeps. It connects, so an endpoint that cannot be reached (or refuses
        us) raises, and status warns of it: the endpoint connects lazily, and before
        2026-12-07 status never contacted it. (How far a checkpoint is behind is the
        state store's; the endpoint does not know it.)"""
        conn = None
        try:
            conn = connect(self.settings)
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION(), @@GLOBAL.log_bin, @@GLOBAL.binlog_format")
                version, log_bin, fmt = cur.fetchone()
                cur.execute("SELECT @@GLOBAL.gtid_binlog_pos" if self.source.flavor == "mariadb"
                            else "SELECT @@GLOBAL.gtid_executed")
                row = cur.fetchone()
                out: dict[str, Any] = {
                    "server": str(version), "flavor": self.source.flavor,
                    "log_bin": bool(int(log_bin or 0)), "binlog_format": str(fmt),
                    "gtid": str(row[0] or "") if row else "", "file": None, "pos": None,
                    "binlog_bytes": None, "warnings": []}
                try:
                    cur.execute("SHOW MASTER STATUS")
                    end = cur.fetchone()
                    if end is not None:
                        out["file"], out["pos"] = str(end[0]), int(end[1])
                    cur.execute("SHOW BINARY LOGS")
                    out["binlog_bytes"] = sum(int(r[1]) for r in cur.fetchall())
                except Exception as exc:
                    if error_code(exc) != _setup.SPECIFIC_ACCESS_DENIED:
                        raise
                    out["note"] = f"the binlog's file and size are not shown to this user: {exc}"
            return out
        except ConnectorError:
            raise
        except Exception as exc:
            raise classify(exc, f"{self.name}: reading the binlog status") from exc
        finally:
            close_quietly(conn)

    def close(self) -> None:
        self.source.close()
        self.sink.close()


def open_endpoint(name: str, settings: Any, *, pipeline: str = "") -> MysqlEndpoint:
    """The registry's entry point for ``kind: mysql``."""
    return MysqlEndpoint(name, settings, pipeline=pipeline)
