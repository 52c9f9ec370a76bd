"""An entity added to a running two-way pipeline, its table edited at both ends
between its ``cdcsync setup`` and its first run.

Its endpoints already stream for the other entities, so the new entity's snapshot
started at their stream checkpoint, from before those edits, and the stream read
them again after the snapshot had reconciled the rows that held them: each was
taken for an edit made after the snapshot, while the reconcile's conflict policy had
written the other end's copy over it. The ends diverged, with no conflict recorded
(seen 2026-12-07 at SQLite endpoints). The snapshot now also takes the endpoint's
position as it begins, and changes at or before it are the snapshot's (its reads
hold them). Through the real CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fix_ends import Postgres, Sqlite
from tests.test_cli_quickstart import cdcsync, run_json

TABLES = ("CREATE TABLE t (id integer PRIMARY KEY, code text NOT NULL UNIQUE, v text)",
          "CREATE TABLE u (id integer PRIMARY KEY, v text)")


class Maria:
    def __init__(self, params: Any) -> None:
        from tests.pipelines import mariadb_endpoint

        self.params = params
        self.spec = mariadb_endpoint(params)
        self.run("CREATE TABLE u (id integer PRIMARY KEY, v varchar(20))")

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        from tests.connectors.mysql.helpers import query

        return [tuple(r) for r in query(self.params, sql)]


def _head(tmp: Path, a: Any, b: Any) -> str:
    """A pipeline file's head: endpoints ``a`` and ``b``, entities to follow."""
    return f"""pipeline: added{abs(hash(str(tmp))) % 10**6}
state: {{url: "sqlite:///{tmp}/state.db"}}
endpoints:
  a: {a.spec}
  b: {b.spec}
entities:
"""


@pytest.fixture(params=["sqlite", "postgres", "mariadb-postgres"])
def ends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Any]:
    if request.param == "sqlite":
        a, b = Sqlite(tmp_path, "a"), Sqlite(tmp_path, "b")
    else:
        factory: Callable[[], str] = request.getfixturevalue("pg_dsn_factory")
        b = Postgres(factory())
        if request.param == "postgres":
            a = Postgres(factory())
        else:
            a = Maria(request.getfixturevalue("mariadb_params"))
    for end in (a, b):
        if not isinstance(end, Maria):
            end.run(TABLES[1])
        end.run("INSERT INTO u VALUES (1, 'one'), (2, 'two'), (3, 'three')")
    return a, b


def test_an_entity_added_to_a_running_pipeline_keeps_the_edits_made_before_its_first_run(
        tmp_path: Path, ends: tuple[Any, Any]) -> None:
    a, b = ends
    p = tmp_path / "p.yaml"
    head = _head(tmp_path, a, b)
    if isinstance(a, Maria):  # a one-way entity reading a's binlog, b's slot unused
        running = "  w:\n    key: [id]\n    direction: one-way\n    source: a\n" \
                  "    endpoints: {a: w, b: w}\n"
        a.run("CREATE TABLE w (id integer PRIMARY KEY)")
        b.run("CREATE TABLE w (id integer PRIMARY KEY)")
    else:
        running = "  t:\n    key: [id]\n    endpoints: {a: t, b: t}\n"
    p.write_text(head + running)
    cdcsync("setup", str(p))
    run_json(p)  # the pipeline runs: its endpoints' streams have checkpoints
    if isinstance(a, Maria):
        a.run("INSERT INTO w VALUES (1)")
    else:
        a.run("INSERT INTO t VALUES (1, 'x', 'one')")
    run_json(p)

    p.write_text(head + running + "  u:\n    key: [id]\n    endpoints: {a: u, b: u}\n")
    cdcsync("setup", str(p))
    a.run("UPDATE u SET v = 'ONE' WHERE id = 1")  # edits before the entity's first run
    b.run("UPDATE u SET v = 'TWO' WHERE id = 2")
    a.run("DELETE FROM u WHERE id = 3")
    out = run_json(p)
    # Its first snapshot cannot tell an edit from a copy that lags (as in a pipeline's
    # first run): the keys that differ are conflicts, decided by the policy, once.
    assert out["totals"]["resolved"] == 2, out
    assert a.run("SELECT id, v FROM u ORDER BY id") == b.run("SELECT id, v FROM u ORDER BY id")
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert all(d["in_sync"] for d in drift), drift
    out = run_json(p)
    assert out["totals"]["applied"] == 0, out
    a.run("UPDATE u SET v = 'uno' WHERE id = 1")  # and the stream reads on
    b.run("UPDATE u SET v = 'dos' WHERE id = 2")
    b.run("DELETE FROM u WHERE id = 3")
    out = run_json(p)
    assert out["totals"]["resolved"] == 0, out
    want = [(1, "uno"), (2, "dos")]
    assert a.run("SELECT id, v FROM u ORDER BY id") == want
    assert b.run("SELECT id, v FROM u ORDER BY id") == want


def test_an_entity_taken_out_and_put_back_gets_the_writes_made_meanwhile(
        tmp_path: Path, two_ends: tuple[Any, Any]) -> None:
    """Taken out of the pipeline file, an entity's table leaves the PostgreSQL
    publication at the next setup, and the writes to it are not decoded; a SQLite
    file's stream checkpoint passes their log rows unread. Put back, it was read on
    from its old checkpoints as if nothing was missing (until 2026-12-07): those
    writes never reached the other end. Setup now snapshots it again."""
    a, b = two_ends
    for end in (a, b):
        end.run(TABLES[1])
        end.run("INSERT INTO u VALUES (1, 'one'), (2, 'two')")
    p = tmp_path / "p.yaml"
    head = _head(tmp_path, a, b) + "  t:\n    key: [id]\n    endpoints: {a: t, b: t}\n"
    u = "  u:\n    key: [id]\n    endpoints: {a: u, b: u}\n"
    p.write_text(head + u)
    cdcsync("setup", str(p))
    run_json(p)
    p.write_text(head)  # u taken out
    cdcsync("setup", str(p))
    a.run("UPDATE u SET v = 'ONE' WHERE id = 1")
    a.run("INSERT INTO u VALUES (3, 'three')")
    a.run("INSERT INTO t VALUES (1, 'x', 'one')")
    run_json(p)
    p.write_text(head + u)  # and put back
    said = cdcsync("setup", str(p)).stdout
    assert "entity u: its table at a and b was not read until now" in said, said
    run_json(p)
    want = [(1, "ONE"), (2, "two"), (3, "three")]
    assert a.run("SELECT id, v FROM u ORDER BY id") == want
    assert b.run("SELECT id, v FROM u ORDER BY id") == want
    assert run_json(p)["totals"]["applied"] == 0
