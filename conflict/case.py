"""What a conflict policy is given, and what it answers."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conflict.vector import VersionVector

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Side:
    """One of two concurrent versions of a record.

    ``content`` is ``None`` for a deletion. ``committed_at`` is the source
    commit time in seconds since the epoch (UTC); ``endpoint`` is where the
    version was written by a user (for the current version: its last writer).
    ``snapshot_read``: the version is a row as a snapshot read it, whose commit
    time no engine tells: ``committed_at`` is then when it was read.
    """

    endpoint: str
    vector: VersionVector
    content: Row | None
    committed_at: float
    snapshot_read: bool = False

    @property
    def deleted(self) -> bool:
        return self.content is None


@dataclass(frozen=True, slots=True)
class ConflictCase:
    """Two concurrent versions of one record.

    ``current`` is the version the service holds (``V``); ``incoming`` the
    concurrent edit just read (``W``). ``base`` is what the incoming endpoint
    held before its edit (the change's before-image), when known: the common
    ancestor that field-level merge diffs both sides against.
    """

    entity: str
    key: Row
    current: Side
    incoming: Side
    base: Row | None = None

    def side(self, which: Winner) -> Side:
        return self.current if which is Winner.CURRENT else self.incoming


class Winner(enum.StrEnum):
    CURRENT = "current"
    INCOMING = "incoming"
    MERGED = "merged"  # content of neither side exactly


@dataclass(frozen=True, slots=True)
class Resolution:
    """A policy's decision: the content that wins (``None``: the record is deleted)."""

    content: Row | None
    winner: Winner
    policy: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Park:
    """A policy's decision to leave the record to a data steward."""

    policy: str
    reason: str = ""


Decision = Resolution | Park
