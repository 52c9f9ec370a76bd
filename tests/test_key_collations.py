"""Keys that a MariaDB key column's collation holds equal and the source tells apart.

PostgreSQL's (and SQLite's) text keys compare byte for byte; MariaDB's default
collation ignores case and accents, and PAD SPACE collations trailing spaces:
``abc``/``ABC``, ``e``/``é`` and ``a``/``a `` are one key there. The second of
each pair hit the first's primary key, which the sink took for a row inserted
since its select: it retried five times and failed the run, every run, so no
later change of the table arrived either. Now the row is refused with the
reason (a dead letter naming the collation and its fix), the rest is written,
setup says which key columns compare loosely, and the tables setup creates
compare their text keys exactly.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymysql
import pytest

from connectors.base import ApplyOp, ApplyStatus, RowRejected
from connectors.mysql.endpoint import open_endpoint
from tests.connectors.mysql.helpers import binding, query, run, settings
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

PAIRS = [("abc", "ABC"), ("e", "é"), ("a", "a ")]


def op(code: str, v: int) -> ApplyOp:
    return ApplyOp(key={"code": code}, row={"code": code, "v": v}, expected=None, token="t")


def test_the_sink_refuses_a_key_the_collation_holds_equal_naming_the_collation(
        mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE codes (code VARCHAR(20) COLLATE utf8mb4_general_ci"
                        " PRIMARY KEY, v INT)")
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-coll")
    b = binding("codes", key=("code",))
    ep.setup([b], "t-coll")
    try:
        assert ep.apply(b, [op("abc", 1)])[0].status is ApplyStatus.APPLIED
        with pytest.raises(RowRejected) as held:  # (and nothing of the batch is written)
            ep.apply(b, [op("ABC", 2), op("x", 3)])
        text = str(held.value)
        assert "utf8mb4_general_ci" in text and "COLLATE utf8mb4_nopad_bin" in text, text
        assert 'key {"code":"ABC"}' not in text  # two keys: which one is not known yet
        with pytest.raises(RowRejected, match=r'key \{"code":"ABC"\} is the same key here'
                                              r' as \{"code":"abc"\}, which the table holds'):
            ep.apply(b, [op("ABC", 2)])
        with pytest.raises(RowRejected, match=r'keys \{"code":"e"\}, \{"code":"é"\}: .*Duplicate'):
            ep.apply(b, [op("é", 4), op("e", 5)])  # one statement: which one is not known
        assert ep.apply(b, [op("x", 3)])[0].status is ApplyStatus.APPLIED
        assert sorted(query(mariadb_params, "SELECT code, v FROM codes")) == [
            ("abc", 1), ("x", 3)]
    finally:
        ep.close()


def test_keys_that_collide_at_mariadb_wait_as_dead_letters_and_the_rest_arrives(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    pg(pg_dsn, "CREATE TABLE k (code text PRIMARY KEY, v int)",
       "INSERT INTO k SELECT code, row_number() OVER () FROM unnest(%s::text[]) AS code"
       % ("'{" + ",".join(f'"{c}"' for pair in PAIRS for c in pair) + ",z}'"))
    mp = mariadb_params
    run(mp, "CREATE TABLE k (code VARCHAR(20) COLLATE utf8mb4_general_ci PRIMARY KEY, v INT)")
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"a": pg_endpoint(pg_dsn), "m": mariadb_endpoint(mp)}, "k",
                       {"a": "k", "m": "k"}, key=("code",),
                       options=["direction: one-way", "source: a"])
    out = cdcsync("setup", str(p)).stdout
    assert ("m: table k: key column code (utf8mb4_general_ci) ignores accents and case and"
            " trailing spaces") in out, out
    try:
        first = run_json(p, expect=3)  # dead letters wait for an operator
        assert first["errors"] == [] and first["totals"]["applied"] == 4, first
        held = {c for (c,) in query(mp, "SELECT code FROM k")}
        assert len(held) == 4 and "z" in held
        assert all(len(held & set(pair)) == 1 for pair in PAIRS), held
        letters = cdcsync("dlq", "list", str(p), "--json").stdout
        assert "utf8mb4_general_ci" in letters and letters.count('"keys"') == 1, letters
        # Later changes of the table still arrive.
        pg(pg_dsn, "UPDATE k SET v = 100 WHERE code = 'z'", "INSERT INTO k VALUES ('y', 7)")
        assert run_json(p, expect=3)["totals"]["applied"] == 2
        assert query(mp, "SELECT v FROM k WHERE code IN ('y', 'z') ORDER BY code") == [
            (7,), (100,)]
        # The fix the letter names, then a requeue: every row arrives.
        run(mp, "ALTER TABLE k MODIFY code VARCHAR(20) COLLATE utf8mb4_nopad_bin")
        letter = letters.split('"id":', 1)[1].split(",", 1)[0].strip()
        cdcsync("dlq", "requeue", str(p), letter)
        assert run_json(p)["totals"]["applied"] == 3
        assert cdcsync("verify", str(p)).returncode == 0
    finally:
        cdcsync("teardown", str(p), "--force")


def test_a_created_mariadb_table_tells_every_source_key_apart(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    pg(pg_dsn, "CREATE TABLE k (code varchar(10), n int, v int, PRIMARY KEY (code, n))",
       "INSERT INTO k VALUES ('abc', 1, 1), ('ABC', 1, 2), ('e', 1, 3), ('é', 1, 4),"
       " ('a', 1, 5), ('a ', 1, 6)")
    mp = mariadb_params
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"a": pg_endpoint(pg_dsn), "m": mariadb_endpoint(mp)}, "k",
                       {"a": "k", "m": "k"}, key=("code", "n"),
                       options=["direction: one-way", "source: a"])
    out = cdcsync("setup", str(p)).stdout
    assert "m: created table k" in out and "ignores" not in out, out
    try:
        assert run_json(p)["totals"]["applied"] == 6
        conn = pymysql.connect(**mp)
        with conn.cursor() as cur:
            cur.execute("SELECT CONCAT('[', code, ']') FROM k ORDER BY v")
            assert [c for (c,) in cur.fetchall()] == [
                "[abc]", "[ABC]", "[e]", "[é]", "[a]", "[a ]"]
        conn.close()
        assert cdcsync("verify", str(p)).returncode == 0
    finally:
        cdcsync("teardown", str(p), "--force")


def test_keys_a_citext_icu_or_nocase_key_holds_equal_are_refused_not_merged(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """At PostgreSQL (``citext``, a nondeterministic ICU collation) and SQLite
    (``NOCASE``, ``RTRIM``) the second key of a pair went into the first's row: the
    upsert's ``ON CONFLICT`` took that row for it. PostgreSQL reported both applied
    and kept one; SQLite kept one key with the other's values. Silent: the run
    said every row arrived."""
    src, dst = pg_dsn_factory(), pg_dsn_factory()
    pg(src, "CREATE TABLE k (code text PRIMARY KEY, v int)",
       "INSERT INTO k VALUES ('abc', 1), ('ABC', 2), ('a', 3), ('a ', 4), ('z', 5)")
    pg(dst, "CREATE EXTENSION IF NOT EXISTS citext",
       "CREATE COLLATION loose (provider = icu, locale = 'und-u-ks-level2',"
       " deterministic = false)",
       "CREATE TABLE c (code citext PRIMARY KEY, v int)",
       "CREATE TABLE i (code text COLLATE loose PRIMARY KEY, v int)")
    for name, collation in (("n", "NOCASE"), ("r", "RTRIM")):
        with sqlite3.connect(tmp_path / f"{name}.db") as db:
            db.execute(f"CREATE TABLE {name} (code TEXT COLLATE {collation} PRIMARY KEY,"
                       " v INT)")
        db.close()
    targets = {"c": pg_endpoint(dst), "i": pg_endpoint(dst), "n": sqlite_endpoint("n.db"),
               "r": sqlite_endpoint("r.db")}
    p = write_pipeline(tmp_path, pipeline_of(src), {"a": pg_endpoint(src), **targets}, "k",
                       {"a": "k", **{t: t for t in targets}}, key=("code",),
                       options=["direction: one-way", "source: a"])
    cdcsync("setup", str(p))
    try:
        run_json(p, expect=3)  # dead letters wait
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert sorted(d["target"] for d in letters) == ["c", "i", "n", "r"], letters
        assert all("one key under the key" in d["error"] for d in letters), letters
        want = {"abc": 1, "ABC": 2, "a": 3, "a ": 4, "z": 5}
        for t, rows in (("c", pg(dst, "SELECT code, v FROM c")),
                        ("i", pg(dst, "SELECT code, v FROM i"))):
            held = dict(rows)  # abc or ABC, with its own value, and the others
            assert len(held) == 4 and all(v == want[c] for c, v in held.items()), (t, held)
            assert {"a", "a ", "z"} <= set(held), (t, held)
        n, r = ({c: v for c, v in _sqlite(tmp_path / f"{t}.db", f"SELECT code, v FROM {t}")}
                for t in "nr")
        assert len(n) == 4 and all(v == want[c] for c, v in n.items()), n  # its own values
        assert len(r) == 4 and all(v == want[c] for c, v in r.items()), r
    finally:
        cdcsync("teardown", str(p), "--force")


def _sqlite(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(query).fetchall()
    db.close()
    return rows


def test_a_natural_key_under_a_loose_collation_is_named_and_its_twins_refused(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    """The entity keyed by a unique column that is not the primary key (each end keeps
    its own id): setup names it too, and a twin is refused by its unique index."""
    pg(pg_dsn, "CREATE TABLE n (id serial PRIMARY KEY, code text NOT NULL UNIQUE, v int)",
       "INSERT INTO n (code, v) VALUES ('abc', 1), ('ABC', 2), ('z', 3)")
    mp = mariadb_params
    run(mp, "CREATE TABLE n (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(20)"
            " COLLATE utf8mb4_unicode_ci NOT NULL UNIQUE, v INT)")
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"a": pg_endpoint(pg_dsn), "m": mariadb_endpoint(mp)}, "n",
                       {"a": "n", "m": "n"}, key=("code",),
                       options=["direction: one-way", "source: a", "exclude: [id]"])
    out = cdcsync("setup", str(p)).stdout
    assert "m: table n: key column code (utf8mb4_unicode_ci) ignores" in out, out
    try:
        assert run_json(p, expect=3)["totals"]["applied"] == 2
        held = {c for (c,) in query(mp, "SELECT code FROM n")}
        assert len(held) == 2 and "z" in held and len(held & {"abc", "ABC"}) == 1
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert [len(d["keys"]) for d in letters] == [1] and "Duplicate" in letters[0]["error"]
    finally:
        cdcsync("teardown", str(p), "--force")


def test_a_delete_of_a_key_whose_loose_twin_postgres_holds_leaves_the_twin(
        pg_dsn: str) -> None:
    """Only its own key is deleted: the twin that the citext comparison takes for it
    stays, and the delete is ALREADY (the key is not there), not a refused row."""
    from tests.connectors.postgres.helpers import binding as pg_binding
    from tests.connectors.postgres.helpers import endpoint as pg_ep
    from tests.connectors.postgres.helpers import query as pg_query
    from tests.connectors.postgres.helpers import sql as pg_sql

    pg_sql(pg_dsn, "CREATE EXTENSION IF NOT EXISTS citext",
           "CREATE TABLE c (code citext PRIMARY KEY, v int)", "INSERT INTO c VALUES ('abc', 1)")
    (xmin,), = pg_query(pg_dsn, "SELECT xmin::text::bigint FROM c")
    ep = pg_ep(pg_dsn)
    try:
        ep.setup([pg_binding("c", key=("code",))], "t-twin")
        (res,) = ep.apply(pg_binding("c", key=("code",)),
                          [ApplyOp({"code": "ABC"}, None, xmin, "t")])
        assert res.status is ApplyStatus.ALREADY
        assert pg_query(pg_dsn, "SELECT code::text, v FROM c") == [("abc", 1)]
    finally:
        ep.close()


@pytest.mark.parametrize("collation,twins", [("NOCASE", ("abc", "ABC")), ("RTRIM", ("a", "a "))])
def test_a_delete_of_a_key_whose_loose_twin_sqlite_holds_leaves_the_twin(
        tmp_path: Path, collation: str, twins: tuple[str, str]) -> None:
    """A SQLite key column declared ``COLLATE NOCASE`` (or ``RTRIM``) found the twin
    for a delete of a key the table does not hold: deleting ``ABC`` removed ``abc``,
    a row of another key, and reported the delete applied. Only the key's own row is
    deleted now; the twin and its version stay."""
    from connectors.base import Binding
    from connectors.sqlite import SqliteEndpoint

    held, gone = twins
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE t (code TEXT COLLATE {collation} PRIMARY KEY, v INT)")
    db.close()
    b = Binding("t", "s", "t", ("code",))
    ep = SqliteEndpoint("s", path)
    try:
        ep.setup([b], "p")
        (first,) = ep.apply(b, [op(held, 1)])
        assert first.status is ApplyStatus.APPLIED
        (res,) = ep.apply(b, [ApplyOp({"code": gone}, None, None, "t2")])
        assert res.status is ApplyStatus.APPLIED and res.row_version is None
        assert _sqlite(path, "SELECT code, v FROM t") == [(held, 1)]
        (again,) = ep.apply(b, [ApplyOp({"code": held}, {"code": held, "v": 2},
                                        first.row_version, "t3")])
        assert again.status is ApplyStatus.APPLIED  # its version was left alone too
        assert _sqlite(path, "SELECT code, v FROM t") == [(held, 2)]
    finally:
        ep.close()
