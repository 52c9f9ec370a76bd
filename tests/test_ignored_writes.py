"""Writes a PostgreSQL target takes without error and without effect.

A ``BEFORE`` trigger that returns NULL (or a row-level security policy) keeps a
write out silently. The sink took the unchanged row for a user's edit on its way
(SKIPPED), which never came: the apply stayed due for ever, every run retried
it, said "ok" and nothing of why. Such a row is now refused (a dead letter
naming the table, key and way out), and a requeue brings it once the target lets
the service's writes through.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

GUARD = """CREATE OR REPLACE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF {allow} THEN RETURN coalesce(NEW, OLD); END IF;
  IF TG_OP = 'INSERT' AND NEW.id = 99 THEN RETURN NULL; END IF;
  IF TG_OP <> 'INSERT' AND OLD.v = 'locked' THEN RETURN NULL; END IF;
  RETURN coalesce(NEW, OLD);
END $$"""


def test_a_write_a_trigger_keeps_out_is_a_dead_letter_not_a_silent_retry(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b = pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b):
        pg(dsn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    pg(a, "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (99, 'new')")
    pg(b, GUARD.format(allow="false"), "CREATE TRIGGER guard BEFORE INSERT OR UPDATE OR DELETE"
       " ON t FOR EACH ROW EXECUTE FUNCTION guard()", "INSERT INTO t VALUES (2, 'locked')")
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                       "t", {"a": "t", "b": "t"}, options=["direction: one-way", "source: a"])
    try:
        cdcsync("setup", str(p))
        res = cdcsync("run", str(p), "--json", expect=3)  # 3: dead letters wait
        assert "the insert of key {\"id\":99} was taken without error" in res.stderr, res.stderr
        assert "the update of key {\"id\":2} was taken without error" in res.stderr
        assert pg(b, "SELECT id, v FROM t ORDER BY id") == [(1, "one"), (2, "locked")]
        pg(a, "UPDATE t SET v = 'locked' WHERE id = 1")  # through, and then locked there
        cdcsync("run", str(p), "--json", expect=3)
        pg(a, "DELETE FROM t WHERE id = 1")
        res = cdcsync("run", str(p), "--json", expect=3)
        assert "the delete of key {\"id\":1} was taken without error" in res.stderr, res.stderr
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert len(letters) == 3, letters
        assert all("pg_replication_origin_session_is_setup()" in d["error"] for d in letters)

        pg(b, GUARD.format(allow="pg_replication_origin_session_is_setup()"))
        for d in letters:
            cdcsync("dlq", "requeue", str(p), str(d["id"]))
        run_json(p)
        assert pg(b, "SELECT id, v FROM t ORDER BY id") == [(2, "two"), (99, "new")]
        cdcsync("verify", str(p))
    finally:
        cdcsync("teardown", str(p), "--force", expect=None)
