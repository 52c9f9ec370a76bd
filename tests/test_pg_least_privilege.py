"""A PostgreSQL endpoint whose user is not a superuser.

PostgreSQL 15 keeps the replication-origin functions (the service tags its writes
with an origin) to superusers unless granted: setup and the apply session failed
with "permission denied for function pg_replication_origin_create" and nothing on
what to grant. The message now gives the GRANT, and with it (REPLICATION, CREATE on
the database, the tables' ownership and those functions) a bidirectional pipeline
runs. Through the CLI, with a role of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from connectors.postgres.connect import ORIGIN_GRANTS
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg


@pytest.fixture
def role(pg_dsn_factory: Callable[[], str]) -> Iterator[tuple[str, list[str]]]:
    """A LOGIN REPLICATION role owning a table ``items`` in two fresh databases."""
    name = f"cdcsync_u_{uuid.uuid4().hex[:8]}"
    dbs = [pg_dsn_factory(), pg_dsn_factory()]
    pg(dbs[0], f"CREATE ROLE {name} LOGIN REPLICATION PASSWORD 'pw'")
    for dsn in dbs:
        db = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        pg(dsn, f'GRANT CREATE ON DATABASE "{db}" TO {name}',
           "CREATE TABLE items (id int PRIMARY KEY, name text)",
           f"ALTER TABLE items OWNER TO {name}")
    try:
        yield name, dbs
    finally:
        for dsn in dbs:
            pg(dsn, f"REASSIGN OWNED BY {name} TO postgres", f"DROP OWNED BY {name}")
        pg(dbs[0], f"DROP ROLE {name}")


def test_the_origin_grants_are_named_and_suffice(
        tmp_path: Path, role: tuple[str, list[str]]) -> None:
    name, (a, b) = role
    as_role = [make_conninfo(d, user=name, password="pw") for d in (a, b)]
    p = write_pipeline(tmp_path, pipeline_of(a), {"a": pg_endpoint(as_role[0]),
                                                  "b": pg_endpoint(as_role[1])},
                       "items", {"a": "items", "b": "items"})
    pg(a, "INSERT INTO items VALUES (1, 'a')")
    res = cdcsync("setup", str(p), expect=1)
    assert "permission denied for function pg_replication_origin_create" in res.stderr
    assert ORIGIN_GRANTS.format(user="<the endpoint user>") in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    for dsn in (a, b):
        pg(dsn, ORIGIN_GRANTS.format(user=name))
    cdcsync("setup", str(p))
    run_json(p)
    pg(b, "UPDATE items SET name = 'B' WHERE id = 1", "INSERT INTO items VALUES (2, 'b')")
    pg(a, "INSERT INTO items VALUES (3, 'c')")
    run_json(p)
    for dsn in (a, b):
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT id, name FROM items ORDER BY id").fetchall() == [
                (1, "B"), (2, "b"), (3, "c")]
    assert run_json(p)["totals"]["applied"] == 0  # its own writes did not come back
    cdcsync("teardown", str(p), "--yes")
