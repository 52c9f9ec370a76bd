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

from connectors.base import Binding, ConnectorError, nullable_key
from connectors.claims import Claim, refuse_clashes
from connectors.mysql import applied
from connectors.mysql.cascades import load_foreign_keys
from connectors.mysql.create import exact_collation
from connectors.mysql.schema import key_collations, load_table
from connectors.mysql.session import connect, error_code, quote_ident, quote_table
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


#: MySQL/MariaDB's "access denied; you need (at least one of) the ... privilege(s)".
SPECIFIC_ACCESS_DENIED = 1227


def _grantee(cur: Any) -> str:
    """The account the session runs as, quoted for a GRANT: ``'user'@'host'``."""
    cur.execute("SELECT CURRENT_USER()")
    row = cur.fetchone()
    user, _, host = str(row[0] if row else "").rpartition("@")
    return f"'{user}'@'{host}'" if user else "<the endpoint user>"


def global_privileges(cur: Any) -> set[str]:
    """The session's privileges on ``*.*``, from ``SHOW GRANTS`` (without ``FOR``:
    MariaDB adds the grants of the role the session runs with, a default role too)."""
    cur.execute("SHOW GRANTS")
    have: set[str] = set()
    for (line,) in cur.fetchall():
        text = str(line)
        head, on, _ = text.partition(" ON *.* TO ")
        if on and head.upper().startswith("GRANT "):
            have.update(p.strip().upper() for p in head[len("GRANT "):].split(","))
    return have


def capture_rights(cur: Any, endpoint: str, flavor: str) -> list[str]:
    """What the binlog reader needs the user to hold and it lacks, with the GRANT that
    gives it: the binlog's position (``SHOW MASTER STATUS``, as source.py reads it:
    BINLOG MONITOR or SUPER on MariaDB, REPLICATION CLIENT on MySQL) and the binlog
    stream (the replica's dump command, binlog.py: REPLICATION SLAVE). The first is
    tried; the second cannot be without starting a dump, and is read from the grants
    (on MariaDB only: MySQL, untested here, lists its roles' grants otherwise)."""
    mariadb = flavor == "mariadb"
    cur.execute("SELECT VERSION()")
    row = cur.fetchone()
    version = tuple(int(x) for x in str(row[0] if row else "0").split("-")[0].split(".")[:2]
                    if x.isdigit())
    monitor = "BINLOG MONITOR" if mariadb and version >= (10, 5) else "REPLICATION CLIENT"
    lacking: list[tuple[str, str]] = []
    try:
        cur.execute("SHOW MASTER STATUS")
        cur.fetchall()
    except Exception as exc:
        if error_code(exc) != SPECIFIC_ACCESS_DENIED:
            raise
        either = f"{monitor} (or SUPER)" if mariadb else monitor
        lacking.append((monitor, f"{either}, to read where the binlog stands"
                                 f" (SHOW MASTER STATUS: {exc.args[-1]})"))
    if mariadb:
        have = global_privileges(cur)
        if not have & {"ALL PRIVILEGES", "ALL", "REPLICATION SLAVE", "REPLICATION REPLICA"}:
            lacking.append(("REPLICATION SLAVE", "REPLICATION SLAVE, to stream the binlog"
                                                 " (as a replica does)"))
    if not lacking:
        return []
    user = _grantee(cur)
    return [f"its user {user} may not read the binlog, where cdcsync reads the changes at"
            f" endpoint {endpoint}: it lacks"
            f" {' and '.join(why for _, why in lacking)}. As an administrator, run:"
            f" GRANT {', '.join(p for p, _ in lacking)} ON *.* TO {user}"]


CLAIMS_TABLE = "cdcsync_pipelines"


