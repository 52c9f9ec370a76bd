"""PostgreSQL arrays at endpoints that hold them as JSON (MariaDB, SQLite) or as text.

An array of decimals, timestamps, dates or UUIDs was refused by a MariaDB target
("Object of type Decimal is not JSON serializable": a dead letter per row),
rounded through a float at a SQLite JSON column, and written as Python's repr
(``[Decimal('1.50'), None]``) into a SQLite TEXT column, which the next read
of that endpoint could not parse (the run stopped). And `cdcsync verify`
reported every such row as differing. Arrays and documents are now written as
exact JSON (conflict.canonical.exact_json) and compared as JSON reads them back.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conflict.canonical import coerce, exact_json, parse_json
from tests.connectors.mysql.helpers import query
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

COLUMNS = ("na numeric[], ta timestamptz[], da date[], ua uuid[], ba bytea[], ja jsonb[],"
           " ia int[], fa float8[]")
ROW = ("INSERT INTO t VALUES (1, '{1.50,2.25,NULL,12345678901234.000001}',"
       " '{\"2024-01-01 12:00:00+02\",\"2024-06-30 23:59:59.5+00\"}', '{2024-01-02}',"
       " '{00000000-0000-0000-0000-000000000005}', '{\"\\\\x6162\"}',"
       " ARRAY['{\"a\": 1.5}'::jsonb], '{1,NULL,3}', '{0.1,1e300}')")


def test_exact_json_keeps_digits_and_spells_what_json_lacks() -> None:
    v = [decimal.Decimal("1.50"), decimal.Decimal("12345678901234.000001"), None,
         dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
         dt.date(2024, 1, 2), uuid.UUID(int=5), b"ab", {"z": 1, "a": [True]}]
    assert exact_json(v) == ('[1.50,12345678901234.000001,null,"2024-01-01T10:00:00+00:00",'
                             '"2024-01-02","00000000-0000-0000-0000-000000000005","\\\\x6162",'
                             '{"z":1,"a":[true]}]')
    assert exact_json({"z": 1, "a": 2}, sort_keys=True) == '{"a":2,"z":1}'
    assert json.loads(exact_json([2**70, decimal.Decimal("3")])) == [2**70, 3]
    for bad in (float("nan"), decimal.Decimal("NaN")):
        with pytest.raises(ValueError):
            json.loads(exact_json([bad]), parse_constant=_refuse)
    # a document or an array kept in a text column is JSON, which reads back
    assert coerce([decimal.Decimal("1.50"), None], "text") == "[1.50,null]"
    assert parse_json(coerce({"k": [1]}, "text")) == {"k": [1]}


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _tables(tmp: Path, pg_dsn_factory: Callable[[], str]) -> str:
    """The source's table with a row, and the user's own at SQLite (JSON and TEXT)."""
    a = pg_dsn_factory()
    pg(a, f"CREATE TABLE t (id int PRIMARY KEY, {COLUMNS})", ROW)
    with sqlite3.connect(tmp / "s.db") as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, na JSON, ta TEXT, da JSON, ua TEXT,"
                  " ba JSON, ja JSON, ia TEXT, fa JSON)")
    c.close()
    return a


def _pipeline(tmp: Path, name: str, endpoints: dict[str, str], options: str = "") -> Path:
    p = tmp / "p.yaml"
    p.write_text(f"pipeline: {name}\nstate: {{url: \"sqlite:///{tmp}/state.db\"}}\nendpoints:\n"
                 + "".join(f"  {n}: {spec}\n" for n, spec in endpoints.items())
                 + f"entities:\n  t:\n    key: [id]\n    {options}endpoints: {{"
                 + ", ".join(f"{n}: t" for n in endpoints) + "}\n")
    return p


def test_arrays_reach_mariadb_and_sqlite_as_json_and_verify_in_sync(
        tmp_path: Path, pg_dsn_factory: Callable[[], str], mariadb_params: dict[str, Any]
) -> None:
    a = _tables(tmp_path, pg_dsn_factory)
    p = _pipeline(tmp_path, "arrays", {"a": pg_endpoint(a), "m": mariadb_endpoint(mariadb_params),
                                       "s": sqlite_endpoint(str(tmp_path / "s.db"))},
                  "direction: one-way\n    source: a\n    ")
    try:
        cdcsync("setup", str(p))  # creates t at m
        out = run_json(p)
        assert out["totals"]["applied"] == 2, out
        with sqlite3.connect(tmp_path / "s.db") as c:
            got = c.execute("SELECT na, ta, ua, ia FROM t").fetchone()
        c.close()
        assert got == ("[1.50,2.25,null,12345678901234.000001]",
                       '["2024-01-01T10:00:00+00:00","2024-06-30T23:59:59.500000+00:00"]',
                       '["00000000-0000-0000-0000-000000000005"]', "[1,null,3]")
        (na, ta, ba), = query(mariadb_params, "SELECT na, ta, ba FROM t")
        assert json.loads(na)[:3] == [1.5, 2.25, None]
        assert json.loads(ta) == ["2024-01-01T10:00:00+00:00", "2024-06-30T23:59:59.500000+00:00"]
        assert json.loads(ba) == ["\\x6162"]
        res = cdcsync("verify", str(p), "--json")
        assert [e["in_sync"] for e in json.loads(res.stdout)] == [True], res.stdout
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_arrays_edited_as_json_at_sqlite_come_back_typed(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a = _tables(tmp_path, pg_dsn_factory)
    p = _pipeline(tmp_path, "arrays2", {"a": pg_endpoint(a),
                                        "s": sqlite_endpoint(str(tmp_path / "s.db"))})
    try:
        cdcsync("setup", str(p))
        run_json(p)
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("""UPDATE t SET na = '[3.25, 4]', ta = '["2025-05-04T23:02:03+00:00"]',
                         da = '["2025-01-01", null]', ia = '[7]' WHERE id = 1""")
        c.close()
        assert run_json(p)["totals"]["applied"] == 1
        assert pg(a, "SELECT na::text, ta, da::text, ia::text FROM t") == [
            ("{3.25,4}", [dt.datetime(2025, 5, 4, 23, 2, 3, tzinfo=dt.UTC)],
             "{2025-01-01,NULL}", "{7}")]
        res = cdcsync("verify", str(p), "--json")
        assert [e["in_sync"] for e in json.loads(res.stdout)] == [True], res.stdout
        assert run_json(p)["totals"]["applied"] == 0  # the fixed point
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
