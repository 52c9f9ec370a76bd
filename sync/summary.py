"""Counts of one run, per entity and direction, for the summary table and ``--json``."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class DirectionStats:
    entity: str
    source: str
    target: str
    read: int = 0  # changes (and snapshot rows) read at the source
    applied: int = 0  # rows written at the target
    skipped: int = 0  # applies refused by compare-and-set (a user edit is on its way)
    echoes: int = 0  # own writes read back and dropped
    duplicates: int = 0
    resolved: int = 0  # conflicts decided by policy
    parked: int = 0  # conflicts left to a steward
    rejected: int = 0  # rows the target refused (a constraint, a value): dead-lettered
    seconds: float = 0.0


@dataclass
class QualityStats:
    """What the data-quality gate did to one entity in this run (sync/quality)."""

    entity: str
    validated: int = 0  # changes judged (with an after row; of a snapshot, those it stopped)
    quarantined: int = 0  # changes stopped for a steward
    held: int = 0  # later changes held behind a quarantined one of their key
    open: int = 0  # unresolved quarantine items of the entity after this run
    failures: dict[str, int] = field(default_factory=dict)  # failing rows per expectation


@dataclass
class RunSummary:
    pipeline: str
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    directions: dict[tuple[str, str, str], DirectionStats] = field(default_factory=dict)
    snapshot_rows: int = 0
    open_conflicts: int = 0
    dead_letters: int = 0  # applies refused for good, waiting for an operator (cdcsync dlq)
    errors: list[str] = field(default_factory=list)
    quality: dict[str, QualityStats] = field(default_factory=dict)
    worker_batches: int = 0  # batches decided and applied by worker processes (sync/parallel.py)
    interrupted: bool = False  # stopped as asked (SIGTERM/SIGINT): resumes, nothing failed

    def quality_at(self, entity: str) -> QualityStats:
        st = self.quality.get(entity)
        if st is None:
            st = self.quality[entity] = QualityStats(entity)
        return st

    @property
    def quarantine_open(self) -> int:
        return sum(q.open for q in self.quality.values())

    def at(self, entity: str, source: str, target: str) -> DirectionStats:
        key = (entity, source, target)
        st = self.directions.get(key)
        if st is None:
            st = self.directions[key] = DirectionStats(entity, source, target)
        return st

    def add(self, other: RunSummary) -> None:
        """Count ``other``'s directions into this summary (work decided on a scratch one)."""
        for key, st in other.directions.items():
            mine = self.at(*key)
            for name, value in asdict(st).items():
                if name not in ("entity", "source", "target"):
                    setattr(mine, name, getattr(mine, name) + value)

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at

    def total(self, attr: str) -> int:
        return sum(int(getattr(d, attr)) for d in self.directions.values())

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.errors:
            return "failed"
        if self.open_conflicts or self.quarantine_open or self.dead_letters:
            return "attention"
        return "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "snapshot_rows": self.snapshot_rows,
            "worker_batches": self.worker_batches,
            "open_conflicts": self.open_conflicts,
            "dead_letters": self.dead_letters,
            "errors": list(self.errors),
            "totals": {a: self.total(a) for a in
                       ("read", "applied", "skipped", "echoes", "resolved", "parked",
                        "rejected")},
            "directions": [
                {**asdict(d), "seconds": round(d.seconds, 3)}
                for d in sorted(self.directions.values(),
                                key=lambda d: (d.entity, d.source, d.target))
            ],
            "quality": [asdict(q) for _, q in sorted(self.quality.items())],
        }