def _claims_ddl(database: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {quote_table(database, CLAIMS_TABLE)} ("
            "`pipeline` VARCHAR(190) NOT NULL, `endpoint` VARCHAR(190) NOT NULL,"
            " `tbl` VARCHAR(64) NOT NULL, `reads` BOOL NOT NULL, `writes` BOOL NOT NULL,"
            " PRIMARY KEY (`pipeline`, `endpoint`, `tbl`)"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")


def _claims_table(cur: Any, database: str) -> bool:
    """Whether the table exists; one made before it named the endpoint gets the column."""
    cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, CLAIMS_TABLE))
    columns = {str(c).lower() for (c,) in cur.fetchall()}
    if columns and "endpoint" not in columns:
        cur.execute(f"ALTER TABLE {quote_table(database, CLAIMS_TABLE)} ADD COLUMN `endpoint`"
                    " VARCHAR(190) NOT NULL DEFAULT '' AFTER `pipeline`, DROP PRIMARY KEY,"
                    " ADD PRIMARY KEY (`pipeline`, `endpoint`, `tbl`)")
    return bool(columns)


def _claims(cur: Any, database: str) -> list[Claim]:
    if not _claims_table(cur, database):
        return []
    cur.execute(f"SELECT `pipeline`, `endpoint`, `tbl`, `reads`, `writes` FROM"
                f" {quote_table(database, CLAIMS_TABLE)}")
    tables: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for pipeline, endpoint, table, reads, writes in cur.fetchall():
        r, w = tables.setdefault((str(pipeline), str(endpoint)), (set(), set()))
        if reads:
            r.add(str(table))
        if writes:
            w.add(str(table))
    return [Claim(p, e, frozenset(r), frozenset(w)) for (p, e), (r, w) in tables.items()]


def _record_claim(cur: Any, database: str, claim: Claim) -> None:
    name = quote_table(database, CLAIMS_TABLE)
    cur.execute(_claims_ddl(database))
    cur.execute("START TRANSACTION")
    cur.execute(f"DELETE FROM {name} WHERE `pipeline` = %s AND `endpoint` IN (%s, '')",
                (claim.pipeline, claim.endpoint))
    for table in sorted(claim.reads | claim.writes):
        cur.execute(f"INSERT INTO {name} (`pipeline`, `endpoint`, `tbl`, `reads`, `writes`)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (claim.pipeline, claim.endpoint, table, table in claim.reads,
                     table in claim.writes))
    cur.execute("COMMIT")


def loose_keys(cur: Any, database: str, table: str, key: Sequence[str]) -> list[str]:
    """A note for each key column of ``table`` whose collation holds keys equal that
    other endpoints (PostgreSQL, SQLite, a binary collation) tell apart: such rows
    would be refused here (connectors/mysql/sink.py ``_duplicate``)."""
    notes = []
    exact: str | None = None
    for column, collation, column_type in key_collations(cur, database, table, key):
        name = collation.lower()
        ignores = []
        if name.endswith("_ci"):
            ignores.append("accents and case" if "_as_" not in name else "case")
        if "nopad" not in name and "_0900_" not in name:
            ignores.append("trailing spaces")
        if ignores:
            exact = exact or exact_collation(cur)
            notes.append(
                f"table {table}: key column {column} ({collation}) ignores"
                f" {' and '.join(ignores)}: keys another endpoint tells apart ('abc' and"
                f" 'ABC', 'a' and 'a ') are one row here, and the second would wait as a"
                f" dead letter; to tell them apart: ALTER TABLE {quote_table(database, table)}"
                f" MODIFY {quote_ident(column)} {column_type} COLLATE {exact}")
    return notes


def followed_actions(cur: Any, database: str, read: set[str]) -> list[str]:
    """What setup says of the foreign-key actions into tables read here: InnoDB takes
    them without logging them, and the reader follows them (connectors/mysql/cascades.py)."""
    out = []
    for fk in load_foreign_keys(cur, database):
        if fk.table in read:
            actions = " and ".join(f"ON {when} {what.upper()}" for when, what in
                                   (("DELETE", fk.on_delete), ("UPDATE", fk.on_update)) if what)
            out.append(f"foreign key {fk.name} ({fk.table} -> {fk.parent}): {actions} is not"
                       " in the binlog; cdcsync makes its changes from the rows it knows")
    return out


