"""The state store: SQLAlchemy Core over a SQLite file (default) or PostgreSQL.

Everything that belongs to one batch — the key states, their outbox rows, the
conflicts the batch raised and the checkpoint it reached — is written in ONE
transaction with set-based statements, never a round trip per row.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from conflict.canonical import parse_json
from conflict.protocol import KeyState
from sync.state import schema
from sync.state.codec import json_text, state_from_json, state_to_json

log = logging.getLogger("cdcsync.state")

CHUNK = 500  # keys per IN list
STATS_EVERY = 5.0  # seconds between looks at key_states' statistics (PostgreSQL)
STATS_MIN_ROWS = 1000  # changed rows under which statistics are not worth refreshing
_KS = f'"{schema.key_states.name}"'


def _chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT in the dialect's own syntax (for its ON CONFLICT clauses)."""
    from sqlalchemy.dialects import postgresql, sqlite

    name = conn.dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(  # pragma: no cover - the documented backends: SQLite, PostgreSQL
        f"unsupported state store dialect {name!r}")


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """INSERT ... ON CONFLICT DO UPDATE, in the dialect's own syntax, as one executemany."""
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    update = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=update), rows)


@dataclass(frozen=True)
class _DriverSql:
    upsert_state: str
    insert_outbox: str
    upsert_checkpoint: str
    mark: str  # the driver's parameter marker
    # each + an IN list of keys:
    select_states: str  # key, the state as JSON text, its save stamp
    select_stamps: str  # key, its save stamp
    delete_outbox: str
    any_pending: str  # 1 if some of the keys wait in the outbox (parked keys do not count)
    upsert_staged: str
    select_staged_range: str  # rows of the keys after one up to another, JSON as text, by key
    select_staged_keys: str  # the first n staged keys after one, in order


def _in_list(mark: str, n: int) -> str:
    return f"({', '.join([mark] * n)})"


@functools.cache
def _driver_sql_for(dialect: str, paramstyle: str) -> _DriverSql:
    if dialect not in ("sqlite", "postgresql"):  # pragma: no cover - documented backends only
        raise ValueError(f"unsupported state store dialect {dialect!r}")
    mark = "?" if paramstyle == "qmark" else "%s"
    state = f"CAST({mark} AS json)" if dialect == "postgresql" else mark
    state_text = 'CAST("state" AS text)' if dialect == "postgresql" else '"state"'
    ks, ob, cp = schema.key_states.name, schema.outbox.name, schema.checkpoints.name
    sr = schema.snapshot_rows.name

    def text(col: str) -> str:
        return f'CAST("{col}" AS text)' if dialect == "postgresql" else f'"{col}"'

    return _DriverSql(
        upsert_state=(
            f'INSERT INTO "{ks}" ("pipeline", "entity", "key", "state", "parked", "updated_at")'
            f" VALUES ({mark}, {mark}, {mark}, {state}, {mark}, {mark})"
            ' ON CONFLICT ("pipeline", "entity", "key") DO UPDATE SET "state" = excluded."state",'
            ' "parked" = excluded."parked", "updated_at" = excluded."updated_at"'
        ),
        insert_outbox=(
            f'INSERT INTO "{ob}" ("pipeline", "entity", "key", "endpoint")'
            f" VALUES ({mark}, {mark}, {mark}, {mark})"
        ),
        upsert_checkpoint=(
            f'INSERT INTO "{cp}" ("pipeline", "endpoint", "entity", "checkpoint", "updated_at")'
            f" VALUES ({mark}, {mark}, {mark}, {state}, {mark})"
            ' ON CONFLICT ("pipeline", "endpoint", "entity") DO UPDATE SET'
            ' "checkpoint" = excluded."checkpoint", "updated_at" = excluded."updated_at"'
        ),
        mark=mark,
        select_states=(
            f'SELECT "key", {state_text}, "updated_at" FROM "{ks}"'
            f' WHERE "pipeline" = {mark} AND "entity" = {mark} AND "key" IN '
        ),
        select_stamps=(
            f'SELECT "key", "updated_at" FROM "{ks}"'
            f' WHERE "pipeline" = {mark} AND "entity" = {mark} AND "key" IN '
        ),
        delete_outbox=(
            f'DELETE FROM "{ob}" WHERE "pipeline" = {mark} AND "entity" = {mark} AND "key" IN '
        ),
        any_pending=(
            f'SELECT 1 FROM "{ob}" o JOIN "{ks}" k ON k."pipeline" = o."pipeline"'
            ' AND k."entity" = o."entity" AND k."key" = o."key"'
            f' WHERE k."parked" IS NULL AND o."pipeline" = {mark} AND o."entity" = {mark}'
            ' AND o."key" IN '
        ),
        upsert_staged=(
            f'INSERT INTO "{sr}" ("pipeline", "entity", "key", "endpoint", "row", "row_version",'
            f' "committed_at") VALUES ({mark}, {mark}, {mark}, {mark}, {state}, {state}, {mark})'
            ' ON CONFLICT ("pipeline", "entity", "key", "endpoint") DO UPDATE SET'
            ' "row" = excluded."row", "row_version" = excluded."row_version",'
            ' "committed_at" = excluded."committed_at"'
        ),
        select_staged_range=(
            f'SELECT "key", "endpoint", {text("row")}, {text("row_version")}, "committed_at"'
            f' FROM "{sr}" WHERE "pipeline" = {mark} AND "entity" = {mark} AND "key" > {mark}'
            f' AND "key" <= {mark} ORDER BY "key"'
        ),
        select_staged_keys=(
            f'SELECT DISTINCT "key" FROM "{sr}" WHERE "pipeline" = {mark}'
            f' AND "entity" = {mark} AND "key" > {mark} ORDER BY "key" LIMIT {mark}'
        ),
    )


