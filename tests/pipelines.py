"""Pipeline files for end-to-end tests: one entity over a few endpoints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def pg_endpoint(dsn: str) -> str:
    return f'{{kind: postgres, dsn: "{dsn}"}}'


def sqlite_endpoint(path: str = "s.db") -> str:
    return f"{{kind: sqlite, path: {path}}}"


def mariadb_endpoint(mp: Mapping[str, Any]) -> str:
    return (f'{{kind: mysql, host: "{mp["host"]}", port: {mp["port"]}, user: "{mp["user"]}",'
            f' password: "{mp["password"]}", database: "{mp["database"]}"}}')


def write_pipeline(tmp: Path, pipeline: str, endpoints: Mapping[str, str], entity: str,
                   tables: Mapping[str, str], *, key: Sequence[str] = ("id",),
                   options: Sequence[str] = ()) -> Path:
    """``tmp/p.yaml``: ``entity`` keyed by ``key`` at ``tables`` (endpoint -> table), a
    SQLite state store, and entity ``options`` (YAML lines such as ``direction: one-way``)."""
    lines = [f"pipeline: {pipeline}", "state: {url: sqlite:///state.db}", "endpoints:",
             *(f"  {name}: {spec}" for name, spec in endpoints.items()),
             "entities:", f"  {entity}:", f"    key: [{', '.join(key)}]",
             *(f"    {line}" for line in options),
             "    endpoints: {" + ", ".join(f'{n}: "{t}"' for n, t in tables.items()) + "}"]
    p = tmp / "p.yaml"
    p.write_text("\n".join(lines) + "\n")
    return p


def sqlite_run(db: Path, *statements: str) -> None:
    """Run ``statements`` in one connection to the SQLite file ``db``, committed."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        for statement in statements:
            conn.execute(statement)


def sqlite_pair(tmp: Path, pipeline: str, table: str, ddl: Sequence[str]
                ) -> tuple[Path, Path, Path]:
    """Two SQLite files ``a.db`` and ``b.db`` with ``ddl`` run in each, and a
    bidirectional pipeline between their ``table``: (a, b, the pipeline file)."""
    a, b = tmp / "a.db", tmp / "b.db"
    for db in (a, b):
        sqlite_run(db, *ddl)
    p = write_pipeline(tmp, pipeline, {"a": sqlite_endpoint(str(a)), "b": sqlite_endpoint(str(b))},
                       table, {"a": table, "b": table})
    return a, b, p


def mariadb_to_pg(tmp: Path, mp: Mapping[str, Any], dsn: str, table: str = "items",
                  options: Sequence[str] = ()) -> Path:
    """A one-way pipeline ``m`` (MariaDB) -> ``t`` (PostgreSQL) of ``table``, named after
    the PostgreSQL database (whose fixture then drops its origins)."""
    from tests.connectors.postgres.helpers import pipeline_of

    return write_pipeline(tmp, pipeline_of(dsn), {"m": mariadb_endpoint(mp), "t": pg_endpoint(dsn)},
                          table, {"m": table, "t": table},
                          options=["direction: one-way", "source: m", *options])
