"""``cdcsync setup`` / ``teardown`` for a MySQL/MariaDB endpoint.

The binlog is the change log, and on MariaDB ``skip_replication`` tags the
service's writes. Setup checks what capture needs and says how to fix what is
missing; it creates the table in which the sink records its own writes
(``cdcsync_applied``, :mod:`connectors.mysql.applied`), and on MySQL also the
marker table that tags the service's transactions. Both are created only if
missing, so setup can be run again. Both are shared by the pipelines writing
the database (a row per writer): teardown deletes its pipeline's rows and drops
a table only once no other pipeline has rows in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from connectors.base import Binding, ConnectorError
from connectors.mysql import applied
from connectors.mysql.schema import load_table
from connectors.mysql.session import connect, quote_table
from connectors.mysql.source import MARKER_TABLE

REQUIRED = {
    "log_bin": ("1", "log_bin = mysql-bin"),
    "binlog_format": ("ROW", "binlog_format = ROW"),
    "binlog_row_image": ("FULL", "binlog_row_image = FULL"),
    "binlog_row_metadata": ("FULL", "binlog_row_metadata = FULL"),
}


def server_problems(cur: Any) -> list[str]:
    """What the server's binlog configuration lacks for capture, with the fix."""
    problems = []
    for var, (want, fix) in REQUIRED.items():
        cur.execute(f"SHOW GLOBAL VARIABLES LIKE '{var}'")
        row = cur.fetchone()
        have = "" if row is None else str(row[1]).upper()
        if var == "log_bin":
            have = "1" if have in ("ON", "1") else have
        if have != want:
            problems.append(f"{var} is {have or 'unset'!s}, needs {want} (server option `{fix}`, "
                            "then restart the server)")
    return problems


def setup(settings: Any, bindings: Sequence[Binding], *, echo: str, writer: str,
          capture: bool = True) -> list[str]:
    """Check the server and the tables; create the marker table where it is used, and
    register ``writer`` (this pipeline's sink here) in both shared tables.
    ``capture=False``: the pipeline only writes here, and the binlog's settings are not
    asked for (its sessions still skip the binlog where that is how writes are tagged)."""
    done: list[str] = []
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            problems = server_problems(cur) if capture else []
            for b in bindings:
                try:
                    info = load_table(cur, str(settings.database), b.table)
                except ConnectorError as exc:
                    problems.append(str(exc))
                    continue
                done.append(f"table {b.table}: primary key ({', '.join(info.key)})")
            if echo == "skip_replication":
                try:
                    cur.execute("SET SESSION skip_replication = 1")
                    cur.execute("SET SESSION skip_replication = 0")
                except Exception as exc:  # reported with the fix
                    problems.append(f"the user cannot SET skip_replication ({exc}): grant it "
                                    "BINLOG ADMIN (or SUPER)")
            if problems:
                what = "for capture" if capture else "to be written to"
                raise ConnectorError(f"MySQL/MariaDB endpoint is not ready {what}:\n  - "
                                     + "\n  - ".join(problems))
            if capture:
                done.insert(0, "binlog: ROW format, FULL row image, FULL row metadata")
            if echo == "marker":
                marker = quote_table(str(settings.database), MARKER_TABLE)
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {marker}"
                    " (`writer` VARCHAR(190) NOT NULL PRIMARY KEY, `seq` BIGINT NOT NULL)"
                )
                cur.execute(f"INSERT IGNORE INTO {marker} (`writer`, `seq`) VALUES (%s, 0)",
                            (writer,))
                done.append(f"marker table {MARKER_TABLE} (tags the service's own writes)")
            cur.execute(applied.create_sql(str(settings.database)))
            if applied.state(cur, str(settings.database)) is applied.Record.UNSTAMPED:
                cur.execute(applied.upgrade_sql(str(settings.database)))
            applied.register(cur, str(settings.database), writer)
            done.append(f"table {applied.APPLIED_TABLE} (the sink's record of its own writes)")
    finally:
        conn.close()
    return done


def teardown(settings: Any, *, writer: str) -> list[str]:
    """Forget ``writer``'s rows in the record and the marker table; each table is
    dropped once no other pipeline's sink has rows in it."""
    done = []
    database = str(settings.database)
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            for table, what in ((applied.APPLIED_TABLE, "table"),
                                (MARKER_TABLE, "marker table")):
                deleted, dropped = applied.forget_writer(cur, database, table, writer)
                if dropped:
                    done.append(f"dropped {what} {table}")
                elif deleted:
                    done.append(f"deleted {deleted} row(s) of {writer} from {what} {table};"
                                " kept it for the other pipelines writing this database")
    finally:
        conn.close()
    return done
