"""`cdcsync setup` and `cdcsync status` of a MariaDB endpoint, through the CLI.

Before 2026-12-07 setup of a MariaDB source whose user lacked the binlog rights
said "setup complete", and every run then failed (no BINLOG MONITOR: reading the
binlog position; then no REPLICATION SLAVE: the binlog stream). Setup now stops,
naming the endpoint and the GRANT to run; a one-way target still needs neither.

And `cdcsync status` never contacted a MariaDB endpoint (it had no status report):
one that could not be reached (wrong port, unknown host, wrong password) went
unreported, exit 0. It now warns, exit 3, as for the other kinds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.connectors.mysql.helpers import run
from tests.fix_mariadb import MariaDBParams
from tests.pipelines import mariadb_endpoint, sqlite_endpoint, sqlite_run, write_pipeline
from tests.test_cli_quickstart import cdcsync, rows


def _admin(params: MariaDBParams, *statements: str) -> None:
    with pymysql.connect(**{**params, "database": None}, autocommit=True) as c, \
            c.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)


@pytest.fixture
def limited(mariadb_params: MariaDBParams) -> Iterator[tuple[MariaDBParams, str]]:
    """A user of its own with every right on the test database and nothing else."""
    user = f"cdcsync_norepl_{random.randrange(10**8)}"
    db = mariadb_params["database"]
    try:
        _admin(mariadb_params, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'",
               f"GRANT ALL ON `{db}`.* TO '{user}'@'%'")
        yield MariaDBParams(**{**mariadb_params, "user": user, "password": "pw"}), user
    finally:
        _admin(mariadb_params, f"DROP USER IF EXISTS '{user}'@'%'")


def _one_way(tmp: Path, params: MariaDBParams, source: str) -> Path:
    run(params, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50))")
    sqlite_run(tmp / "s.db", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    return write_pipeline(
        tmp, f"rights{random.randrange(10**8)}",
        {"m": mariadb_endpoint(params), "s": sqlite_endpoint(str(tmp / "s.db"))},
        "items", {"m": "items", "s": "items"},
        options=["direction: one-way", f"source: {source}"])


def test_setup_of_a_source_names_the_binlog_rights_its_user_lacks(
        tmp_path: Path, mariadb_params: MariaDBParams,
        limited: tuple[MariaDBParams, str]) -> None:
    mine, user = limited
    p = _one_way(tmp_path, mine, source="m")
    run(mine, "INSERT INTO items VALUES (1, 'one')")

    res = cdcsync("setup", str(p), expect=1)
    out = res.stdout + res.stderr
    assert "setup complete" not in out
    assert "MySQL/MariaDB endpoint m is not ready for capture" in out, out
    assert f"GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO '{user}'@'%'" in out, out

    _admin(mariadb_params, f"GRANT BINLOG MONITOR ON *.* TO '{user}'@'%'")
    res = cdcsync("setup", str(p), expect=1)
    out = res.stdout + res.stderr
    assert f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'" in out, out
    assert "BINLOG MONITOR," not in out, out

    # what setup asks for is enough: the run reads the snapshot and then the binlog
    _admin(mariadb_params, f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'%'")
    cdcsync("setup", str(p))
    cdcsync("run", str(p))
    run(mine, "INSERT INTO items VALUES (2, 'two')")
    cdcsync("run", str(p))
    assert rows(tmp_path / "s.db", "SELECT id, name FROM items ORDER BY id") == [
        (1, "one"), (2, "two")]


def test_setup_of_a_one_way_target_asks_no_binlog_rights(
        tmp_path: Path, limited: tuple[MariaDBParams, str]) -> None:
    mine, _user = limited
    p = _one_way(tmp_path, mine, source="s")
    sqlite_run(tmp_path / "s.db", "INSERT INTO items VALUES (1, 'one')")
    res = cdcsync("setup", str(p))
    assert "GRANT" not in res.stdout + res.stderr
    cdcsync("run", str(p))
    with pymysql.connect(**mine) as c, c.cursor() as cur:
        cur.execute("SELECT id, name FROM items")
        assert cur.fetchall() == ((1, "one"),)


@pytest.mark.parametrize("fault", [{"port": 3399}, {"host": "nohost.invalid"},
                                   {"password": "not-the-password"}],
                         ids=["port", "host", "password"])
def test_status_warns_of_an_unreachable_mariadb_endpoint(
        tmp_path: Path, mariadb_params: MariaDBParams, fault: dict[str, Any]) -> None:
    p = _one_way(tmp_path, mariadb_params, source="m")
    cdcsync("setup", str(p))
    cdcsync("run", str(p))
    info = json.loads(cdcsync("status", str(p), "--json").stdout)
    assert info["warnings"] == []
    assert info["endpoints"]["m"]["gtid"]  # where the binlog ends
    assert info["endpoints"]["m"]["file"]

    broken = MariaDBParams(**{**mariadb_params, **fault})
    p.write_text(p.read_text().replace(mariadb_endpoint(mariadb_params),
                                       mariadb_endpoint(broken)))
    res = cdcsync("status", str(p), "--json", expect=3)
    warnings = json.loads(res.stdout)["warnings"]
    assert any(w.startswith("endpoint m unreachable: ") for w in warnings), warnings
    res = cdcsync("status", str(p), expect=3)
    assert "endpoint m unreachable" in res.stdout, res.stdout
