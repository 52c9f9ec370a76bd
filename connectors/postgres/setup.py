"""Capture objects of a PostgreSQL endpoint: publication, slot, origin, side table.

Everything here is idempotent: ``setup`` creates what is missing and says what
it did; ``teardown`` drops what exists. The order matters:

1. ``REPLICA IDENTITY FULL`` on every bound table. Without it an UPDATE's old
   row and a DELETE's row carry only the key: field-level merge has no base
   to compare with, and an unchanged TOASTed column cannot be filled from the
   old row (see decoding.py). cdcsync sets it and says so; teardown leaves it
   (it cannot know whether someone else relies on it).
2. The publication, *before* the slot: pgoutput looks the publication up as
   of each decoded transaction, so a slot older than its publication fails
   on the transactions in between.
3. The logical slot (``pgoutput``). Its creation waits for transactions that
   are running at that moment to finish.
4. The replication origin of the pipeline, which tags the sink's writes.
5. ``cdcsync.applied_tx``: the sink's bookkeeping of its own transactions
   (see sink.py for why).

Before all of it, setup refuses a pipeline whose slot, publication or origin names
are already held in this database by a pipeline of another name (two names can
sanitise alike: names.py), and afterwards records that this pipeline holds its names
here (``cdcsync.pipeline_names``); teardown leaves what another pipeline holds, and
forgets the record.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from connectors.base import ConnectorError
from connectors.postgres.catalog import TableInfo, published
from connectors.postgres.connect import PgConnection
from connectors.postgres.names import (
    APPLIED_TABLE,
    DELETED_TABLE,
    NAMES_TABLE,
    PIPELINES_TABLE,
    SIDE_SCHEMA,
    Names,
)
from connectors.postgres.pgoutput import format_lsn

#: ``status`` warns when a slot holds more WAL than this (bytes).
DEFAULT_WARN_RETAINED = 1 << 30


def check_wal_level(conn: PgConnection) -> None:
    row = conn.execute("SHOW wal_level").fetchone()
    if row is None or row[0] != "logical":
        level = row[0] if row else "unknown"
        raise ConnectorError(
            f"PostgreSQL runs with wal_level={level}; logical decoding needs wal_level=logical"
            " (set it in postgresql.conf and restart the server; see scripts/prepare-services)"
        )


def ensure_replica_identity(conn: PgConnection, tables: Sequence[TableInfo]) -> list[str]:
    done = []
    for t in tables:
        if t.replica_identity != "f":
            conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(t.ident))
            done.append(
                f"set REPLICA IDENTITY FULL on {t.qualified} (was {_IDENTITY[t.replica_identity]}):"
                " old row images are needed for deletes, field-level merge and unchanged"
                " TOAST values"
            )
    return done


_IDENTITY = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL", "i": "USING INDEX"}


def ensure_publication(conn: PgConnection, names: Names, tables: Sequence[TableInfo]) -> list[str]:
    """The pipeline's publication, for exactly the tables it reads here.

    ``publish_via_partition_root``: a partitioned table's changes are published as
    the table's own, not as its partitions' (which the reader, bound to the table,
    would never recognise: they were lost without a word).
    """
    pub = sql.Identifier(names.publication)
    row = conn.execute(
        "SELECT puballtables, pubviaroot, pubinsert AND pubupdate AND pubdelete AND pubtruncate"
        " FROM pg_publication WHERE pubname = %s",
        (names.publication,),
    ).fetchone()
    idents = sql.SQL(", ").join(t.ident for t in tables)
    if row is None:
        if not tables:
            return []
        conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}"
                             " WITH (publish_via_partition_root = true)").format(pub, idents))
        return [f"created publication {names.publication} for {_list(tables)}"]
    done: list[str] = []
    if not row[1]:
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET (publish_via_partition_root = true)"
                             ).format(pub))
        done.append(f"publication {names.publication}: partitioned tables' changes are"
                    " published as the table's own (publish_via_partition_root)")
    if not row[2]:  # (altered since: the reader stops on it, source.check_published)
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET (publish = 'insert, update, delete,"
                             " truncate')").format(pub))
        done.append(f"publication {names.publication} publishes inserts, updates, deletes and"
                    " truncates again")
    if row[0]:
        return done
    listed = published(conn, names.publication)
    narrowed = [t.qualified for t in listed if not t.whole]
    if narrowed and tables:
        # SET TABLE lists the tables anew, without row filters or column lists
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(pub, idents))
        done.append(f"publication {names.publication} publishes {', '.join(narrowed)} whole"
                    " again (its row filters and column lists are gone)")
        listed = published(conn, names.publication)
    have = {(t.schema, t.name) for t in listed}
    missing = [t for t in tables if (t.schema, t.name) not in have]
    if missing:
        conn.execute(sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
            pub, sql.SQL(", ").join(t.ident for t in missing)))
        done.append(f"added {_list(missing)} to publication {names.publication}")
    # The publication is the pipeline's own: a table it no longer reads here (unbound, or
    # now only written to) leaves it, or every write to it would be decoded and sent.
    wanted = {(t.schema, t.name) for t in tables}
    extra = sorted(have - wanted)
    if extra:
        conn.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(
            pub, sql.SQL(", ").join(sql.Identifier(s, n) for s, n in extra)))
        done.append(f"removed {', '.join(f'{s}.{n}' for s, n in extra)} from publication "
                    f"{names.publication}: the pipeline no longer reads them here")
    return done


def _list(tables: Sequence[TableInfo]) -> str:
    return ", ".join(t.qualified for t in tables)


def ensure_slot(conn: PgConnection, names: Names) -> list[str]:
    row = conn.execute(
        "SELECT plugin, database, slot_type FROM pg_replication_slots WHERE slot_name = %s",
        (names.slot,),
    ).fetchone()
    if row is not None:
        plugin, database, kind = row
        current = conn.info.dbname
        if kind != "logical" or plugin != "pgoutput" or database != current:
            raise ConnectorError(
                f"replication slot {names.slot} exists but is a {kind} slot of plugin {plugin}"
                f" in database {database}; cdcsync needs a pgoutput slot in {current}"
                " (drop it, or name another slot in the endpoint settings)"
            )
        return []
    try:
        lsn = conn.execute(
            "SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (names.slot,)
        ).fetchone()
    except psycopg.errors.ConfigurationLimitExceeded as exc:
        raise ConnectorError(
            f"cannot create replication slot {names.slot}: {exc} (raise max_replication_slots)"
        ) from exc
    return [f"created logical replication slot {names.slot} at {lsn[0] if lsn else '?'}"]


def ensure_origin(conn: PgConnection, names: Names) -> list[str]:
    if origin_exists(conn, names.origin):
        return []
    conn.execute("SELECT pg_replication_origin_create(%s)", (names.origin,))
    return [f"created replication origin {names.origin}"]


def origin_exists(conn: PgConnection, name: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM pg_replication_origin WHERE roname = %s", (name,)
    ).fetchone() is not None


APPLIED_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (xid bigint NOT NULL, origin text NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (xid, origin))"
).format(sql.Identifier(SIDE_SCHEMA, APPLIED_TABLE))


#: One row per (table, key) the sink deleted: the xmin the deleted row had (the version
#: the delete's compare-and-set checked), by a digest of the key's canonical text.
DELETED_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (tbl text NOT NULL, key bytea NOT NULL,"
    " version bigint NOT NULL, origin text NOT NULL, at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (tbl, key))"
).format(sql.Identifier(SIDE_SCHEMA, DELETED_TABLE))


#: One row per pipeline using the schema (its first origin), made at setup and by every
#: apply session: another pipeline's teardown keeps the schema while a row is left,
#: also for a pipeline whose records are empty (set up, nothing written yet).
PIPELINES_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (origin text PRIMARY KEY,"
    " at timestamptz NOT NULL DEFAULT now())"
).format(sql.Identifier(SIDE_SCHEMA, PIPELINES_TABLE))
REGISTER = sql.SQL("INSERT INTO {} (origin) VALUES (%s) ON CONFLICT DO NOTHING").format(
    sql.Identifier(SIDE_SCHEMA, PIPELINES_TABLE))


#: One row per pipeline (its name exactly as written) and endpoint set up in this
#: database: the slot, publication and first origin it holds. Sanitised names are not
#: one-to-one (``Xpo-Dash`` and ``xpo_dash``), and a second pipeline deriving the same
#: names would silently share the first's slot and origin: each would confirm the
#: slot past changes the other had not read, and skip the other's writes as its own.
NAMES_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (pipeline text NOT NULL, endpoint text NOT NULL,"
    " slot text NOT NULL, publication text NOT NULL, origin text NOT NULL,"
    " at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (pipeline, endpoint))"
).format(sql.Identifier(SIDE_SCHEMA, NAMES_TABLE))


def ensure_side_table(conn: PgConnection) -> list[str]:
    done: list[str] = []
    for table, ddl, what in ((APPLIED_TABLE, APPLIED_DDL, "the sink's record of its own"
                              " transactions"),
                             (DELETED_TABLE, DELETED_DDL, "the sink's record of the rows it"
                              " deleted"),
                             (PIPELINES_TABLE, PIPELINES_DDL, "the sink's record of the"
                              " pipelines using it"),
                             (NAMES_TABLE, NAMES_DDL, "the record of which pipeline holds"
                              " which names here")):
        exists = conn.execute("SELECT to_regclass(%s)", (f"{SIDE_SCHEMA}.{table}",)).fetchone()
        if exists is not None and exists[0] is not None:
            continue
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
            sql.Identifier(SIDE_SCHEMA)))
        conn.execute(ddl)
        done.append(f"created {SIDE_SCHEMA}.{table} ({what})")
    return done


def _table_exists(conn: PgConnection, table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{SIDE_SCHEMA}.{table}",)).fetchone()
    return row is not None and row[0] is not None


def holders(conn: PgConnection, names: Names) -> list[tuple[str, str, list[str]]]:
    """``(pipeline, endpoint, shared)`` for each record here, other than this pipeline's
    at this endpoint, that holds one of ``names``' slot, publication or origin (the
    origin is the pipeline's, so only another pipeline's record can share it);
    ``shared`` says which, as ``kind name``."""
    if not _table_exists(conn, NAMES_TABLE):
        return []
    rows = conn.execute(
        sql.SQL("SELECT pipeline, endpoint, slot, publication, origin FROM {}"
                " WHERE slot = %s OR publication = %s OR origin = %s ORDER BY 1, 2").format(
            sql.Identifier(SIDE_SCHEMA, NAMES_TABLE)),
        (names.slot, names.publication, names.origin)).fetchall()
    out: list[tuple[str, str, list[str]]] = []
    for pipeline, endpoint, slot, publication, origin in rows:
        if pipeline == names.pipeline and endpoint == names.endpoint:
            continue
        shared = [f"{kind} {name}" for kind, name, theirs in (
            ("slot", names.slot, slot), ("publication", names.publication, publication),
            ("origin", names.origin, origin if pipeline != names.pipeline else None))
            if name == theirs]
        if shared:
            out.append((str(pipeline), str(endpoint), shared))
    return out


def refuse_shared_names(conn: PgConnection, names: Names, *, reading: bool = False) -> None:
    """Raise :class:`ConnectorError` if another pipeline (or another endpoint of this one)
    holds, in this database, a slot, publication or origin name this endpoint derives.

    ``reading``: before the source reads the slot (a pipeline whose setup was refused
    must not read, and confirm, the other's slot either)."""
    found = holders(conn, names)
    if not found:
        return
    where = f"endpoint {names.endpoint} (database {conn.info.dbname})"
    lines = []
    others: list[str] = []
    for pipeline, endpoint, shared in found:
        who = (f"pipeline {pipeline!r} (its endpoint {endpoint!r})" if pipeline != names.pipeline
               else f"endpoint {endpoint!r} of this pipeline")
        lines.append(f"{who} holds {', '.join(shared)}")
        if pipeline != names.pipeline:
            others.append(pipeline)
    fix = []
    if others:
        fix.append(
            f"Pipeline names are reduced to lower-case letters, digits and _ for these names,"
            f" so {names.pipeline!r} and {' and '.join(repr(o) for o in dict.fromkeys(others))}"
            " would share them: each would confirm the slot past changes the other has not"
            " read, and skip the other's writes as its own. Rename this pipeline (its"
            " `pipeline:` key) to a name that differs from the other's in lower-case"
            " letters, digits and _ (renaming the other would orphan its slot and origin)")
    else:
        fix.append("Endpoint names are reduced to lower-case letters, digits and _ for these"
                   " names, so the two endpoints would share one slot: rename one of them")
    if not any(s.startswith("origin ") for _p, _e, shared in found for s in shared):
        fix.append("or name another slot and publication in this endpoint's settings"
                   " (slot:, publication:)")
    stale = "; ".join(
        f"DELETE FROM {SIDE_SCHEMA}.{NAMES_TABLE} WHERE pipeline = "
        f"'{p.replace(chr(39), chr(39) * 2)}'" for p in dict.fromkeys(others))
    doing = "read its slot" if reading else "be set up"
    raise ConnectorError(
        f"{where}: pipeline {names.pipeline!r} cannot {doing} here, its names are already"
        " held:\n  - " + "\n  - ".join(lines) + "\n" + ", ".join(fix) + ", then run"
        " `cdcsync setup`. Nothing was changed at this endpoint (a `cdcsync teardown`"
        " under this name leaves what the other pipeline holds here)." + (
            f" If the other pipeline is gone, run `cdcsync teardown` with its file, or"
            f" forget it here: {stale}" if stale else ""))


def record_names(conn: PgConnection, names: Names) -> None:
    """Record that this pipeline holds its names at this endpoint (see NAMES_DDL)."""
    conn.execute(
        sql.SQL("INSERT INTO {} (pipeline, endpoint, slot, publication, origin)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (pipeline, endpoint) DO UPDATE"
                " SET slot = excluded.slot, publication = excluded.publication,"
                " origin = excluded.origin").format(
            sql.Identifier(SIDE_SCHEMA, NAMES_TABLE)),
        (names.pipeline, names.endpoint, names.slot, names.publication, names.origin))


def register(conn: PgConnection, names: Names) -> None:
    """Say that the pipeline uses the side schema (see PIPELINES_DDL)."""
    conn.execute(REGISTER, (names.origin,))


def setup(conn: PgConnection, names: Names, tables: Sequence[TableInfo]) -> list[str]:
    """Create what is missing for reading ``tables``: none for an endpoint that is only
    written to (no slot then: an unread slot would hold the cluster's WAL forever; one
    left by an earlier setup, when the pipeline still read here, is dropped)."""
    check_wal_level(conn)
    refuse_shared_names(conn, names)  # before anything is made or dropped
    done: list[str] = []
    capture = bool(tables)
    if capture:
        done += ensure_replica_identity(conn, tables)
        done += ensure_publication(conn, names, tables)
        done += ensure_slot(conn, names)
    else:
        done += [f"{line}: the pipeline only writes to this endpoint"
                 for line in drop_capture(conn, names)]
    done += ensure_origin(conn, names)
    done += ensure_side_table(conn)
    register(conn, names)
    record_names(conn, names)
    if capture:
        done += commit_timestamp_note(conn)
    return done


def commit_timestamps_on(conn: PgConnection) -> bool:
    row = conn.execute("SELECT current_setting('track_commit_timestamp')").fetchone()
    return row is not None and row[0] == "on"


def commit_timestamp_note(conn: PgConnection) -> list[str]:
    """A note when commit timestamps are off: an endpoint both read and written then
    cannot recognise rows its applications write inside savepoints (see sink.py)."""
    if commit_timestamps_on(conn):
        return []
    return ["note: track_commit_timestamp is off; where this endpoint also receives"
            " changes, a row its applications wrote inside a savepoint (nested ORM"
            " transactions, PL/pgSQL EXCEPTION blocks) holds up later writes of that key"
            " here until it is edited again. Set it on (a restart): docs/postgres.md"]


def wait_slot_released(conn: PgConnection, slot: str, timeout: float = 5.0) -> int | None:
    """The pid still streaming ``slot`` after ``timeout`` seconds, or ``None``.

    A walsender lets go of its slot a moment after its client disconnects.
    """
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is None or row[0] is None or time.monotonic() >= deadline:
            return None if row is None else row[0]
        time.sleep(0.05)


def drop_capture(conn: PgConnection, names: Names, *, slot: bool = True,
                 publication: bool = True) -> list[str]:
    """Drop the slot and the publication (idempotent); a slot a process still streams
    is a ConnectorError. ``slot``/``publication`` False: leave it (another pipeline's)."""
    done: list[str] = []
    if slot:
        done += _drop_slot(conn, names)
    if publication and conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (names.publication,)
    ).fetchone():
        conn.execute(sql.SQL("DROP PUBLICATION {}").format(sql.Identifier(names.publication)))
        done.append(f"dropped publication {names.publication}")
    return done


