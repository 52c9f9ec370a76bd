"""Shared helpers of the PostgreSQL connector tests (fixtures are in conftest.py)."""

from __future__ import annotations

import types
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from connectors.base import Binding
from connectors.postgres import PostgresEndpoint, open_endpoint


def settings(dsn: str, **over: Any) -> types.SimpleNamespace:
    """Endpoint settings as config/ builds them (duck-typed)."""
    base: dict[str, Any] = dict(
        dsn=dsn, host=None, port=None, user=None, password=None, dbname=None, slot=None,
        publication=None, schema="public", connect_timeout=5,
    )
    base.update(over)
    return types.SimpleNamespace(**base)


def pipeline_of(dsn: str) -> str:
    """Tests name the pipeline after the database: the fixture then drops its origins."""
    return str(conninfo_to_dict(dsn)["dbname"])


def endpoint(dsn: str, name: str = "a", **over: Any) -> PostgresEndpoint:
    return open_endpoint(name, settings(dsn, **over), pipeline=pipeline_of(dsn))


def binding(table: str = "t", endpoint: str = "a", key: tuple[str, ...] = ("id",),
            entity: str | None = None, **kw: Any) -> Binding:
    return Binding(entity=entity or table, endpoint=endpoint, table=table, key=key, **kw)


def sql(dsn: str, *statements: str) -> None:
    """Run statements as a user would, in one autocommit session."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s)


def query(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def slot_confirmed(dsn: str, slot: str) -> int:
    from connectors.postgres.pgoutput import parse_lsn

    rows = query(dsn, "SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                 " WHERE slot_name = %s", (slot,))
    return parse_lsn(rows[0][0])