def _driver_sql(conn: Connection) -> _DriverSql:
    return _driver_sql_for(conn.dialect.name, conn.dialect.paramstyle)


_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def _migrate(engine: Engine) -> None:
    """Bring the schema up to date, once per URL per process (Alembic's context is global)."""
    from alembic import command
    from alembic.config import Config

    url = engine.url.render_as_string(hide_password=False)
    with _migrate_lock:
        if url in _migrated:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")  # branches of parallel work all apply
        _migrated.add(url)


def _state_text(st: KeyState) -> str:
    """A key state's stored JSON: its content and key as the JSON text they have
    already (orjson fragments), unless orjson refuses a part made anew (an integer past
    64 bits in a parked side's JSON document, or in a content read and kept as a tree):
    then the whole state as JSON trees, which the standard library writes (it cannot
    write orjson's fragments)."""
    try:
        return orjson.dumps(state_to_json(st, fragments=True)).decode()
    except TypeError:
        return json_text(state_to_json(st))


def open_store(url: str) -> StateStore:
    """Open (creating and migrating as needed) the state store at a SQLAlchemy URL."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                from connectors.base import RefusedError

                raise RefusedError(f"cannot open the state store at {url}: cannot make its"
                                   f" directory {exc.filename}: {exc.strerror}") from exc
    engine = sa.create_engine(url, future=True, json_serializer=json_text,
                              json_deserializer=parse_json)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A locked transaction takes SQLite's write lock at BEGIN, so that a
            # read-decide-write cannot interleave with another writer's.
            immediate = conn.get_execution_options().get("cdcsync_lock", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @sa.event.listens_for(engine, "handle_error")
    def _lost(context: Any) -> Exception | None:
        # A server that cannot be reached, or a connection it dropped (a restart, a
        # failover, a pooler's timeout), is a RetriableError as an endpoint's is: the
        # daemon's reader waits and reads again, the pool opens a new connection. (It
        # stopped the daemon.)
        if context.connection is None:  # (connecting)
            return _unreachable(engine, context.original_exception)
        if context.is_disconnect:
            from connectors.base import RetriableError

            text = str(context.original_exception).strip()
            return RetriableError(_masked(engine, f"the state store at {_url(engine)} dropped"
                                                  f" the connection: {text}"))
        return None

    with engine.connect():  # (its errors as above: before any migration is tried)
        pass
    _migrate(engine)
    return StateStore(engine)


def _unreachable(engine: Engine, orig: BaseException | None) -> Exception:
    """A state store that cannot be opened, as an endpoint's server would be reported:
    :class:`RetriableError` (down, restarting: tried again with backoff by the caller) or
    :class:`RefusedError` (credentials, an unknown database, a file that cannot be
    opened: no retry helps); the URL without its password, the driver's message without
    SQLAlchemy's wrapping."""
    from connectors.base import RefusedError, RetriableError

    text = str(orig).strip()
    code = orig.args[0] if orig is not None and orig.args else None
    if engine.dialect.name == "sqlite":
        refused = True
    elif engine.dialect.name == "postgresql":
        from connectors.postgres.connect import refused as pg_refused

        refused = pg_refused(text)
    else:
        from connectors.mysql.session import REFUSED

        refused = code in REFUSED
    cls = RefusedError if refused else RetriableError
    return cls(_masked(engine, f"cannot open the state store at {_url(engine)}: {text}"))


