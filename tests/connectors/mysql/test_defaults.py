"""Column defaults as information_schema.COLUMNS shows them (MariaDB 10.2.7+): what the
rows older than an added column hold, as PostgreSQL text."""

from __future__ import annotations

import pytest

from connectors.mysql.defaults import prior_value


@pytest.mark.parametrize(("default", "nullable", "data_type", "column_type", "want"), [
    ("5", True, "int", "int(11)", (True, "5")),
    ("-0.0025", True, "double", "double", (True, "-0.0025")),
    ("1.50", False, "decimal", "decimal(6,2)", (True, "1.50")),
    ("'it''s \\\\ x\\n'", True, "varchar", "varchar(20)", (True, "it's \\ x\n")),
    ("'NULL'", True, "varchar", "varchar(9)", (True, "NULL")),  # the text, not NULL
    ("NULL", True, "int", "int(11)", (True, None)),
    (None, True, "int", "int(11)", (True, None)),  # MySQL: nullable, no default
    (None, False, "int", "int(11)", (False, None)),  # NOT NULL: rows got 0
    ("1", True, "tinyint", "tinyint(1)", (True, "true")),
    ("0", True, "tinyint", "tinyint(1)", (True, "false")),
    ("3", True, "tinyint", "tinyint(4)", (True, "3")),
    ("'y'", True, "enum", "enum('x','y')", (True, "y")),
    ("'2024-02-29'", True, "date", "date", (True, "2024-02-29")),
    ("'0000-00-00'", True, "date", "date", (False, None)),
    ("current_timestamp()", True, "datetime", "datetime", (False, None)),
    ("'2024-01-02 03:04:05'", True, "timestamp", "timestamp", (False, None)),
    ("b'1'", True, "bit", "bit(1)", (False, None)),
    ("uuid()", True, "varchar", "varchar(36)", (False, None)),
    ("(1 + 1)", True, "int", "int(11)", (False, None)),
])
def test_the_value_older_rows_hold(default: str | None, nullable: bool, data_type: str,
                                   column_type: str, want: tuple[bool, str | None]) -> None:
    assert prior_value(default, nullable, data_type, column_type) == want
