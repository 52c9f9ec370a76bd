"""Names of the per-test databases, shared by the PostgreSQL and MariaDB fixtures.

``cdcsync_t_<created unix time>_<pid>_<random>``: the creation time lets a
later session drop what a crashed one left behind (a leaked PostgreSQL slot
holds WAL for the whole cluster); the pid says which process left it.
"""

from __future__ import annotations

import os
import re
import secrets
import time

TEST_DB_PREFIX = "cdcsync_t_"
# A test database lives as long as one test: one this old was left by a crashed run.
STALE_AFTER_SECONDS = 3600
# Finds a test database name inside another name (a slot's or an origin's).
TEST_DB_NAME = re.compile(re.escape(TEST_DB_PREFIX) + r"[0-9]+_[0-9]+_[0-9a-f]{8}")
PREPARE_HINT = "run `sudo scripts/prepare-services` (scripts/test does it for you)"


def new_database_name() -> str:
    """A fresh, unique test database name (valid unquoted in both engines, < 64 chars)."""
    return f"{TEST_DB_PREFIX}{int(time.time())}_{os.getpid()}_{secrets.token_hex(4)}"


def is_stale(name: str, now: float | None = None) -> bool:
    """True for a test database created more than STALE_AFTER_SECONDS ago."""
    if not name.startswith(TEST_DB_PREFIX):
        return False
    stamp = name[len(TEST_DB_PREFIX) :].split("_", 1)[0]
    if not stamp.isdigit():
        return False
    return int(stamp) < (time.time() if now is None else now) - STALE_AFTER_SECONDS
