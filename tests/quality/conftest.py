"""A CRM and a billing system on SQLite files sharing customers, with a quality suite.

Both ends are real SQLite databases set up for capture; the pipeline is a
YAML file loaded by ``config.load_pipeline`` and run by
``sync.engine.run_pipeline``, as ``cdcsync run`` does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

EMAIL = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"

SUITE: dict[str, Any] = {
    "name": "customers",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}},
        {"type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "email", "regex": EMAIL}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "email"}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "name"}},
        {"type": "expect_column_value_lengths_to_be_between",
         "kwargs": {"column": "name", "max_value": 40}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "amount", "min_value": 0}},
        {"type": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "status", "value_set": ["active", "paused", "closed"]}},
    ],
}

CRM_DDL = ("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, email TEXT, "
           "amount DECIMAL(10,2), status TEXT, note TEXT)")
BILLING_DDL = ("CREATE TABLE clients (client_id INTEGER PRIMARY KEY, full_name TEXT, "
               "email TEXT, amount DECIMAL(10,2), status TEXT)")

PIPELINE = """\
pipeline: shop
state:
  url: sqlite:///state.db
batch:
  size: {size}
endpoints:
  crm: {{kind: sqlite, path: crm.db}}
  billing: {{kind: sqlite, path: billing.db}}
entities:
  customers:
    key: [id]
    include: [name, email, amount, status]
    endpoints:
      crm: customers
      billing:
        table: clients
        columns: {{id: client_id, name: full_name}}
    conflict:
      policy: field_merge
      fallback: last_writer_wins
{quality}"""


class Db:
    """Somebody's own connection to one of the files: their writes are user edits."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn = sqlite3.connect(self.path)
        with conn:
            conn.executemany(sql, rows)
        conn.close()


@dataclass
class Shop:
    dir: Path
    pipeline: Path
    crm: Db
    billing: Db
    suite: Path

    def cfg(self) -> Any:
        from config import load_pipeline

        return load_pipeline(self.pipeline)

    def setup(self) -> None:
        from connectors.registry import open_endpoint
        from sync.context import bindings_for

        cfg = self.cfg()
        for name, settings in cfg.endpoints.items():
            ep = open_endpoint(name, settings, pipeline=cfg.pipeline)
            try:
                ep.setup([bindings_for(cfg, e)[name] for e in cfg.entities], cfg.pipeline)
            finally:
                ep.close()

    def run(self) -> Any:
        from sync.engine import run_pipeline

        return run_pipeline(self.cfg())

    def customer(self, key: int) -> tuple[Any, ...] | None:
        """(name, email, amount, status) at the CRM."""
        rows = self.crm("SELECT name, email, amount, status FROM customers WHERE id = ?", key)
        return rows[0] if rows else None

    def client(self, key: int) -> tuple[Any, ...] | None:
        """(name, email, amount, status) at billing."""
        rows = self.billing("SELECT full_name, email, amount, status FROM clients "
                            "WHERE client_id = ?", key)
        return rows[0] if rows else None

    def items(self, **where: Any) -> list[dict[str, Any]]:
        """Quarantine rows (decoded), oldest first, filtered by column equality."""
        conn = sqlite3.connect(self.dir / "state.db")
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM quarantine ORDER BY id")]
        finally:
            conn.close()
        for r in rows:
            r["failures"] = json.loads(r["failures"])
            r["change"] = json.loads(r["change"])
        return [r for r in rows if all(r[k] == v for k, v in where.items())]

    def audit(self) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.dir / "state.db")
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM audit ORDER BY id")]
        finally:
            conn.close()
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    @contextmanager
    def context(self) -> Iterator[Any]:
        from sync.context import open_pipeline

        with open_pipeline(self.cfg()) as ctx:
            yield ctx


def make_shop(tmp_path: Path, *, suite: dict[str, Any] | None = SUITE,
              size: int = 10_000) -> Shop:
    crm, billing = Db(tmp_path / "crm.db"), Db(tmp_path / "billing.db")
    crm(CRM_DDL)
    billing(BILLING_DDL)
    suite_path = tmp_path / "quality" / "customers.json"
    quality = ""
    if suite is not None:
        suite_path.parent.mkdir()
        suite_path.write_text(json.dumps(suite, indent=2))
        quality = "    quality:\n      suite: quality/customers.json\n"
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(PIPELINE.format(size=size, quality=quality))
    return Shop(tmp_path, pipeline, crm, billing, suite_path)


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return make_shop(tmp_path)