def _drop_slot(conn: PgConnection, names: Names) -> list[str]:
    done: list[str] = []
    pid = wait_slot_released(conn, names.slot)
    row = conn.execute(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (names.slot,)
    ).fetchone()
    if row is not None:
        if pid is not None and row[0] is not None:
            raise ConnectorError(
                f"replication slot {names.slot} is in use by process {row[0]}:"
                " stop the cdcsync daemon reading it first"
            )
        conn.execute("SELECT pg_drop_replication_slot(%s)", (names.slot,))
        done.append(f"dropped replication slot {names.slot}")
    return done


def teardown(conn: PgConnection, names: Names) -> list[str]:
    """Drop the slot, the publication and the pipeline's origins (idempotent), but for
    those another pipeline holds here (its name sanitises alike: names.py), and forget
    the pipeline's record of its names."""
    held = {s: p for p, _e, shared in holders(conn, names) if p != names.pipeline
            for s in shared}  # (what another pipeline holds here -> that pipeline)
    theirs = set(held)
    done = [f"kept {s}: pipeline {p!r} holds it here (their names sanitise alike)"
            for s, p in held.items()]
    own_origin = f"origin {names.origin}" not in theirs
    done += drop_capture(conn, names, slot=f"slot {names.slot}" not in theirs,
                         publication=f"publication {names.publication}" not in theirs)
    for (origin,) in (() if not own_origin else conn.execute(
        "SELECT roname FROM pg_replication_origin WHERE roname = %s OR starts_with(roname, %s)",
        (names.origin, names.origin + "."),
    ).fetchall()):
        if not names.is_own_origin(str(origin)):
            continue
        try:
            conn.execute("SELECT pg_replication_origin_drop(%s)", (origin,))
        except psycopg.errors.ObjectInUse as exc:
            raise ConnectorError(
                f"replication origin {origin} is in use: stop the cdcsync processes"
                f" writing to this endpoint first ({exc})"
            ) from exc
        done.append(f"dropped replication origin {origin}")
    empty = True
    found = False
    for name in (APPLIED_TABLE, DELETED_TABLE, PIPELINES_TABLE, NAMES_TABLE):
        if not _table_exists(conn, name):
            continue
        found = True
        table = sql.Identifier(SIDE_SCHEMA, name)
        if name == NAMES_TABLE:
            conn.execute(sql.SQL("DELETE FROM {} WHERE pipeline = %s").format(table),
                         (names.pipeline,))
        elif own_origin:  # (another pipeline's records are tagged with a shared origin)
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE origin = %s OR starts_with(origin, %s)"
                        ).format(table),
                (names.origin, names.origin + "."),
            )
        empty = empty and conn.execute(
            sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(table)).fetchone() == (True,)
    if found and empty:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(SIDE_SCHEMA)))
        done.append(f"dropped schema {SIDE_SCHEMA}")
    return done


