"""MariaDB's ``BIGINT UNSIGNED`` holds up to 2^64-1; a SQLite ``INTEGER`` 64 signed bits.

Setup created ``INTEGER`` for it at a one-way SQLite target, and every row past
2^63-1 was refused there with sqlite3's "Python int too large to convert to SQLite
INTEGER" (naming neither the column nor a way out). The column is now created
``DECIMAL TEXT``, which keeps every digit, and a value an existing ``INTEGER``
column cannot hold is refused with its column and that way out. Through the CLI,
against the real MariaDB.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import run
from tests.pipelines import mariadb_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json

BIG = 18446744073709551615


def one_way(tmp: Path, mp: dict[str, Any], s: Path) -> Path:
    p = write_pipeline(tmp, "unsigned", {"m": mariadb_endpoint(mp), "s": sqlite_endpoint(str(s))},
                       "u", {"m": "u", "s": "u"}, options=["direction: one-way", "source: m"])
    p.write_text(p.read_text().replace("sqlite:///state.db", f"sqlite:///{tmp}/state.db"))
    return p


def test_a_created_sqlite_target_keeps_every_digit_of_bigint_unsigned(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE u (id int PRIMARY KEY, big BIGINT UNSIGNED)",
        f"INSERT INTO u VALUES (1, {BIG}), (2, 9223372036854775808), (3, 7), (4, NULL)")
    s = tmp_path / "s.db"
    sqlite3.connect(s).close()
    p = one_way(tmp_path, mariadb_params, s)
    cdcsync("setup", str(p))
    out = run_json(p)
    assert out["totals"]["rejected"] == 0 and out["totals"]["applied"] == 4, out
    run(mariadb_params, "UPDATE u SET big = big - 1 WHERE id = 1")
    assert run_json(p)["totals"]["applied"] == 1
    with sqlite3.connect(s) as conn:
        got = conn.execute("SELECT id, CAST(big AS TEXT) FROM u ORDER BY id").fetchall()
    assert got == [(1, str(BIG - 1)), (2, "9223372036854775808"), (3, "7"), (4, None)]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True]
    assert run_json(p)["totals"]["applied"] == 0  # the fixed point: read back equal


def test_an_integer_column_refuses_what_it_cannot_hold_naming_the_way_out(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE u (id int PRIMARY KEY, big BIGINT UNSIGNED)",
        f"INSERT INTO u VALUES (1, {BIG}), (2, 5)")
    s = tmp_path / "s.db"
    with sqlite3.connect(s) as conn:
        conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY, big INTEGER)")
    p = one_way(tmp_path, mariadb_params, s)
    cdcsync("setup", str(p))
    out = run_json(p, expect=3)
    assert out["totals"]["rejected"] == 1, out
    with sqlite3.connect(s) as conn:
        assert conn.execute("SELECT id, big FROM u").fetchall() == [(2, 5)]
    letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
    assert len(letters) == 1 and letters[0]["keys"] == ['{"id":1}'], letters
    assert "column 'big': a value it cannot take" in letters[0]["error"], letters[0]["error"]
    assert f"{BIG} does not fit SQLite's 64-bit INTEGER: declare the column DECIMAL TEXT" \
        in letters[0]["error"], letters[0]["error"]
