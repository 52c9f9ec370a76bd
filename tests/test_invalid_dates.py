"""Days their month does not have, as MariaDB holds them under ALLOW_INVALID_DATES.

``2024-02-31`` in a MariaDB DATE (an application that sets ``ALLOW_INVALID_DATES``,
or data from one that did) stopped every run: no Python date holds it, and the
snapshot's CoercionError ended the run before anything of the table arrived.
Such a date now travels as its text (``conflict.canonical.invalid_day``), read
alike from a SELECT and from the binlog: SQLite and MariaDB hold it, a
PostgreSQL date or timestamp refuses the row with the reason (a dead letter),
and the rest of the table arrives.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conflict.canonical import canonical_row, coerce, invalid_day, row_hash
from connectors.mysql.endpoint import open_endpoint
from tests.connectors.mysql.helpers import binding, drain, run, settings
from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import mariadb_endpoint, pg_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

LAX = "SET SESSION sql_mode = 'ALLOW_INVALID_DATES'"
TABLE = "CREATE TABLE d (id INT PRIMARY KEY, day DATE, at DATETIME, at6 DATETIME(6))"


@pytest.mark.parametrize(("text", "want"), [
    ("2024-02-31", "2024-02-31"), ("2023-02-29", "2023-02-29"), ("1900-02-29", "1900-02-29"),
    ("2023-04-31 10:00:00", "2023-04-31"), ("0000-03-01", "0000-03-01"),
    ("2024-02-29", None), ("2000-02-29", None), ("2024-13-01", None), ("2024-01-32", None),
    ("2024-00-10", None), ("20201-01-01", None), ("0044-03-15 BC", None),
])
def test_a_day_its_month_lacks_is_told_from_other_texts(text: str, want: str | None) -> None:
    assert invalid_day(text) == want


def test_such_days_are_their_text_and_other_dates_are_not() -> None:
    assert coerce("2024-02-31", "date") == "2024-02-31"
    assert coerce("2023-04-31T10:00:00.500", "timestamp") == "2023-04-31 10:00:00.500000"
    assert coerce("2024-02-29", "date") == dt.date(2024, 2, 29)
    for bad in ("2024-13-01", "2023-04-31 25:00:00", "nope"):
        with pytest.raises(ValueError, match="cannot read"):
            coerce(bad, "timestamp" if " " in bad else "date")


def test_the_binlog_and_a_select_read_them_alike(mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, TABLE)
    ep = open_endpoint("maria", settings(mariadb_params), pipeline="t-invalid")
    try:
        start = ep.source.log_end()
        run(mariadb_params, LAX,
            "INSERT INTO d VALUES (1, '2024-02-31', '2023-04-31 10:00:00',"
            " '2023-06-31 01:02:03.250000'), (2, '0000-03-01', '2024-01-01 00:00:00', NULL),"
            " (3, '2024-02-29', '2024-02-29 12:00:00', '2024-02-29 12:00:00.5')")
        changes, _, _ = drain(ep.source, [binding("d")], start)
        from_log = {c.key["id"]: dict(c.after or {}) for c in changes}
        ep.position()
        from_select = {r.key["id"]: dict(r.row) for r in ep.snapshot(binding("d"), None, 10).rows}
        for i in (1, 2, 3):
            assert canonical_row(from_log[i]) == canonical_row(from_select[i]), i
            assert row_hash(from_log[i]) == row_hash(from_select[i])
        assert from_log[1] == {"id": 1, "day": "2024-02-31", "at": "2023-04-31 10:00:00",
                               "at6": "2023-06-31 01:02:03.250000"}
        assert from_log[2]["day"] == "0000-03-01"
        assert from_log[3]["day"] == dt.date(2024, 2, 29)
    finally:
        ep.close()


def test_postgres_refuses_them_as_rows_and_sqlite_holds_them(
        tmp_path: Path, pg_dsn: str, mariadb_params: dict[str, Any]) -> None:
    mp = mariadb_params
    run(mp, TABLE, LAX, "INSERT INTO d VALUES (1, '2024-02-31', '2024-01-01 00:00:00', NULL),"
                        " (2, '2024-01-02', '2024-01-02 03:04:05', NULL)")
    pg(pg_dsn, "CREATE TABLE d (id int PRIMARY KEY, day date, at timestamp, at6 timestamp)")
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("CREATE TABLE d (id INTEGER PRIMARY KEY, day DATE, at DATETIME, at6 TEXT)")
    db.close()
    p = write_pipeline(tmp_path, pipeline_of(pg_dsn),
                       {"m": mariadb_endpoint(mp), "a": pg_endpoint(pg_dsn),
                        "s": sqlite_endpoint()}, "d", {"m": "d", "a": "d", "s": "d"},
                       options=["direction: one-way", "source: m"])
    cdcsync("setup", str(p))
    try:
        assert run_json(p, expect=3)["totals"]["applied"] == 3  # (was: every run failed)
        run(mp, LAX, "UPDATE d SET at = '2023-09-31 08:00:00' WHERE id = 2",
            "INSERT INTO d VALUES (3, '2024-03-01', NULL, NULL)")  # from the binlog
        assert run_json(p, expect=3)["totals"]["applied"] == 3
        assert run_json(p, expect=3)["totals"]["read"] == 0  # (the letters still wait)
        assert pg(pg_dsn, "SELECT id, day, at FROM d ORDER BY id") == [  # (2: its update waits)
            (2, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5)),
            (3, dt.date(2024, 3, 1), None)]
        letters = json.loads(cdcsync("dlq", "list", str(p), "--json").stdout)
        assert sorted(k for d in letters for k in d["keys"]) == ['{"id":1}', '{"id":2}']
        assert all("a day its month does not have" in d["error"] for d in letters), letters
        with sqlite3.connect(tmp_path / "s.db") as db:
            held = db.execute("SELECT id, day, at FROM d ORDER BY id").fetchall()
        db.close()
        assert [(i, day) for i, day, _ in held] == [
            (1, "2024-02-31"), (2, "2024-01-02"), (3, "2024-03-01")]
        assert held[1][2] == "2023-09-31 08:00:00"
    finally:
        cdcsync("teardown", str(p), "--force")
