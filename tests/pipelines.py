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
