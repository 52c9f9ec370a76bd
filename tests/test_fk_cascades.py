"""Foreign-key actions at a MariaDB source, which InnoDB takes without logging them.

``ON DELETE CASCADE`` removed a parent's children at the source and nowhere else:
the binlog holds the parent's delete only, so the children stayed at every
target for ever (`cdcsync verify` showed them as extra rows). Likewise ``ON DELETE
SET NULL`` and ``ON UPDATE CASCADE``. The reader now reports each referenced row
deleted or re-keyed, and the engine makes the changes the server made from the
rows it knows (connectors/mysql/cascades.py, sync/cascades.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.connectors.mysql.helpers import query, run
from tests.daemon.helpers import Daemon, cli, wait_for
from tests.pipelines import mariadb_endpoint, pg_endpoint
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

SCHEMA = (
    "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE child (id INT PRIMARY KEY, pid INT, v VARCHAR(20),"
    " CONSTRAINT child_parent FOREIGN KEY (pid) REFERENCES parent (id)"
    " ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE grand (id INT PRIMARY KEY, cid INT,"
    " FOREIGN KEY (cid) REFERENCES child (id) ON DELETE SET NULL)",
    # a tree: a manager's delete leaves the reports without one
    "CREATE TABLE staff (id INT PRIMARY KEY, boss INT,"
    " FOREIGN KEY (boss) REFERENCES staff (id) ON DELETE SET NULL)",
)
SEED = (
    "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2'), (4, 'p4')",
    "INSERT INTO child VALUES (10, 1, 'a'), (11, 1, 'b'), (20, 2, 'c'), (40, 4, 'd')",
    "INSERT INTO grand VALUES (100, 10), (101, 20), (102, 11)",
    "INSERT INTO staff VALUES (1, NULL), (2, 1), (3, 1), (4, 2)",
)


def _entities(target: str, names: tuple[str, ...], options: str) -> str:
    return "".join(f"""
  {n}:
    key: [id]{options}
    endpoints: {{m: {n}, {target}: {n}}}""" for n in names)


def _pipeline(tmp: Path, name: str, endpoints: dict[str, str], target: str,
              names: tuple[str, ...], extra: str = "",
              options: str = "\n    direction: one-way\n    source: m") -> Path:
    p = tmp / "p.yaml"
    p.write_text(f"pipeline: {name}\nstate: {{url: \"sqlite:///{tmp}/state.db\"}}\n{extra}"
                 "endpoints:\n" + "".join(f"  {k}: {v}\n" for k, v in endpoints.items())
                 + "entities:" + _entities(target, names, options) + "\n")
    return p


def _sqlite_family(tmp: Path) -> None:
    with sqlite3.connect(tmp / "s.db") as c:
        c.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("CREATE TABLE child (id INTEGER PRIMARY KEY, pid INT, v TEXT)")
    c.close()


def test_unlogged_cascades_reach_a_postgres_target(
        tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn_factory: Callable[[], str]
) -> None:
    mp, b = mariadb_params, pg_dsn_factory()
    run(mp, *SCHEMA, *SEED)
    names = ("parent", "child", "grand", "staff")
    p = _pipeline(tmp_path, "fkpg", {"m": mariadb_endpoint(mp), "b": pg_endpoint(b)}, "b",
                  names)
    try:
        said = cdcsync("setup", str(p)).stdout
        assert ("foreign key child_parent (child -> parent): ON DELETE CASCADE and ON UPDATE"
                " CASCADE is not in the binlog") in said, said
        assert run_json(p)["totals"]["applied"] == 14
        run(mp,
            "INSERT INTO child VALUES (12, 1, 'new')",  # in the same batch as the delete
            "UPDATE child SET pid = 4 WHERE id = 11",  # moved away first: it stays
            "DELETE FROM parent WHERE id = 1",  # children 10 and 12 go, grand 100 unparented
            "UPDATE parent SET id = 3 WHERE id = 2",  # child 20 follows
            "DELETE FROM staff WHERE id = 1")  # 2 and 3 lose their boss; 4 keeps 2
        run_json(p)
        want = {
            "parent": "SELECT id, name FROM parent ORDER BY id",
            "child": "SELECT id, pid, v FROM child ORDER BY id",
            "grand": "SELECT id, cid FROM grand ORDER BY id",
            "staff": "SELECT id, boss FROM staff ORDER BY id",
        }
        for table, sql in want.items():
            assert pg(b, sql) == [tuple(r) for r in query(mp, sql)], table
        assert pg(b, want["child"]) == [(11, 4, "b"), (20, 3, "c"), (40, 4, "d")]
        assert pg(b, want["grand"]) == [(100, None), (101, 20), (102, 11)]
        assert pg(b, want["staff"]) == [(2, None), (3, None), (4, 2)]
        assert cdcsync("verify", str(p)).returncode == 0
        # the fixed point: nothing more to apply
        assert run_json(p)["totals"]["applied"] == 0
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_a_cascade_from_an_unbound_table_into_a_composite_key(
        tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn_factory: Callable[[], str]
) -> None:
    """The referenced table need not be synchronised; a referencing column in the key
    makes the action a new key (ON UPDATE CASCADE: the old row's delete, the new one's
    insert)."""
    mp, b = mariadb_params, pg_dsn_factory()
    run(mp, "CREATE TABLE account (code VARCHAR(10) PRIMARY KEY)",
        "CREATE TABLE line (code VARCHAR(10), n INT, amount DECIMAL(8,2), PRIMARY KEY (code, n),"
        " FOREIGN KEY (code) REFERENCES account (code) ON DELETE CASCADE ON UPDATE CASCADE)",
        "INSERT INTO account VALUES ('a'), ('b')",
        "INSERT INTO line VALUES ('a', 1, 1.50), ('a', 2, 2.50), ('b', 1, 9.99)")
    p = tmp_path / "p.yaml"
    p.write_text(f"""pipeline: fkkey