def slot_status(
    conn: PgConnection, names: Names, *, warn_retained: int = DEFAULT_WARN_RETAINED
) -> dict[str, Any]:
    """Slot health for ``cdcsync status``: lag, retained WAL, and warnings.

    ``lag_bytes`` is how far the slot's confirmed position is behind the current
    WAL position (what the pipeline has not confirmed yet); ``retained_wal_bytes``
    is how much WAL the server keeps for the slot (from its restart point).
    """
    out: dict[str, Any] = {"slot": names.slot, "publication": names.publication,
                           "origin": names.origin, "warnings": []}
    row = conn.execute(
        "SELECT active, active_pid, restart_lsn::text, confirmed_flush_lsn::text, wal_status,"
        " pg_current_wal_lsn()::text,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (names.slot,),
    ).fetchone()
    out["exists"] = row is not None
    if row is not None:
        active, pid, restart, confirmed, wal_status, current, lag, retained = row
        out.update(active=bool(active), active_pid=pid, restart_lsn=restart,
                   confirmed_flush_lsn=confirmed, current_lsn=current, wal_status=wal_status,
                   lag_bytes=int(lag or 0), retained_wal_bytes=int(retained or 0))
        if out["retained_wal_bytes"] > warn_retained:
            out["warnings"].append(
                f"SLOT {names.slot} HOLDS {_size(out['retained_wal_bytes'])} OF WAL"
                f" (lag {_size(out['lag_bytes'])}): run the pipeline, or drop the slot with"
                " `cdcsync teardown` if it is no longer used; the server keeps WAL until then"
            )
        if wal_status == "lost":
            out["warnings"].append(
                f"SLOT {names.slot} WAS INVALIDATED (wal_status=lost): the server removed WAL"
                " it had not read (max_slot_wal_keep_size), so changes are missing: run"
                " `cdcsync resync PIPELINE ENTITY... --reset-stream` for the entities read"
                " from here")
        elif wal_status == "unreserved":
            out["warnings"].append(
                f"SLOT {names.slot} IS ABOUT TO LOSE WAL (wal_status=unreserved): the server"
                " removes WAL past max_slot_wal_keep_size at its next checkpoint: run the"
                " pipeline now, or a resync --reset-stream will be needed")
    others = conn.execute(
        "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE starts_with(slot_name, %s) AND slot_name <> %s"
        " AND database = current_database() AND NOT active",
        (names.origin + "_", names.slot),
    ).fetchall()
    for name, retained in others:
        out["warnings"].append(
            f"SLOT {name} LOOKS LEFT BEHIND by this pipeline (inactive, holding"
            f" {_size(int(retained or 0))} of WAL): drop it with"
            f" SELECT pg_drop_replication_slot('{name}') if nothing reads it"
        )
    # Another pipeline's slot holding much WAL: one renamed or dropped without its
    # teardown fills the server's disk, and its own status is never run again.
    for name, retained in conn.execute(
        "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE starts_with(slot_name, 'cdcsync_')"
        " AND NOT starts_with(slot_name, %s) AND slot_name <> %s AND NOT active"
        " AND pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) > %s",
        (names.origin + "_", names.slot, warn_retained),
    ).fetchall():
        out["warnings"].append(
            f"SLOT {name} OF ANOTHER CDCSYNC PIPELINE IS INACTIVE AND HOLDS"
            f" {_size(int(retained or 0))} OF WAL: run that pipeline, or tear it down; if it"
            f" is gone (renamed, deleted), SELECT pg_drop_replication_slot('{name}')"
        )
    orphans = orphan_origins(conn)
    if orphans:
        out["warnings"].append(
            f"{len(orphans)} cdcsync replication origin(s) look left behind (no slot of their"
            f" pipeline remains, and this database's {SIDE_SCHEMA}.{PIPELINES_TABLE} does not"
            f" list it): {', '.join(orphans[:10])}; each holds one of the server's"
            " max_replication_slots origin entries until dropped (unless its pipeline"
            " writes only to another database of this server)"
        )
    return out


