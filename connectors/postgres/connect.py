"""Connections to a PostgreSQL endpoint, and how their errors are classified.

Every connection runs with the same output settings (``DateStyle``,
``IntervalStyle``, ``TimeZone``, ``extra_float_digits``, ``bytea_output``)
because logical decoding formats column values with the *decoding* session's
settings: the text pgoutput sends must be the text a query on another of our
connections returns, or a value read from the stream and the same value read
by the snapshot would not compare equal.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import errors
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb, JsonbBinaryDumper, JsonbDumper, set_json_loads

from conflict.canonical import json_bytes, json_document, parse_json
from connectors.base import (
    ConnectorError,
    ContentionError,
    ReferenceRejected,
    RefusedError,
    RetriableError,
    RowRejected,
)
from connectors.postgres import intervals, padded, wide_dates
from sync.logs import mask_secrets, without_password

PgConnection = psycopg.Connection[TupleRow]

SESSION_OPTIONS = (
    "-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c TimeZone=UTC"
    " -c extra_float_digits=3 -c bytea_output=hex"
)


def conninfo(settings: Any, **extra: Any) -> str:
    """A libpq conninfo from the endpoint's settings: ``dsn``, or else the discrete
    fields (``host``, ``port``, ``user``, ``password``, ``dbname``)."""
    dsn = getattr(settings, "dsn", None) or ""
    fields: dict[str, Any] = {}
    if not dsn:
        for attr in ("host", "port", "user", "password", "dbname"):
            value = getattr(settings, attr, None)
            if value not in (None, ""):
                fields[attr] = value
    try:
        base = conninfo_to_dict(dsn) if dsn else {}
        timeout = base.get("connect_timeout") or getattr(settings, "connect_timeout", None) or 10
        options = f"{base.get('options', '') or ''} {SESSION_OPTIONS}".strip()
        fields.update(extra)
        return make_conninfo(dsn, options=options, application_name="cdcsync",
                             connect_timeout=timeout, **fields)
    except psycopg.ProgrammingError as exc:  # (config check reports it with file and line)
        raise ConnectorError("not a valid PostgreSQL connection string (dsn):"
                             f" {mask_secrets(str(exc).strip())}") from None


def schema_of(settings: Any) -> str:
    """The schema of unqualified table names (``schema``; pydantic models call it
    ``schema_``, since ``schema`` is a method of theirs)."""
    for attr in ("schema_", "schema"):
        value = getattr(settings, attr, None)
        if isinstance(value, str) and value:
            return value
    return "public"


def describe(info: str) -> str:
    """``host:port/dbname`` of a conninfo, for messages (never the password)."""
    try:
        params = conninfo_to_dict(info)
    except psycopg.ProgrammingError:
        return "(an invalid connection string)"
    host = str(params.get("host") or params.get("hostaddr") or "local socket")
    return f"{host.rpartition('@')[2]}:{params.get('port', 5432)}/{params.get('dbname', '?')}"


def _hide_password(text: str, info: str) -> str:
    """``text`` (a driver's message) without the password of ``info``
    (:func:`sync.logs.without_password`)."""
    with contextlib.suppress(psycopg.ProgrammingError):
        params = conninfo_to_dict(info)
        return without_password(text, str(params.get("password") or ""),
                                str(params.get("host") or ""))
    return mask_secrets(text)


#: libpq's words when the server refused us (no SQLSTATE reaches the client for a
#: failed connection). The server's messages may be translated (lc_messages): a refusal
#: in another language is then taken for a server that is away, and retried, as before.
_REFUSALS = ("password authentication failed", "authentication failed",
             "no pg_hba.conf entry", "does not exist", "permission denied",
             "not permitted to log in")


def refused(message: str) -> bool:
    """Does a connection failure's ``message`` say the server refused us (see :data:`_REFUSALS`)?"""
    return "FATAL:" in message and any(words in message for words in _REFUSALS)


def connect(info: str, *, autocommit: bool = True) -> PgConnection:
    """Open a connection, classifying a failure as retriable (the server may be restarting)
    or refused (:class:`RefusedError`: credentials, an unknown database)."""
    try:
        conn = psycopg.connect(info, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        cls = RefusedError if refused(str(exc)) else RetriableError
        raise cls(f"cannot connect to PostgreSQL at {describe(info)}:"
                  f" {_hide_password(str(exc), info)}") from exc
    # json/jsonb results (snapshots, reads by key) parsed as the stream's are: the same
    # values as psycopg's json.loads, quicker.
    set_json_loads(load_json, conn)
    conn.adapters.register_dumper(Jsonb, _QuickJsonbBinary)
    conn.adapters.register_dumper(Jsonb, _QuickJsonb)
    wide_dates.register(conn.adapters)  # infinities, years past 9999, BC: both ways
    intervals.register(conn.adapters)  # intervals with months: never '30 days'
    padded.register(conn.adapters)  # character(n) without its padding
    return conn


def load_json(data: bytes | str) -> Any:
    """json/jsonb results: parsed as the stream's values are (quicker than psycopg's
    json.loads), a string document marked as one (conflict.canonical.JsonStr)."""
    return json_document(parse_json(data))


def dump_jsonb(obj: Any) -> bytes | str:
    """``json.dumps`` for ``jsonb`` values (every row a sink writes has them), quicker:
    :func:`conflict.canonical.json_bytes`, whose spelling ``jsonb`` does not keep
    (``json`` columns, which keep the text, still get ``json.dumps``)."""
    out = json_bytes(obj)
    return json.dumps(obj) if out is None else out


class _QuickJsonbBinary(JsonbBinaryDumper):
    _dumps = staticmethod(dump_jsonb)


class _QuickJsonb(JsonbDumper):
    _dumps = staticmethod(dump_jsonb)


#: Errors after which trying again may succeed.
RETRIABLE = (
    psycopg.OperationalError,  # lost connection, admin shutdown, serialization, deadlock, locks
    errors.SerializationFailure,
    errors.DeadlockDetected,
    errors.LockNotAvailable,
    errors.QueryCanceled,
)
#: Of those, the ones where the server answered: other transactions won (the server is up).
CONTENTION = (
    errors.SerializationFailure,  # DeadlockDetected is one (SQLSTATE class 40)
    errors.DeadlockDetected,
    errors.LockNotAvailable,
)
#: A row's data refused: SQLSTATE classes 22 (data exception: a value too long, out of
#: range, a NUL in text...) and 23 (integrity constraint violation), psycopg's own
#: DataError for a value it cannot send, and a target's trigger refusing the row
#: (PL/pgSQL ``RAISE EXCEPTION``, P0001, and ``ASSERT``, P0004: a validation rule of the
#: target's; before 2026-12-06 one such row stopped every run). RowRejected (a foreign
#: key: ReferenceRejected).
REJECTED = (psycopg.DataError, psycopg.IntegrityError, errors.RaiseException,
            errors.AssertFailure)


#: What a user who is not a superuser needs to be granted for replication origins (the
#: service tags its writes with one, connectors/postgres/sink.py), in each database.
ORIGIN_GRANTS = (
    "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text),"
    " pg_replication_origin_drop(text), pg_replication_origin_session_setup(text),"
    " pg_replication_origin_session_reset(), pg_replication_origin_session_is_setup()"
    " TO {user}"
)


def _refused_origin(exc: psycopg.Error) -> str:
    """A replication-origin function refused to a user who is not a superuser: the
    grants that let it, for the message."""
    if not isinstance(exc, errors.InsufficientPrivilege) or "pg_replication_origin" not in str(exc):
        return ""
    return (" (the service tags its writes with a replication origin, whose functions"
            " PostgreSQL 15 keeps to superusers unless granted: "
            f"{ORIGIN_GRANTS.format(user='<the endpoint user>')}, in this database)")


def _timed_out(exc: psycopg.Error) -> str:
    """A statement stopped by the server's ``statement_timeout``: what to change, for
    the message (tried again, it times out alike: a snapshot chunk or a batch of the
    size configured takes longer than the role or database allows)."""
    if not isinstance(exc, errors.QueryCanceled) or "statement timeout" not in str(exc):
        return ""
    return (" (the server's statement_timeout stopped it, set for this user or database:"
            " lift it for cdcsync's user with `ALTER ROLE <the endpoint user> SET"
            " statement_timeout = 0`, or make batch.snapshot_chunk and batch.size smaller)")


@contextlib.contextmanager
def classified(what: str) -> Iterator[None]:
    """Re-raise driver errors as :class:`RetriableError` or :class:`ConnectorError`."""
    try:
        yield
    except ConnectorError:
        raise
    except CONTENTION as exc:
        raise ContentionError(f"{what}: {exc}") from exc
    except RETRIABLE as exc:
        raise RetriableError(f"{what}: {exc}{_timed_out(exc)}") from exc
    except errors.ForeignKeyViolation as exc:
        raise ReferenceRejected(f"{what}: {exc}") from exc
    except REJECTED as exc:
        raise RowRejected(f"{what}: {exc}") from exc
    except psycopg.Error as exc:
        raise ConnectorError(f"{what}: {exc}{_refused_origin(exc)}") from exc


def is_broken(conn: PgConnection | None) -> bool:
    return conn is None or conn.closed or conn.broken