def _url(engine: Engine) -> str:
    """The state store's URL for a message, its password still in: :func:`_masked`
    masks it up to the last ``@`` (SQLAlchemy's ``hide_password`` ends the password at
    the first, and showed the rest of one holding a raw ``@`` as the host)."""
    return engine.url.render_as_string(hide_password=False)


def _masked(engine: Engine, message: str) -> str:
    """``message`` without the URL's password (:func:`sync.logs.without_password`)."""
    from sync.logs import without_password

    return without_password(message, str(engine.url.password or ""), engine.url.host or "")


_LOCAL_LOCKS: dict[str, threading.RLock] = {}
_last_stamp = 0.0
_stamp_lock = threading.Lock()


def new_stamp() -> float:
    """A save stamp (``updated_at``): the time, strictly increasing within the process,
    so that a state saved again never carries the stamp it was loaded with."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time(), _last_stamp + 1e-6)
        return _last_stamp


class StateStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stats_checked = -STATS_EVERY  # (monotonic: see _fresh_statistics)
        url = engine.url.render_as_string(hide_password=False)
        with _migrate_lock:
            self._local_lock = _LOCAL_LOCKS.setdefault(url, threading.RLock())

    def close(self) -> None:
        self.engine.dispose()

    def share_write_lock(self, lock: Any) -> None:
        """Queue this store's SQLite write transactions on ``lock``, shared with other
        processes writing the same file (sync/parallel.py), rather than in SQLite's
        busy handler. A reentrant lock, as the per-process one it replaces."""
        self._local_lock = lock

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[Connection]:
        """One transaction; with ``lock``, serialised against every other holder of it.

        The daemon's reader (load, decide, save a batch) and its workers (record
        apply results on freshly loaded states) both take the lock of the
        entity, so neither overwrites the other's update of a key state.
        """
        sqlite = self.engine.dialect.name == "sqlite"
        if lock is None:
            # SQLite has one writer at a time: every write transaction of this process,
            # locked or not, queues on one mutex (an instant hand-off) rather than in
            # SQLite's busy handler, which sleeps 1, 2, 5 ... 100 ms between tries. A
            # lease renewal caught there stalled its reader's batch by as much.
            with self._local_lock if sqlite else nullcontext(), \
                    self.engine.begin() as conn:
                yield conn
            return
        if sqlite:
            with self._local_lock, self._locked(lock) as conn:
                yield conn
            return
        with self._locked(lock) as conn:
            yield conn

    @contextmanager
    def _locked(self, lock: str) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            conn = raw.execution_options(cdcsync_lock=True)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                 {"k": lock})
                yield conn

    def _fresh_statistics(self) -> None:
        """Keep PostgreSQL's statistics of ``key_states`` within 2x of the table.

        A state lookup is an IN list of keys within one pipeline and entity. Planned
        from statistics of a much smaller table (or none: a new store, a new entity,
        a server with autovacuum off, or in the minute before it comes by), PostgreSQL
        expects a couple of rows per entity and scans the entity's whole key range
        for every lookup instead of finding each key: 45 ms against 2.7 ms for 500
        keys among 94k, growing with the table, so that a first sync went quadratic.
        So at most every ``STATS_EVERY`` seconds, a store about to look keys up asks
        how much the table changed since its last ANALYZE, and runs one when that is
        more than it held then (a doubling: a few ANALYZEs over any growth). A user
        that does not own the table gets PostgreSQL's warning and autovacuum's timing.
        SQLite needs none: it finds keys by its primary key whatever it knows."""
        now = time.monotonic()
        if self.engine.dialect.name != "postgresql" or now < self._stats_checked + STATS_EVERY:
            return
        self._stats_checked = now
        try:
            with self.engine.begin() as conn:
                row = conn.exec_driver_sql(
                    "SELECT s.n_mod_since_analyze, c.reltuples FROM pg_stat_user_tables s"
                    f" JOIN pg_class c ON c.oid = s.relid WHERE s.relid = '{_KS}'::regclass"
                ).first()
                if row is not None and row[0] > max(STATS_MIN_ROWS, row[1]):
                    conn.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {_KS}")  # (one at a time)
        except sa.exc.DBAPIError as exc:  # refused (before PostgreSQL 12: no SKIP_LOCKED)
            self._stats_checked = float("inf")  # (said once, not every few seconds)
            log.warning("could not refresh the state store's statistics (ANALYZE %s): %s",
                        _KS, str(exc.orig).strip())

    # --- checkpoints ---------------------------------------------------------------

    def checkpoint(self, pipeline: str, endpoint: str, entity: str) -> dict[str, Any] | None:
        t = schema.checkpoints
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.checkpoint).where(
                    t.c.pipeline == pipeline, t.c.endpoint == endpoint, t.c.entity == entity
                )
            ).first()
        return None if row is None else dict(row[0])

    def checkpoints(self, pipeline: str) -> list[dict[str, Any]]:
        t = schema.checkpoints
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.pipeline == pipeline)).mappings().all()
        return [dict(r) for r in rows]

    @staticmethod
    def put_checkpoint(
        conn: Connection, pipeline: str, endpoint: str, entity: str, checkpoint: Mapping[str, Any]
    ) -> None:
        # Driver SQL: every batch writes one, and statement building cost more than the write.
        conn.exec_driver_sql(_driver_sql(conn).upsert_checkpoint, (
            pipeline, endpoint, entity, json_text(dict(checkpoint)), time.time()))

    # --- key states ----------------------------------------------------------------

    def load(self, pipeline: str, entity: str, keys: Iterable[str],
             conn: Connection | None = None,
             stamps: dict[str, float] | None = None) -> dict[str, KeyState]:
        """The states of ``keys`` (text form); keys never seen get a fresh state.

        ``stamps``, if given, is filled with each stored state's save stamp (see
        :meth:`moved_since`).
        """
        wanted = list(dict.fromkeys(keys))
        out: dict[str, KeyState] = {}
        self._fresh_statistics()

        def _read(c: Connection) -> None:
            # Every change's state is loaded at least once: driver SQL and orjson,
            # without SQLAlchemy's per-row result processing (half the cost).
            sql = _driver_sql(c)
            for part in _chunks(wanted):
                rows = c.exec_driver_sql(sql.select_states + _in_list(sql.mark, len(part)),
                                         (pipeline, entity, *part)).fetchall()
                for key, state, at in rows:
                    out[key] = state_from_json(parse_json(state))
                    if stamps is not None:
                        stamps[key] = at

        if conn is None:
            with self.engine.connect() as c:
                _read(c)
        else:
            _read(conn)
        for k in wanted:
            if k not in out:  # (setdefault would make a state for every key)
                out[k] = KeyState()
        return out

    @staticmethod
    def moved_since(conn: Connection, pipeline: str, entity: str, keys: Iterable[str],
                    stamp: float | Mapping[str, float]) -> set[str]:
        """Which of ``keys`` were saved by someone else since they were saved (or loaded)
        with ``stamp`` (one for all, or one per key).

        Lets a writer that still holds the states it saved or loaded skip loading
        them again (what apply results are recorded on), and reload only those a
        concurrent writer (the reader, a steward's decision) changed meanwhile.
        """
        wanted = list(dict.fromkeys(keys))
        seen = StateStore._stamps(conn, pipeline, entity, wanted)
        if isinstance(stamp, Mapping):  # a key absent then and now has not moved
            return {k for k in wanted if seen.get(k) != stamp.get(k)}
        return {k for k in wanted if seen.get(k) != stamp}

    def saved_at(self, pipeline: str, entity: str, keys: Iterable[str]) -> dict[str, float]:
        """When each of ``keys`` that has a state was last saved."""
        with self.engine.connect() as conn:
            return self._stamps(conn, pipeline, entity, keys)

    @staticmethod
    def _stamps(conn: Connection, pipeline: str, entity: str,
                keys: Iterable[str]) -> dict[str, float]:
        sql = _driver_sql(conn)
        out: dict[str, float] = {}
        for part in _chunks(list(dict.fromkeys(keys))):
            rows = conn.exec_driver_sql(sql.select_stamps + _in_list(sql.mark, len(part)),
                                        (pipeline, entity, *part)).fetchall()
            out.update((k, float(at)) for k, at in rows)  # (fetchall: rows one by one
            # through SQLAlchemy's iterator cost more than the query)
        return out

    @staticmethod
    def encode(states: Mapping[str, KeyState]) -> dict[str, str]:
        """The stored form of ``states``: made before taking the state lock, it keeps
        the lock's hold short (see :meth:`save`)."""
        return {k: _state_text(st) for k, st in states.items()}

    @staticmethod
    def save(conn: Connection, pipeline: str, entity: str, states: Mapping[str, KeyState],
             *, stamp: float | None = None, encoded: Mapping[str, str] | None = None) -> float:
        """Write key states and their outbox rows (set-based) inside ``conn``'s transaction.

        ``encoded``: :meth:`encode` of these very states, made beforehand. Returns
        the stamp written as their ``updated_at`` (see :meth:`moved_since`).
        """
        now = new_stamp() if stamp is None else stamp
        if not states:
            return now
        # The hottest write of the engine (every key of every batch, twice): the JSON is
        # made here and the rows go to the driver's executemany as they are, without
        # SQLAlchemy's per-row parameter processing.
        sql = _driver_sql(conn)
        coded = encoded if encoded is not None else StateStore.encode(states)
        conn.exec_driver_sql(sql.upsert_state, [
            (pipeline, entity, k, coded[k], st.parked.conflict_id if st.parked else None, now)
            for k, st in states.items()
        ])
        for part in _chunks(list(states)):
            conn.exec_driver_sql(sql.delete_outbox + _in_list(sql.mark, len(part)),
                                 (pipeline, entity, *part))
        pending = [(pipeline, entity, k, t) for k, st in states.items() for t in sorted(st.outbox)]
        if pending:
            conn.exec_driver_sql(sql.insert_outbox, pending)
        return now

    @staticmethod
    def any_pending(conn: Connection, pipeline: str, entity: str, keys: Sequence[str]) -> bool:
        """Does any of ``keys`` still have pending applies (parked keys do not count)?"""
        sql = _driver_sql(conn)
        for part in _chunks(keys):
            if conn.exec_driver_sql(
                    sql.any_pending + _in_list(sql.mark, len(part)) + " LIMIT 1",
                    (pipeline, entity, *part)).first() is not None:
                return True
        return False

    def scan(self, pipeline: str, entity: str, where: sa.ColumnElement[bool] | None = None
             ) -> Iterator[dict[str, Any]]:
        """Every stored state of ``entity`` (``where``: a condition on ``key_states`` that
        narrows them), as its JSON tree: read as text and parsed by :func:`parse_json`
        (orjson, but for integers past 64 bits), quicker than the column type's own
        parsing (a truncate's deletes, sync/events.py; the rows a foreign key's action
        changed, sync/cascades.py)."""
        ks = schema.key_states
        query = sa.select(sa.type_coerce(ks.c.state, sa.Text)).where(
            ks.c.pipeline == pipeline, ks.c.entity == entity)
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            for (text,) in conn.execute(query):  # (a driver may parse JSON itself)
                yield parse_json(text) if isinstance(text, str | bytes) else text

    def outbox_keys(self, pipeline: str, entity: str) -> list[str]:
        ob = schema.outbox
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ob.c.key).where(ob.c.pipeline == pipeline, ob.c.entity == entity)
                .distinct().order_by(ob.c.key)
            )
            return [r[0] for r in rows]

    # --- marks (sync/capture.py save_once, sync/apply.py check_marks) ---------------

    @staticmethod
    def add_marks(conn: Connection, pipeline: str, run_id: int | None,
                  rows: Sequence[tuple[str, str, str]]) -> None:
        """Marks ``(entity, key, target)`` of run ``run_id``, written ahead of applies
        whose states are saved after them (sync/capture.py save_once): if the process
        dies between the two, they say where a write of ours may stand that no saved
        state knows of (sync/apply.py check_marks). Marks already there are kept."""
        if not rows:
            return
        conn.execute(dialect_insert(conn, schema.marks).on_conflict_do_nothing(), [
            {"pipeline": pipeline, "entity": e, "key": k, "endpoint": t, "run_id": run_id or 0}
            for e, k, t in rows])

    @staticmethod
    def clear_marks(conn: Connection, pipeline: str, entity: str, keys: Iterable[str],
                    *, run_id: int | None, mine: bool) -> None:
        """Drop the marks of ``keys`` that run ``run_id`` made (``mine``: its save
        recorded what its applies did) or that other runs made (``mine=False``: this
        run checked their targets)."""
        mk = schema.marks
        own = mk.c.run_id == (run_id or 0)
        for part in _chunks(list(dict.fromkeys(keys))):
            conn.execute(mk.delete().where(mk.c.pipeline == pipeline, mk.c.entity == entity,
                                           mk.c.key.in_(part), own if mine else ~own))

    def any_marks(self, pipeline: str) -> bool:
        """Did a batch run of ``pipeline`` die leaving marks (see :meth:`add_marks`)?"""
        mk = schema.marks
        with self.engine.connect() as conn:
            return conn.execute(sa.select(mk.c.key).where(mk.c.pipeline == pipeline)
                                .limit(1)).first() is not None

    def marks(self, pipeline: str, entity: str) -> dict[str, set[str]]:
        """The marks of ``entity``: key -> targets."""
        mk = schema.marks
        out: dict[str, set[str]] = {}
        with self.engine.connect() as conn:
            for k, t in conn.execute(sa.select(mk.c.key, mk.c.endpoint).where(
                    mk.c.pipeline == pipeline, mk.c.entity == entity)):
                out.setdefault(k, set()).add(t)
        return out

    def outbox_depth(self, pipeline: str) -> int:
        """Pending applies of ``pipeline`` (outbox rows: one per key and target)."""
        ob = schema.outbox
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(ob)
                                    .where(ob.c.pipeline == pipeline)).scalar_one())

    def count_keys(self, pipeline: str, entity: str) -> int:
        t = schema.key_states
        with self.engine.connect() as conn:
            return int(conn.execute(
                sa.select(sa.func.count()).select_from(t)
                .where(t.c.pipeline == pipeline, t.c.entity == entity)
            ).scalar_one())

    # --- snapshots -----------------------------------------------------------------

    def snapshot_progress(self, pipeline: str, entity: str) -> dict[str, dict[str, Any]]:
        t = schema.snapshots
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.pipeline == pipeline, t.c.entity == entity)
            ).mappings().all()
        return {r["endpoint"]: dict(r) for r in rows}

    def snapshots_under_way(self, pipeline: str) -> list[dict[str, Any]]:
        """Every endpoint's progress in the pipeline's unfinished snapshots (finished
        ones leave no rows), by entity and endpoint."""
        t = schema.snapshots
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.c.entity, t.c.endpoint, t.c.status, t.c.rows, t.c.updated_at)
                .where(t.c.pipeline == pipeline).order_by(t.c.entity, t.c.endpoint)
            ).mappings().all()
        return [dict(r) for r in rows]

    @staticmethod
    def put_snapshot_progress(conn: Connection, pipeline: str, entity: str, endpoint: str,
                              **fields: Any) -> None:
        row = dict(pipeline=pipeline, entity=entity, endpoint=endpoint,
                   updated_at=time.time(), **fields)
        _upsert(conn, schema.snapshots, [row], ["pipeline", "entity", "endpoint"])

    def snapshot_started(self, pipeline: str, entity: str) -> float | None:
        """No later than the moment the entity's snapshot began reading any endpoint."""
        rows, prog = schema.snapshot_rows, schema.snapshots
        with self.engine.connect() as conn:
            times = [conn.execute(sa.select(sa.func.min(rows.c.committed_at)).where(
                         rows.c.pipeline == pipeline, rows.c.entity == entity)).scalar(),
                     conn.execute(sa.select(sa.func.min(prog.c.updated_at)).where(
                         prog.c.pipeline == pipeline, prog.c.entity == entity)).scalar()]
        known = [float(t) for t in times if t is not None]
        return min(known) if known else None

    @staticmethod
    def stage_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Stage snapshot rows (``row`` and ``row_version`` as JSON trees): as the driver's
        executemany of JSON text, without SQLAlchemy's per-row parameter processing
        (every row of every endpoint of a staged snapshot is written here)."""
        if not rows:
            return
        conn.exec_driver_sql(_driver_sql(conn).upsert_staged, [
            (r["pipeline"], r["entity"], r["key"], r["endpoint"], json_text(r["row"]),
             json_text(r["row_version"]), r["committed_at"]) for r in rows])

    def staged(self, pipeline: str, entity: str, after: str | None, limit: int,
               until: str | None = None) -> list[dict[str, Any]]:
        """Staged rows of up to ``limit`` keys after ``after`` (or of every key after it up
        to ``until``), ordered by key; ``row`` as its JSON text (equal texts are equal
        rows: parsed once), ``row_version`` parsed.

        Two range reads of the primary key (the keys, then their rows), not one query
        with the keys as a subquery: PostgreSQL planned that from the statistics of the
        table before staging (empty) as a nested loop that ran the subquery again for
        each staged row, and a 100k-row reconcile never ended."""
        if until is None:
            keys = self.staged_keys(pipeline, entity, after, limit)
            if not keys:
                return []
            until = keys[-1]
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(_driver_sql(conn).select_staged_range, (
                pipeline, entity, after or "", until)).fetchall()
        # (SQLite gives a JSON column numeric affinity: a bare number comes back as one)
        return [{"key": k, "endpoint": ep, "row": row, "committed_at": at,
                 "row_version": parse_json(rv) if isinstance(rv, str | bytes) else rv}
                for k, ep, row, rv, at in rows]

    def staged_keys(self, pipeline: str, entity: str, after: str | None,
                    limit: int) -> list[str]:
        """The first ``limit`` staged keys after ``after``, in the order :meth:`staged`
        reads them (a reconcile's batch, split into ranges by the keys it ends at)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(_driver_sql(conn).select_staged_keys, (
                pipeline, entity, after or "", int(limit))).fetchall()
        return [str(k) for (k,) in rows]

    @staticmethod
    def finish_snapshot(conn: Connection, pipeline: str, entity: str) -> None:
        for t in (schema.snapshot_rows, schema.snapshots):
            conn.execute(t.delete().where(t.c.pipeline == pipeline, t.c.entity == entity))

    # --- runs and audit ------------------------------------------------------------

    def start_run(self, pipeline: str, command: str) -> int:
        with self.transaction() as conn:
            res = conn.execute(schema.runs.insert().values(
                pipeline=pipeline, command=command, started_at=time.time(), status="running"))
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def finish_run(self, run_id: int, status: str, summary: Mapping[str, Any]) -> None:
        t = schema.runs
        with self.transaction() as conn:
            conn.execute(t.update().where(t.c.id == run_id).values(
                finished_at=time.time(), status=status, summary=dict(summary)))

    def runs(self, pipeline: str, limit: int = 10) -> list[dict[str, Any]]:
        t = schema.runs
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(t.c.pipeline == pipeline)
                                .order_by(t.c.id.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    @staticmethod
    def audit(conn: Connection, pipeline: str, actor: str, action: str,
              detail: Mapping[str, Any]) -> None:
        StateStore.audit_many(conn, pipeline, actor, action, [detail])

    @staticmethod
    def audit_many(conn: Connection, pipeline: str, actor: str, action: str,
                   details: Sequence[Mapping[str, Any]]) -> None:
        """One audit entry per detail, all at once (one statement)."""
        if details:
            now = time.time()
            conn.execute(schema.audit.insert(), [
                {"at": now, "pipeline": pipeline, "actor": actor, "action": action,
                 "detail": dict(d)} for d in details])