def orphan_origins(conn: PgConnection) -> list[str]:
    """cdcsync origins that look left behind: no ``cdcsync_<pipeline>_*`` slot is left
    in the cluster for their pipeline, and this database's ``cdcsync.pipelines`` does
    not list it. Each keeps an entry of the server's ``max_replication_slots`` origin
    array until it is dropped.

    A pipeline that only writes to this server (MariaDB -> PostgreSQL, a one-way
    target) has its origin and no slot here: until 2026-12-07 every ``status`` of such a
    pipeline warned that its own origin was left behind, and exited 3. One that writes
    only to another database of the server is not seen from here."""
    listed = conn.execute("SELECT to_regclass(%s)",
                          (f"{SIDE_SCHEMA}.{PIPELINES_TABLE}",)).fetchone()
    registered = (sql.SQL(" AND NOT EXISTS (SELECT FROM {} p WHERE p.origin ="
                          " split_part(o.roname, '.', 1))").format(
                              sql.Identifier(SIDE_SCHEMA, PIPELINES_TABLE))
                  if listed is not None and listed[0] is not None else sql.SQL(""))
    rows = conn.execute(sql.SQL(
        "SELECT o.roname FROM pg_replication_origin o"
        " WHERE starts_with(o.roname, 'cdcsync_') AND NOT EXISTS ("
        "  SELECT FROM pg_replication_slots s WHERE starts_with(s.slot_name,"
        "   split_part(o.roname, '.', 1) || '_')){}"
        " ORDER BY 1").format(registered)
    ).fetchall()
    return [str(r[0]) for r in rows]


def drop_origins(conn: PgConnection, names: Sequence[str]) -> list[str]:
    """Drop the origins that no session is using; returns those dropped."""
    dropped = []
    for name in names:
        try:
            conn.execute("SELECT pg_replication_origin_drop(%s)", (name,))
        except (psycopg.errors.ObjectInUse, psycopg.errors.UndefinedObject):
            continue
        dropped.append(name)
    return dropped


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}"
        n = int(n / 1024)
    return f"{n} TB"


def lsn_text(lsn: int) -> str:
    return format_lsn(lsn)
