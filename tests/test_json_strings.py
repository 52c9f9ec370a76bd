"""JSON documents that are strings (``"123"``, ``"null"``, ``"{\\"a\\":1}"``) stay strings.

A string document was read as a Python ``str``, which every engine's code also
takes for a document's *text* (MariaDB and SQLite keep JSON as text): it was
parsed a second time, so ``"123"`` became the number 123, ``"null"`` SQL NULL,
``"{\\"a\\":1}"`` an object, and ``"str"`` was refused. ``verify`` compared the
results alike and found nothing; an edit at the target then carried the
damage back to the source. A string document is now a
:class:`conflict.canonical.JsonStr`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conflict.canonical import (
    JsonStr,
    coerce,
    exact_json,
    from_json_value,
    row_hash,
    to_json_value,
)
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_mariadb_added_columns import maria
from tests.test_wide_dates import pg

DOCS = ['"123"', '"null"', '"{\\"a\\": 1}"', '"str"', '"[1, 2]"', '""', '{"k": "1"}', '7']


def test_a_string_document_is_not_its_own_text() -> None:
    assert coerce('"123"', "json") == "123" and type(coerce('"123"', "json")) is JsonStr
    assert coerce(JsonStr("123"), "json") == "123"  # not parsed again
    assert coerce("123", "json") == 123  # text: parsed
    assert exact_json(JsonStr("123")) == '"123"'
    stored = from_json_value(json.loads(json.dumps(to_json_value(JsonStr("123")))))
    assert stored == "123" and type(stored) is JsonStr
    assert row_hash({"j": JsonStr("x")}) == row_hash({"j": coerce('"x"', "json")})


def test_string_documents_cross_every_engine_as_strings(
        tmp_path: Path, pg_dsn_factory: Callable[[], str],
        mariadb_params: dict[str, Any]) -> None:
    a, mp = pg_dsn_factory(), mariadb_params
    pg(a, "CREATE TABLE j (id int PRIMARY KEY, b jsonb, t json, note text)",
       *(f"INSERT INTO j VALUES ({i}, '{d}', '{d}', 'x')" for i, d in enumerate(DOCS)))
    maria(mp, "CREATE TABLE j (id int PRIMARY KEY, b json, t json, note text)")
    with sqlite3.connect(tmp_path / "s.db") as c:
        c.execute("CREATE TABLE j (id INTEGER PRIMARY KEY, b JSON, t JSON, note TEXT)")
    c.close()
    p = write_pipeline(tmp_path, pipeline_of(a),
                       {"a": pg_endpoint(a), "m": mariadb_endpoint(mp), "s": sqlite_endpoint()},
                       "j", {"a": "j", "m": "j", "s": "j"})
    cdcsync("setup", str(p))
    try:
        run = run_json(p)
        assert run["errors"] == [] and run["totals"]["applied"] == 2 * len(DOCS), run
        want = [json.loads(d) for d in DOCS]
        got = maria(mp, "SELECT b, t FROM j ORDER BY id")
        assert [json.loads(b) for b, _ in got] == want
        assert [json.loads(t) for _, t in got] == want
        with sqlite3.connect(tmp_path / "s.db") as c:
            lite = c.execute("SELECT b, t FROM j ORDER BY id").fetchall()
        c.close()
        # (a JSON column has numeric affinity: the document 7 is stored as a number)
        assert [json.loads(b) if isinstance(b, str) else b for b, _ in lite] == want
        # an edit at each target carries the documents back as they are
        maria(mp, "UPDATE j SET note = 'm' WHERE id < 4")
        with sqlite3.connect(tmp_path / "s.db") as c:
            c.execute("UPDATE j SET note = 's' WHERE id >= 4")
        c.close()
        assert run_json(p)["errors"] == []
        back = pg(a, "SELECT b::text, t::text, note FROM j ORDER BY id")
        assert [json.loads(b) for b, _, _ in back] == want
        assert [json.loads(t) for _, t, _ in back] == want
        assert [n for _, _, n in back] == ["m"] * 4 + ["s"] * (len(DOCS) - 4)
        cdcsync("verify", str(p))
        assert run_json(p)["totals"]["applied"] == 0
    finally:
        cdcsync("teardown", str(p), "--yes", "--force", expect=None)