state: {{url: "sqlite:///{tmp_path}/state.db"}}
endpoints:
  m: {mariadb_endpoint(mp)}
  b: {pg_endpoint(b)}
entities:
  line:
    key: [code, n]
    direction: one-way
    source: m
    endpoints: {{m: line, b: line}}
""")
    try:
        cdcsync("setup", str(p))
        run_json(p)
        run(mp, "UPDATE account SET code = 'A' WHERE code = 'a'",
            "DELETE FROM account WHERE code = 'b'")
        run_json(p)
        assert pg(b, "SELECT code, n, amount::text FROM line ORDER BY n") == [
            ("A", 1, "1.50"), ("A", 2, "2.50")]
        assert cdcsync("verify", str(p)).returncode == 0
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_the_daemon_follows_unlogged_cascades(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    run(mp, *SCHEMA[:2], "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')",
        "INSERT INTO child VALUES (10, 1, 'a'), (20, 2, 'c')")
    _sqlite_family(tmp_path)

    def rows() -> list[tuple[Any, ...]]:
        with sqlite3.connect(tmp_path / "s.db") as c:
            return list(c.execute("SELECT id, pid FROM child ORDER BY id"))

    p = _pipeline(tmp_path, "fkd", {"m": mariadb_endpoint(mp),
                                    "s": f"{{kind: sqlite, path: {tmp_path}/s.db}}"},
                  "s", ("parent", "child"),
                  extra="daemon: {metrics_port: 0, poll_ms: 10}\n")
    cli("setup", str(p))
    d = Daemon(p)
    try:
        d.wait_ready()
        wait_for(lambda: rows() == [(10, 1), (20, 2)], what="the snapshot")
        run(mp, "INSERT INTO child VALUES (11, 1, 'b')", "DELETE FROM parent WHERE id = 1")
        wait_for(lambda: rows() == [(20, 2)], what="the cascaded deletes")
    finally:
        code, _ = d.terminate()
        cli("teardown", str(p), "--force")
    assert code == 0, d.output()


def test_an_edit_elsewhere_of_a_row_the_cascade_deleted_is_a_conflict(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    """Both ways: the cascaded delete is decided like any delete, so an edit made at the
    other endpoint meanwhile waits for a steward instead of being lost or winning
    silently."""
    mp = mariadb_params
    run(mp, *SCHEMA[:2], "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2')",
        "INSERT INTO child VALUES (10, 1, 'a'), (11, 1, 'b'), (20, 2, 'c')")
    _sqlite_family(tmp_path)
    p = _pipeline(tmp_path, "fkboth", {"m": mariadb_endpoint(mp),
                                       "s": f"{{kind: sqlite, path: {tmp_path}/s.db}}"},
                  "s", ("parent", "child"), options="\n    conflict: {policy: manual}")
    try:
        cdcsync("setup", str(p))
        run_json(p)
        run(mp, "DELETE FROM parent WHERE id = 1")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("UPDATE child SET v = 'edited' WHERE id = 10")
        c.close()
        out = run_json(p, expect=3)  # 3: a conflict waits for a steward
        assert out["totals"]["parked"] == 1, out
        with sqlite3.connect(tmp_path / "s.db") as c:  # 11 went; 10 waits, as edited
            assert list(c.execute("SELECT id, v FROM child ORDER BY id")) == [
                (10, "edited"), (20, "c")]
        c.close()
        listed = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
        assert [(c["entity"], c["key"]) for c in listed] == [("child", '{"id":10}')], listed
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)


def test_two_foreign_keys_of_a_row_acting_in_one_transaction_both_arrive(
        tmp_path: Path, mariadb_params: dict[str, Any], pg_dsn_factory: Callable[[], str]
) -> None:
    """Each change made of an action has a position of its own: the second change of
    one row at one position was taken for the first read again, and dropped."""
    mp, b = mariadb_params, pg_dsn_factory()
    run(mp, "CREATE TABLE team (id INT PRIMARY KEY)", "CREATE TABLE site (id INT PRIMARY KEY)",
        "CREATE TABLE member (id INT PRIMARY KEY, team INT, site INT,"
        " FOREIGN KEY (team) REFERENCES team (id) ON DELETE SET NULL,"
        " FOREIGN KEY (site) REFERENCES site (id) ON DELETE SET NULL)",
        "INSERT INTO team VALUES (1), (2)", "INSERT INTO site VALUES (1), (2)",
        "INSERT INTO member VALUES (10, 1, 1), (20, 2, 2)")
    p = _pipeline(tmp_path, "fktwo", {"m": mariadb_endpoint(mp), "b": pg_endpoint(b)}, "b",
                  ("member",))
    try:
        cdcsync("setup", str(p))
        run_json(p)
        run(mp, "DELETE team, site FROM team, site WHERE team.id = 1 AND site.id = 1")
        run_json(p)
        assert pg(b, "SELECT id, team, site FROM member ORDER BY id") == [
            (10, None, None), (20, 2, 2)]
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