def setup(settings: Any, bindings: Sequence[Binding], *, echo: str, writer: str,
          claim: Claim, capture: bool = True) -> list[str]:
    """Check the server and the tables; create the marker table where it is used, and
    register ``writer`` (this pipeline's sink here) in both shared tables. ``claim``:
    the pipeline's tables here, refused where another pipeline's clash with them (a
    pipeline reading a table another writes: :mod:`connectors.claims`), else recorded
    in ``cdcsync_pipelines``.
    ``capture=False``: the pipeline only writes here, and the binlog's settings are not
    asked for (its sessions still skip the binlog where that is how writes are tagged)."""
    done: list[str] = []
    database = str(settings.database)
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            problems = server_problems(cur) if capture else []
            if capture:
                problems += capture_rights(cur, claim.endpoint, str(
                    getattr(settings, "flavor", "mariadb") or "mariadb"))
            for b in bindings:
                try:
                    info = load_table(cur, str(settings.database), b.table)
                except ConnectorError as exc:
                    problems.append(str(exc))
                    continue
                done.append(f"table {b.table}: primary key ({', '.join(info.key)})")
                by_name = info.by_name()
                end = by_name.get(info.row_end or "")
                if end is not None and end.data_type == "bigint" and b.table in claim.reads:
                    problems.append(
                        f"table {b.table} is system-versioned by transaction id (its period"
                        f" column {end.name} is {end.column_type}): MariaDB logs its writes as"
                        " statements, never as rows, and cdcsync reads rows. Version it by"
                        " TIMESTAMP(6) period columns, or drop its system versioning")
                loose = [k for k in b.endpoint_key if k in by_name and by_name[k].nullable
                         ] if b.table in claim.reads else []
                if loose:
                    table = quote_table(database, b.table)
                    problems.append(nullable_key(b.endpoint, table, b.entity, {
                        c: f"ALTER TABLE {table} MODIFY {quote_ident(c)}"
                           f" {by_name[c].column_type} NOT NULL" for c in loose}))
                if b.table in claim.writes:
                    done += loose_keys(cur, database, b.table, b.endpoint_key)
            if echo == "skip_replication":
                try:
                    cur.execute("SET SESSION skip_replication = 1")
                    cur.execute("SET SESSION skip_replication = 0")
                except Exception as exc:  # reported with the fix
                    problems.append(f"the user cannot SET skip_replication ({exc}): grant it "
                                    "BINLOG ADMIN (or SUPER)")
            if problems:
                what = "for capture" if capture else "to be written to"
                raise ConnectorError(f"MySQL/MariaDB endpoint {claim.endpoint} is not ready"
                                     f" {what}:\n  - "
                                     + "\n  - ".join(problems))
            refuse_clashes(claim, _claims(cur, database), f"database {database!r}",
                           shared_reads=False,
                           forget=f"DELETE FROM {quote_table(database, CLAIMS_TABLE)}"
                                  " WHERE `pipeline` = '{pipeline}'")
            if capture:
                done.insert(0, "binlog: ROW format, FULL row image, FULL row metadata")
                done += followed_actions(cur, database, {b.table for b in bindings
                                                         if b.table in claim.reads})
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
            _record_claim(cur, database, claim)
            done.append(f"table {applied.APPLIED_TABLE} (the sink's record of its own writes)")
    finally:
        conn.close()
    return done


def teardown(settings: Any, *, writer: str, pipeline: str, endpoint: str) -> list[str]:
    """Forget ``writer``'s rows in the record and the marker table, and the tables of
    ``pipeline`` at ``endpoint``; each table is dropped once no other pipeline has rows
    in it."""
    done = []
    database = str(settings.database)
    conn = connect(settings)
    try:
        with conn.cursor() as cur:
            _claims_table(cur, database)
            for table, what, owner in (
                    (applied.APPLIED_TABLE, "table", {"writer": writer}),
                    (MARKER_TABLE, "marker table", {"writer": writer}),
                    (CLAIMS_TABLE, "table", {"pipeline": pipeline, "endpoint": endpoint}),
                    # (records of the first format, upgraded with no endpoint)
                    (CLAIMS_TABLE, "table", {"pipeline": pipeline, "endpoint": ""})):
                deleted, dropped = applied.forget_rows(cur, database, table, owner)
                if dropped:
                    done.append(f"dropped {what} {table}")
                elif deleted:
                    done.append(f"deleted {deleted} row(s) of {writer} from {what} {table};"
                                " kept it for the other pipelines using this database")
    finally:
        conn.close()
    return done
