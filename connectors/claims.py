"""Which pipeline reads and which writes each table of a database whose change log
tags the service's writes alike for every pipeline.

SQLite's triggers copy one session marker into the log, and MariaDB flags every
session of ours with ``skip_replication`` (MySQL: the marker table): a reader
skips every write of the service, whichever pipeline made it. A pipeline that
reads a table another pipeline writes (chaining pipelines through it: A -> B in
one, B -> C in the other) would never see those writes, and its other endpoints
would silently miss them. On SQLite two pipelines must not even both read a table:
the change log is the file's, and each would prune rows the other has not read.
PostgreSQL's replication origins are per pipeline, so it needs none of this.

``cdcsync setup`` records each pipeline's tables in the database itself and
refuses, naming the other pipeline and the table, a setup that would share a
table so; ``cdcsync teardown`` forgets the pipeline's record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connectors.base import Binding, SchemaError


@dataclass(frozen=True)
class Claim:
    """One pipeline's tables in one database, at one of its endpoints (a pipeline may
    have two endpoints in one database, each with its own tables): those it reads
    and those it writes."""

    pipeline: str
    endpoint: str
    reads: frozenset[str]
    writes: frozenset[str]

    @classmethod
    def of(cls, pipeline: str, endpoint: str, bindings: Sequence[Binding],
           read: Sequence[Binding] | None, written: Sequence[Binding] | None) -> Claim:
        """``read``/``written``: those of ``bindings`` (``None``: all of them)."""
        return cls(pipeline, endpoint,
                   frozenset(b.table for b in (bindings if read is None else read)),
                   frozenset(b.table for b in (bindings if written is None else written)))


def clashes(mine: Claim, other: Claim, *, shared_reads: bool) -> list[tuple[str, str]]:
    """(table, why) for each table ``mine`` cannot share with ``other``.

    ``shared_reads``: whether two pipelines reading one table is also a clash
    (SQLite's one change log per file)."""
    out: list[tuple[str, str]] = []
    if other.pipeline == mine.pipeline:
        return out
    for table in sorted((mine.reads | mine.writes) & (other.reads | other.writes)):
        if table in mine.reads and table in other.writes:
            out.append((table, f"pipeline {other.pipeline!r} writes it, and this pipeline"
                               " would never read those writes"))
        elif table in mine.writes and table in other.reads:
            out.append((table, f"pipeline {other.pipeline!r} reads it, and would never read"
                               " this pipeline's writes"))
        elif shared_reads and table in mine.reads and table in other.reads:
            out.append((table, f"pipeline {other.pipeline!r} reads it too, and each would"
                               " prune the file's change log past the other"))
    return out


def refuse_clashes(mine: Claim, others: Iterable[Claim], where: str, *,
                   shared_reads: bool, forget: str) -> None:
    """Raise :class:`SchemaError` listing every clash of ``mine`` with ``others``.

    ``forget``: how to drop a stale claim (a pipeline gone without its teardown), with
    ``{pipeline}`` for its name."""
    found: list[str] = []
    gone: list[str] = []
    for other in others:
        for table, why in clashes(mine, other, shared_reads=shared_reads):
            found.append(f"table {table!r}: {why}")
            gone.append(forget.format(pipeline=other.pipeline))
    if not found:
        return
    raise SchemaError(
        f"{where}: pipeline {mine.pipeline!r} cannot share these tables with another"
        " pipeline, since every pipeline's writes here are tagged alike:\n  - "
        + "\n  - ".join(found)
        + "\nPut every endpoint of a table's records in one pipeline (README: 'One table,"
        " one pipeline'). If the other pipeline is gone, run `cdcsync teardown` with its"
        " file, or forget it here: " + "; ".join(dict.fromkeys(gone)))
