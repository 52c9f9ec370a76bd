"""Decimals are written to a SQLite ``DECIMAL TEXT`` column in positional notation,
their scale kept: MariaDB's ``DECIMAL(65,30)`` ``-0.000000000000000000000000000001``
was stored as the text ``-1E-30`` and ``0`` as ``0E-30`` (``str(Decimal)``).

Text written before in exponent form reads back as the same Decimal (value and
exponent), so no row stored either way looks changed: the fixed point and the
hashes hold.
"""

from __future__ import annotations

import decimal
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conflict.canonical import canonical_value
from connectors.sqlite._types import from_storage, reader, to_storage, writer
from tests.connectors.mysql.helpers import run
from tests.pipelines import mariadb_endpoint, sqlite_endpoint, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json

D = decimal.Decimal
TINY = "-0.000000000000000000000000000001"
ZERO = "0.000000000000000000000000000000"


@pytest.mark.parametrize(("value", "text"), [
    (D("-1E-30"), TINY),
    (D("0E-30"), ZERO),
    (D("-0E-30"), "-" + ZERO),
    (D("1.5E-7"), "0.00000015"),
    (D("1.50"), "1.50"),
    (D("-12345.675"), "-12345.675"),
    (D("18446744073709551615"), "18446744073709551615"),
    (18446744073709551615, "18446744073709551615"),  # BIGINT UNSIGNED in DECIMAL TEXT
])
def test_decimals_are_written_positionally_and_read_back_exactly(value: Any, text: str) -> None:
    assert writer("decimal")(value) == text
    assert to_storage(value, "decimal") == text
    back = reader("decimal")(text)
    assert back == from_storage(text, "decimal") == D(value)
    assert back.as_tuple() == D(value).as_tuple()  # the scale kept: 0E-30, not 0


@pytest.mark.parametrize("old", ["-1E-30", "0E-30", "1.5E-7", "1E+2", "1.2E+3"])
def test_text_written_in_exponent_form_reads_as_the_positional_text_does(old: str) -> None:
    new = writer("decimal")(from_storage(old, "decimal"))
    assert "E" not in new
    assert canonical_value(from_storage(new, "decimal")) == canonical_value(
        from_storage(old, "decimal"))


def test_non_finite_decimals_keep_their_names() -> None:
    for name in ("Infinity", "-Infinity", "NaN"):
        assert writer("decimal")(D(name)) == name


def test_a_created_decimal_text_column_holds_positional_text(
        tmp_path: Path, mariadb_params: dict[str, Any]) -> None:
    run(mariadb_params, "CREATE TABLE d (id int PRIMARY KEY, n DECIMAL(65,30))",
        f"INSERT INTO d VALUES (1, {TINY}), (2, 0), (3, 1.5), (4, NULL),"
        " (5, 12345678901234567890123456789012345.123456789012345678901234567891)")
    s = tmp_path / "s.db"
    sqlite3.connect(s).close()
    p = write_pipeline(tmp_path, "dectext", {"m": mariadb_endpoint(mariadb_params),
                                             "s": sqlite_endpoint(str(s))},
                       "d", {"m": "d", "s": "d"}, options=["direction: one-way", "source: m"])
    p.write_text(p.read_text().replace("sqlite:///state.db", f"sqlite:///{tmp_path}/state.db"))
    cdcsync("setup", str(p))
    out = run_json(p)
    assert out["totals"]["rejected"] == 0 and out["totals"]["applied"] == 5, out
    run(mariadb_params, "UPDATE d SET n = -n WHERE id IN (1, 2)")  # (-0 is 0: no change)
    assert run_json(p)["totals"]["applied"] == 1
    with sqlite3.connect(s) as conn:
        assert conn.execute("SELECT type FROM pragma_table_info('d') WHERE name = 'n'"
                            ).fetchone() == ("DECIMAL TEXT",)
        got = conn.execute("SELECT id, n, typeof(n) FROM d ORDER BY id").fetchall()
    assert got == [
        (1, TINY[1:], "text"),
        (2, ZERO, "text"),
        (3, "1.500000000000000000000000000000", "text"),
        (4, None, "null"),
        (5, "12345678901234567890123456789012345.123456789012345678901234567891", "text"),
    ]
    drift = json.loads(cdcsync("verify", str(p), "--json").stdout)
    assert [d["in_sync"] for d in drift] == [True], drift
    assert run_json(p)["totals"]["applied"] == 0  # the fixed point: read back equal
