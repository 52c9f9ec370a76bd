"""Redis fixtures: a Redis database number of its own for each test.

dramatiq's Redis broker puts its keys under a fixed namespace, so a key
prefix would not keep two tests apart: each test gets a whole database
number instead, empty at the start and flushed at the end. Several pytest
processes may share the server (other engineers, CI), so a database is
claimed with a lease key in database 0 (``SET NX`` with an expiry) and
released after the test. Tests must never ``FLUSHALL``.

Fixtures:

- ``redis_server`` (session): the server URL, after a PING.
- ``redis_url``: ``redis://host:port/<n>`` of a database that is empty and
  nobody else's for the duration of the test.

The server is ``$CDCSYNC_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from tests.dbnames import PREPARE_HINT

REDIS_URL_ENV = "CDCSYNC_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
LEASE_KEY = "cdcsync:test-db-lease:{}"
# Longer than any single test; a crashed run's claim expires by itself.
LEASE_SECONDS = 1800
CLAIM_TIMEOUT_SECONDS = 120


def claim_database(server_url: str, token: str) -> int:
    """Claim a free database number (1..databases-1) and flush it."""
    with redis.Redis.from_url(f"{server_url}/0") as admin:
        count = int(admin.config_get("databases").get("databases", 16))
        deadline = time.monotonic() + CLAIM_TIMEOUT_SECONDS
        while True:
            for number in range(1, count):
                if admin.set(LEASE_KEY.format(number), token, nx=True, ex=LEASE_SECONDS):
                    with redis.Redis.from_url(f"{server_url}/{number}") as db:
                        db.flushdb()
                    return number
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no free Redis database in {CLAIM_TIMEOUT_SECONDS} s: all {count - 1}"
                    f" are claimed by running tests (keys {LEASE_KEY.format('*')} in db 0)",
                    pytrace=False,
                )
            time.sleep(0.2)


def release_database(server_url: str, number: int, token: str) -> None:
    """Flush the database and give up the claim, if it is still ours."""
    with redis.Redis.from_url(f"{server_url}/{number}") as db:
        db.flushdb()
    with redis.Redis.from_url(f"{server_url}/0") as admin:
        key = LEASE_KEY.format(number)
        if admin.get(key) == token.encode():
            admin.delete(key)


def _label(url: str) -> str:
    """host:port of a URL, for messages (never a password)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


@pytest.fixture(scope="session")
def redis_server() -> str:
    """URL (no database number) of the local Redis, after it answered PING."""
    url = os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL).rstrip("/")
    try:
        with redis.Redis.from_url(f"{url}/0", socket_connect_timeout=5) as client:
            client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {_label(url)}: {exc}\nStart it: {PREPARE_HINT}",
            pytrace=False,
        )
    return url


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """``redis://host:port/<n>``: an empty database of this test's own."""
    token = secrets.token_hex(8)
    number = claim_database(redis_server, token)
    yield f"{redis_server}/{number}"
    release_database(redis_server, number, token)
