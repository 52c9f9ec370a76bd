"""Which apply queue a record goes to: a stable hash of (entity, key)."""

from __future__ import annotations

import hashlib


def partition_of(entity: str, key: str, partitions: int) -> int:
    digest = hashlib.blake2b(f"{entity}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def queue_name(pipeline: str, partition: int) -> str:
    return f"cdcsync.{pipeline}.p{partition}"


def actor_name(pipeline: str, partition: int) -> str:
    return f"cdcsync_apply__{pipeline}__p{partition}".replace("-", "_")
