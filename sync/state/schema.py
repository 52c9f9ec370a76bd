"""Tables of the state store (SQLAlchemy Core). Alembic migrations create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("endpoint", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("checkpoint", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Progress of an initial snapshot per endpoint, so that an interrupted one resumes.
snapshots = Table(
    "snapshots",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("endpoint", String(128), primary_key=True),
    Column("status", String(16), nullable=False),  # reading | staged
    Column("position", JSON, nullable=True),  # where the stream resumes after it
    Column("after_key", JSON, nullable=True),
    Column("rows", Integer, nullable=False, default=0),
    Column("updated_at", Float, nullable=False),
)

# Rows read by snapshots, staged so that every endpoint's copy of a key can be
# reconciled together (a merge by key that does not need them all in memory).
snapshot_rows = Table(
    "snapshot_rows",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("endpoint", String(128), primary_key=True),
    Column("row", JSON, nullable=False),
    Column("row_version", JSON, nullable=True),
    Column("committed_at", Float, nullable=False),
)

key_states = Table(
    "key_states",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("state", JSON, nullable=False),
    Column("parked", String(32), nullable=True),
    Column("updated_at", Float, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("endpoint", String(128), primary_key=True),
)

#: Targets a batch run is about to write (sync/capture.py save_once), by the run's id:
#: cleared by that run's save of the key, and otherwise kept until a later run checked
#: them (sync/apply.py check_marks). Rows of another run say where a run that died
#: may have written what no saved state knows of.
marks = Table(
    "marks",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("key", Text, primary_key=True),
    Column("endpoint", String(128), primary_key=True),
    Column("run_id", Integer, primary_key=True, autoincrement=False),
)

# What each entity synchronised at its last run and what its sources' tables held
# (sync/columns.py): a column synchronised now and not then, which a source's table
# held already, came into the entity by an edit of the pipeline file, its values never
# copied.
entity_columns = Table(
    "entity_columns",
    metadata,
    Column("pipeline", String(128), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("columns", JSON, nullable=False),
    Column("updated_at", Float, nullable=False),
)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(128), nullable=False),
    Column("entity", String(128), nullable=False),
    Column("key", Text, nullable=False),
    Column("status", String(16), nullable=False),  # resolved | open
    Column("policy", String(128), nullable=False),
    Column("winner", Text, nullable=True),  # current | incoming | merged | endpoint | fields:...
    Column("reason", Text, nullable=False, default=""),
    Column("sides", JSON, nullable=False),
    Column("base", JSON, nullable=True),
    Column("resolution", JSON, nullable=True),
    Column("vector", JSON, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("decided_at", Float, nullable=True),
    Column("decided_by", Text, nullable=True),
    Column("run_id", Integer, nullable=True),
)
Index("ix_conflicts_status", conflicts.c.pipeline, conflicts.c.status)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("command", String(32), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("status", String(16), nullable=False),  # running | ok | attention | failed
    Column("summary", JSON, nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("pipeline", String(128), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("detail", JSON, nullable=True),
)

# A named lease: one daemon reads each source at a time; one scheduled run of a
# pipeline at a time. Expiry, not a held connection, so a crash frees it.
leases = Table(
    "leases",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

# Applies that failed permanently (not a transient fault) after their last try.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(128), nullable=False),
    Column("entity", String(128), nullable=False),
    Column("target", String(128), nullable=False),
    Column("keys", JSON, nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    sqlite_autoincrement=True,  # an id names one letter for good (logs, audit): 0007
)
