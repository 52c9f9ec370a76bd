"""Connections to a MySQL/MariaDB endpoint, identifier quoting and error classes.

Every session the connector opens runs at ``time_zone = '+00:00'``: TIMESTAMP
values then travel as naive UTC both ways, which is what the canonical form
assumes for naive timestamps.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable
from typing import Any

import pymysql
import pymysql.constants.CLIENT
import pymysql.cursors

from connectors.base import (
    ConnectorError,
    ContentionError,
    ReferenceRejected,
    RefusedError,
    RetriableError,
    RowRejected,
)

#: Server errors after which the same statement may succeed on a new try:
#: lost connection (2006, 2013), cannot connect (2003), deadlock (1213), lock
#: wait timeout (1205), server shutting down (1053), query interrupted (1317).
RETRIABLE_CODES = frozenset({2003, 2006, 2013, 2055, 1213, 1205, 1053, 1317, 1927})
#: Of those, the ones after which the connection itself is gone.
CONNECTION_LOST = frozenset({2003, 2006, 2013, 2055, 1053, 1927})
#: Of those, the ones where the server answered: other transactions won (deadlock, lock
#: wait timeout).
CONTENTION = frozenset({1213, 1205})
#: A row's data refused: a NULL in a NOT NULL column (1048), a duplicate in a unique
#: index (1062: the sink tells one on the key apart, see connectors/mysql/sink.py), a
#: value out of range (1264, 1690), truncated or of the wrong form (1265, 1292, 1366,
#: 1367), too long (1406), a foreign key (1216, 1217, 1451, 1452), a CHECK constraint
#: (MySQL 3819, MariaDB 4025), a target's trigger refusing the row (``SIGNAL SQLSTATE
#: '45000'``: 1644; before 2026-12-06 one such row stopped every run). RowRejected.
REJECTED_CODES = frozenset({1048, 1062, 1216, 1217, 1264, 1265, 1292, 1366, 1367, 1406,
                            1451, 1452, 1644, 1690, 3819, 4025})
#: Of those, a foreign key (ReferenceRejected)
REFERENCE_CODES = frozenset({1216, 1217, 1451, 1452})
#: A connection refused by the server: access denied (1045, 1044, 1698), an unknown
#: database (1049), a host not allowed (1130) or blocked (1129). RefusedError.
REFUSED = frozenset({1044, 1045, 1049, 1129, 1130, 1698})


def quote_ident(name: str) -> str:
    """A MySQL identifier in backticks, backticks inside doubled."""
    return "`" + name.replace("`", "``") + "`"


def quote_table(database: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(table)}"


def column_list(names: Iterable[str]) -> str:
    return ", ".join(quote_ident(n) for n in names)


def error_code(exc: BaseException) -> int | None:
    if isinstance(exc, pymysql.err.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return int(exc.args[0])
    return None


def is_retriable(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError | ConnectionError | TimeoutError):
        return True
    return error_code(exc) in RETRIABLE_CODES


def is_connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError | ConnectionError | TimeoutError):
        return True
    return error_code(exc) in CONNECTION_LOST


def classify(exc: BaseException, what: str) -> ConnectorError:
    """The connector error for a driver error: retriable or permanent."""
    if isinstance(exc, ConnectorError):
        return exc
    code = error_code(exc)
    if code in CONTENTION:
        return ContentionError(f"{what}: {exc}")
    if code in REFERENCE_CODES:
        return ReferenceRejected(f"{what}: {exc}")
    if code in REJECTED_CODES:
        return RowRejected(f"{what}: {exc}")
    cls = RetriableError if is_retriable(exc) else ConnectorError
    return cls(f"{what}: {exc}")


def connection_args(settings: Any, *, database: bool = True) -> dict[str, Any]:
    """pymysql connect() arguments from the endpoint settings (duck-typed)."""
    args: dict[str, Any] = {
        "host": settings.host,
        "port": int(settings.port or 3306),
        "user": settings.user,
        "password": settings.password or "",
        "charset": "utf8mb4",
        "connect_timeout": 10,
    }
    if database:
        args["database"] = settings.database
    return args


#: Servers seen without TLS support. pymysql's default ("preferred": TLS when the
#: server offers it) builds a fresh SSL context for every connection, ~50 ms of
#: CPU; once a server is known to offer no TLS, that work is skipped.
_NO_TLS: set[tuple[str, int]] = set()


def open_connection(settings: Any, *, database: bool = True,
                    **kwargs: Any) -> pymysql.connections.Connection[Any]:
    """``pymysql.connect`` with the endpoint's settings (errors are the driver's)."""
    args = connection_args(settings, database=database)
    server = (str(args["host"]), int(args["port"]))
    if server in _NO_TLS:
        args["ssl_disabled"] = True
    conn = pymysql.connect(**args, **kwargs)
    if not conn.server_capabilities & pymysql.constants.CLIENT.SSL:
        _NO_TLS.add(server)
    return conn


def connect(settings: Any, *, autocommit: bool = True, read_timeout: float | None = None,
            init: Iterable[str] = ()) -> pymysql.connections.Connection[Any]:
    """A pymysql connection with the connector's session settings applied.

    Raises:
        RefusedError: it refused us (bad credentials, unknown database...).
        RetriableError: the server cannot be reached right now.
        ConnectorError: a session setting failed for good.
    """
    try:
        conn = open_connection(settings, autocommit=autocommit, read_timeout=read_timeout)
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            for stmt in init:
                cur.execute(stmt)
    except pymysql.err.MySQLError as exc:
        what = f"cannot connect to {settings.host}:{settings.port}"
        if error_code(exc) in REFUSED:
            raise RefusedError(f"{what}: {exc}") from exc
        raise classify(exc, what) from exc
    return conn


def close_quietly(conn: Any) -> None:
    """Close a connection that may already be broken."""
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def derive_server_id(pipeline: str, endpoint: str) -> int:
    """A stable replica server_id for the reader of ``endpoint`` in ``pipeline``.

    Two binlog readers with one server_id kill each other's dump threads, so
    every (pipeline, endpoint) gets its own; keeping it stable across restarts
    lets a new reader evict the dump thread a crashed one left behind. The range
    stays clear of small ids that real servers and replicas usually take.
    """
    digest = zlib.crc32(f"cdcsync/{pipeline}/{endpoint}".encode())
    return 100_000 + digest % (2**31 - 100_000)
