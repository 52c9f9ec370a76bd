"""Pipelines sharing a table where every pipeline's writes are tagged alike.

On SQLite (the triggers' session marker) and MariaDB (``skip_replication``) a
reader skips every write of the service, whichever pipeline made it. Chaining
pipelines through a table (A -> B in one, B -> C in another) therefore lost B's
writes at C without a word; two pipelines reading one SQLite table pruned each
other's unread log rows. ``cdcsync setup`` now refuses both, naming the table
and the other pipeline, and a teardown leaves what another pipeline still uses.
Through the real CLI.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pymysql

from tests.test_cli_quickstart import cdcsync, rows, run_json


def one_way(tmp: Path, name: str, source: tuple[str, str], target: tuple[str, str],
            table: str = "x") -> Path:
    """A one-way pipeline of table ``table`` between two endpoints (name, YAML)."""
    p = tmp / f"{name}.yaml"
    p.write_text(f"""
pipeline: {name}
state: {{url: sqlite:///{name}-state.db}}
endpoints:
  {source[0]}: {source[1]}
  {target[0]}: {target[1]}
entities:
  {table}:
    key: [id]
    direction: one-way
    source: {source[0]}
    endpoints: {{{source[0]}: {table}, {target[0]}: {table}}}
""")
    return p


def sqlite_files(tmp: Path, *names: str) -> dict[str, tuple[str, str]]:
    out = {}
    for name in names:
        with sqlite3.connect(tmp / f"{name}.db") as c:
            c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT)")
        c.close()
        out[name] = (name, f"{{kind: sqlite, path: {name}.db}}")
    return out


def test_sqlite_refuses_a_chain_and_a_second_reader_of_one_table(tmp_path: Path) -> None:
    ep = sqlite_files(tmp_path, "hub", "a", "b", "c")
    reads_hub = one_way(tmp_path, "p1", ep["hub"], ep["b"])
    cdcsync("setup", str(reads_hub))
    # A -> hub in another pipeline: p1 would never read those writes.
    writes_hub = one_way(tmp_path, "p2", ep["a"], ep["hub"])
    res = cdcsync("setup", str(writes_hub), expect=1)
    assert "table 'x'" in res.stderr and "pipeline 'p1' reads it" in res.stderr, res.stderr
    assert "One table, one pipeline" in res.stderr and "Traceback" not in res.stderr
    # hub -> c in another pipeline: each would prune the log past the other.
    res = cdcsync("setup", str(one_way(tmp_path, "p3", ep["hub"], ep["c"])), expect=1)
    assert "pipeline 'p1' reads it too" in res.stderr, res.stderr
    # Nothing of the refused pipelines was recorded.
    assert rows(tmp_path / "hub.db", "SELECT json_extract(value, '$.pipeline') FROM"
                                     " _cdcsync_meta WHERE name LIKE 'pipeline:%'") == [("p1",)]
    # Once p1 is torn down, the chain's first link may take the table.
    cdcsync("teardown", str(reads_hub))
    cdcsync("setup", str(writes_hub))
    with sqlite3.connect(tmp_path / "a.db") as c:
        c.execute("INSERT INTO x VALUES (1, 'from a')")
    c.close()
    assert run_json(writes_hub)["totals"]["applied"] == 1
    assert rows(tmp_path / "hub.db", "SELECT * FROM x") == [(1, "from a")]


def test_sqlite_a_pipeline_with_two_endpoints_in_one_file_keeps_both_claims(
        tmp_path: Path) -> None:
    """One pipeline copying table x to table y of the same file has two endpoints
    there; the second's setup replaced the first's record, and a pipeline writing x
    was let in."""
    with sqlite3.connect(tmp_path / "one.db") as c:
        c.execute("CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT)")
        c.execute("CREATE TABLE y (id INTEGER PRIMARY KEY, v TEXT)")
    c.close()
    p = tmp_path / "p.yaml"
    p.write_text("""
pipeline: p
state: {url: sqlite:///p-state.db}
endpoints:
  left: {kind: sqlite, path: one.db}
  right: {kind: sqlite, path: one.db}
entities:
  x: {key: [id], direction: one-way, source: left, endpoints: {left: x, right: y}}
""")
    cdcsync("setup", str(p))
    ep = sqlite_files(tmp_path, "h")
    res = cdcsync("setup", str(one_way(tmp_path, "q", ep["h"], ("one", "{kind: sqlite, "
                                                                  "path: one.db}"))), expect=1)
    assert "table 'x': pipeline 'p' reads it" in res.stderr, res.stderr


def test_sqlite_two_pipelines_writing_one_table_share_it_and_its_triggers(
        tmp_path: Path) -> None:
    """Fan-in: neither reads the table, so neither misses anything; tearing one down
    keeps the triggers, which the other's sink needs for its row versions."""
    ep = sqlite_files(tmp_path, "hub", "a", "d")
    from_a = one_way(tmp_path, "pa", ep["a"], ep["hub"])
    from_d = one_way(tmp_path, "pd", ep["d"], ep["hub"])
    cdcsync("setup", str(from_a))
    cdcsync("setup", str(from_d))
    res = cdcsync("teardown", str(from_a))
    assert "kept the capture triggers on x: pipeline 'pd'" in res.stdout, res.stdout
    assert rows(tmp_path / "hub.db", "SELECT count(*) FROM sqlite_master"
                                     " WHERE type = 'trigger'") == [(4,)]
    with sqlite3.connect(tmp_path / "d.db") as c:
        c.execute("INSERT INTO x VALUES (7, 'from d')")
    c.close()
    assert run_json(from_d)["totals"]["applied"] == 1
    with sqlite3.connect(tmp_path / "d.db") as c:
        c.execute("UPDATE x SET v = 'again' WHERE id = 7")
    c.close()
    assert run_json(from_d)["totals"]["applied"] == 1
    assert rows(tmp_path / "hub.db", "SELECT * FROM x") == [(7, "again")]
    cdcsync("teardown", str(from_d))
    assert rows(tmp_path / "hub.db", "SELECT count(*) FROM sqlite_master WHERE name LIKE"
                                     " '\\_cdcsync%' ESCAPE '\\'") == [(0,)]


def test_mariadb_refuses_a_pipeline_reading_a_table_another_writes(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE x (id INT PRIMARY KEY, v VARCHAR(20))")
    conn.close()
    maria = ("maria", f"{{kind: mysql, host: \"{mp['host']}\", port: {mp['port']}, "
                      f"user: \"{mp['user']}\", password: \"{mp['password']}\", "
                      f"database: \"{mp['database']}\"}}")
    ep = sqlite_files(tmp_path, "a", "b", "c")
    reads = one_way(tmp_path, "m1", maria, ep["b"])
    cdcsync("setup", str(reads))
    # MariaDB's readers are independent: two pipelines may both read a table.
    also_reads = one_way(tmp_path, "m2", maria, ep["c"])
    cdcsync("setup", str(also_reads))
    writes = one_way(tmp_path, "m3", ep["a"], maria)
    res = cdcsync("setup", str(writes), expect=1)
    assert "table 'x'" in res.stderr and "pipeline 'm1' reads it" in res.stderr, res.stderr
    assert "pipeline 'm2' reads it" in res.stderr, res.stderr
    # How to forget pipelines that are gone: the statements given work.
    statements = res.stderr.split("forget it here: ")[1].strip().split("; ")
    assert len(statements) == 2 and all("cdcsync_pipelines" in s for s in statements)
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        assert [cur.execute(s) for s in statements] == [1, 1]
    conn.close()
    cdcsync("setup", str(writes))
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SELECT `pipeline`, `endpoint`, `tbl`, `reads`, `writes`"
                    " FROM cdcsync_pipelines")
        assert cur.fetchall() == (("m3", "maria", "x", 0, 1),)
    conn.close()
    cdcsync("teardown", str(writes))
    cdcsync("teardown", str(reads))  # (their records were forgotten above)
    cdcsync("teardown", str(also_reads))
    conn = pymysql.connect(**mp, autocommit=True)
    with conn.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'cdcsync%%'")
        assert cur.fetchall() == ()
    conn.close()


def test_postgres_pipelines_chained_through_a_table_pass_each_others_writes_on(
        tmp_path: Path, pg_dsn: str) -> None:
    """PostgreSQL tags writes per pipeline (replication origins), so a hub table there
    may be shared: a <-> hub in one pipeline, hub <-> c in another. Each one's writes
    at the hub reach the other pipeline's endpoint, and nothing loops."""
    import psycopg

    from tests.connectors.postgres.helpers import pipeline_of

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE x (id int PRIMARY KEY, v text)")
    ep = sqlite_files(tmp_path, "a", "c")
    hub = ("hub", f"{{kind: postgres, dsn: \"{pg_dsn}\"}}")
    base = pipeline_of(pg_dsn)  # the fixture drops the origins named after the database

    def both_ways(name: str, other: tuple[str, str]) -> Path:
        p = tmp_path / f"{name}.yaml"
        p.write_text(f"""
pipeline: {name}
state: {{url: sqlite:///{name}-state.db}}
endpoints:
  {hub[0]}: {hub[1]}
  {other[0]}: {other[1]}
entities:
  x:
    key: [id]
    endpoints: {{hub: x, {other[0]}: x}}
""")
        cdcsync("setup", str(p))
        return p

    left, right = both_ways(f"{base}_left", ep["a"]), both_ways(f"{base}_right", ep["c"])
    try:
        run_json(left)
        run_json(right)
        with sqlite3.connect(tmp_path / "a.db") as c:
            c.execute("INSERT INTO x VALUES (1, 'from a')")
        c.close()
        with sqlite3.connect(tmp_path / "c.db") as c:
            c.execute("INSERT INTO x VALUES (2, 'from c')")
        c.close()
        for _ in range(2):  # a -> hub, hub -> c (and back the other way)
            run_json(left)
            run_json(right)
        want = [(1, "from a"), (2, "from c")]
        assert rows(tmp_path / "a.db", "SELECT * FROM x ORDER BY id") == want
        assert rows(tmp_path / "c.db", "SELECT * FROM x ORDER BY id") == want
        # The fixed point: nothing comes back to either pipeline.
        assert run_json(left)["totals"]["read"] == 0
        assert run_json(right)["totals"]["read"] == 0
        cdcsync("verify", str(left))
        cdcsync("verify", str(right))
    finally:
        cdcsync("teardown", str(left))
        cdcsync("teardown", str(right))


def test_sqlite_a_gone_pipelines_record_is_forgotten_with_the_statement_given(
        tmp_path: Path) -> None:
    """A pipeline deleted without its teardown keeps its tables: the refusal says how
    to forget it, and that statement works (also on a record of the first format,
    named after the pipeline alone)."""
    ep = sqlite_files(tmp_path, "hub", "a")
    with sqlite3.connect(tmp_path / "hub.db") as c:
        c.execute("CREATE TABLE _cdcsync_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute("INSERT INTO _cdcsync_meta VALUES ('pipeline:old', ?)",
                  ('{"reads": ["x"], "writes": ["x"]}',))
    c.close()
    writes_hub = one_way(tmp_path, "p2", ep["a"], ep["hub"])
    res = cdcsync("setup", str(writes_hub), expect=1)
    assert "pipeline 'old' reads it" in res.stderr, res.stderr
    statement = res.stderr.split("forget it here: ")[1].strip()
    with sqlite3.connect(tmp_path / "hub.db") as c:
        assert c.execute(statement).rowcount == 1
    c.close()
    cdcsync("setup", str(writes_hub))


def test_sqlite_a_reader_whose_unread_changes_another_pruned_says_so(tmp_path: Path) -> None:
    """Two configurations with one pipeline name (a copied file whose target was
    changed, its name not) read one table: setup cannot tell them apart, and each
    run pruned what the other had not read, which then never reached its target.
    The second now stops with what happened and how to recover, and loses nothing
    more."""
    ep = sqlite_files(tmp_path, "hub", "b", "c")
    to_b = one_way(tmp_path, "copy", ep["hub"], ep["b"])
    to_c = tmp_path / "copy-c.yaml"
    to_c.write_text(to_b.read_text().replace("copy-state.db", "copy-c-state.db")
                    .replace("b: {kind: sqlite, path: b.db}", "c: {kind: sqlite, path: c.db}")
                    .replace("b: x}", "c: x}")
                    + "daemon: {metrics_port: 0}\n")  # (no fixed port for its daemon)
    for p in (to_b, to_c):
        cdcsync("setup", str(p))
        run_json(p)
    with sqlite3.connect(tmp_path / "hub.db") as c:
        c.execute("INSERT INTO x VALUES (1, 'new')")
    c.close()
    assert run_json(to_b)["totals"]["applied"] == 1  # and prunes the hub's log after it
    res = cdcsync("run", str(to_c), expect=1)
    assert "changes of table 'x'" in res.stderr and "pruned by another reader" in res.stderr
    assert "cdcsync resync copy x --reset-stream" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    # The daemon too: it stops (exit 1) with the same message, not a traceback.
    res = cdcsync("daemon", str(to_c), expect=1)
    assert "pruned by another reader" in res.stderr and "Traceback" not in res.stderr, \
        res.stderr
    # The way out it names works: c gets the row from a new snapshot.
    cdcsync("resync", str(to_c), "x", "--reset-stream")
    run_json(to_c)
    assert rows(tmp_path / "c.db", "SELECT * FROM x") == [(1, "new")]
