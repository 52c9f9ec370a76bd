"""The pipeline file as typed, validated, frozen models.

Paths and SQLite URLs are resolved against the pipeline file's directory
while validating (the loader passes a :class:`config.base.LoadContext`), so
what the models hold is ready to use: no code downstream needs to know where
the file was.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from config.base import ConfigModel, Name, SubLoc, context_of, fail, issues, resolve_path
from config.endpoints import EndpointConfig, MysqlConfig, PostgresConfig
from config.entity import EntityConfig, unknown_endpoints
from config.secrets import secrets_in
from config.urls import sqlalchemy_url_problem

if TYPE_CHECKING:
    from connectors.base import Binding

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)", re.DOTALL)
_SQLITE_FILE = re.compile(r"(?P<scheme>sqlite(?:\+\w+)?):///(?P<path>[^?]*)(?P<query>\?.*)?")
BROKER_SCHEMES = ("memory", "redis", "rediss", "amqp", "amqps")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?-]+")


#: the shortest secret written in the file that is masked wherever it appears
_WRITTEN_SECRET = 8


class StateConfig(ConfigModel):
    """Where checkpoints, versions and conflicts are kept: an SQLAlchemy URL.

    A relative SQLite path is relative to the pipeline file; the default is
    ``sqlite:///<config dir>/.cdcsync/<pipeline>.db`` (filled in by
    :class:`PipelineConfig`).
    """

    url: str

    @field_validator("url")
    @classmethod
    def _resolved(cls, value: str, info: ValidationInfo) -> str:
        if not _URL.fullmatch(value):
            raise fail(f"should be an SQLAlchemy URL like sqlite:///state.db, got {value!r}")
        problem = sqlalchemy_url_problem(value)
        if problem is not None:
            raise fail(problem)
        m = _SQLITE_FILE.fullmatch(value)
        if m is None or m["path"] in ("", ":memory:") or m["path"].startswith("file:"):
            return value
        path = resolve_path(Path(m["path"]), info)
        return f"{m['scheme']}:///{path}{m['query'] or ''}"


class BrokerConfig(ConfigModel):
    """The message broker carrying batches to workers: ``memory://`` runs in-process."""

    url: str = "memory://"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        m = _URL.fullmatch(value)
        if m is None or m["scheme"] not in BROKER_SCHEMES:
            allowed = ", ".join(f"{s}://" for s in BROKER_SCHEMES)
            raise fail(f"should be a broker URL starting with one of {allowed}; got {value!r}")
        return value


class BatchConfig(ConfigModel):
    size: int = Field(default=10000, ge=1)
    max_wait_ms: int = Field(default=20, ge=0)  # the daemon's micro-batch window
    snapshot_chunk: int = Field(default=50000, ge=1)
    # `cdcsync run` on a backlog: processes deciding and applying a batch's keys side by
    # side (sync/parallel.py); "auto": one per core, at most 4; 1: none
    workers: int | Literal["auto"] = "auto"
    # changes read, with more behind them, before they start
    parallel_from: int = Field(default=5000, ge=1)

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        if value == "auto" or (type(value) is int and value >= 1):
            return value
        raise fail(f"should be auto or a whole number of at least 1, got {value!r}")


class ConnectConfig(ConfigModel):
    """How an endpoint that cannot be reached is tried again when a command opens it."""

    tries: int = Field(default=5, ge=1)  # attempts in all; 1: fail at once
    backoff_s: float = Field(default=1.0, ge=0)  # first wait; doubled each retry, with jitter


class DaemonConfig(ConfigModel):
    """How ``cdcsync daemon`` and ``cdcsync worker`` run (sync/daemon)."""

    partitions: int = Field(default=4, ge=1, le=256)  # apply queues; one consumer each
    # threads applying in each process; each partition it consumes goes to one of them
    apply_threads: int = Field(default=2, ge=1, le=256)
    poll_ms: int = Field(default=20, ge=1)  # idle wait between reads of a quiet source
    lease_ttl_s: float = Field(default=5.0, gt=0)  # a dead reader's source is taken over after it
    max_pending: int = Field(default=200_000, ge=1)  # outbox rows before readers pause
    worker_timeout_ms: int = Field(default=20, ge=1)  # how often idle workers look for messages
    # `cdcsync worker` processes the daemon starts beside itself and leaves applying to
    # (a shared broker only): one interpreter lock no longer holds a backlog to one core
    worker_processes: int = Field(default=0, ge=0, le=64)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)  # 0: no metrics server


class ScheduleEntry(ConfigModel):
    """A command run on a cron schedule (five fields: minute hour day month weekday)."""

    cron: str
    command: str = Field(default="run", min_length=1)

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise fail(
                "should have 5 fields (minute hour day-of-month month day-of-week),"
                f" got {len(fields)} in {value!r}"
            )
        bad = [f for f in fields if not _CRON_FIELD.fullmatch(f)]
        if bad:
            raise fail(f"invalid cron field {bad[0]!r} in {value!r}")
        return value


class PipelineConfig(ConfigModel):
    """A whole pipeline file. Build it with :func:`config.load_pipeline`."""

    version: Literal[1] = 1
    pipeline: Name
    state: StateConfig
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    connect: ConnectConfig = Field(default_factory=ConnectConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    endpoints: dict[Name, EndpointConfig] = Field(min_length=1)
    entities: dict[Name, EntityConfig] = Field(min_length=1)
    schedule: list[ScheduleEntry] = Field(default_factory=list)

    _path: Path = PrivateAttr()
    _secret_values: frozenset[str] = PrivateAttr(frozenset())

    @model_validator(mode="before")
    @classmethod
    def _default_state(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        state = data.get("state", {})
        if not isinstance(state, dict) or "url" in state:
            return data
        name = data.get("pipeline")
        name = name if isinstance(name, str) else "pipeline"
        db = context_of(info).base_dir / ".cdcsync" / f"{name}.db"
        return {**data, "state": {**state, "url": f"sqlite:///{db}"}}

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> PipelineConfig:
        ctx = context_of(info)
        self._path = ctx.path
        self._secret_values = ctx.secret_values
        found: list[tuple[SubLoc, str]] = []
        if ctx.endpoint_names is None:
            known = frozenset(self.endpoints)
            for name, entity in self.entities.items():
                found += [
                    (("entities", name, "endpoints", *loc), msg)
                    for loc, msg in unknown_endpoints(entity.endpoints, known)
                ]
        found += self._shared_tables()
        if self.daemon.worker_processes and str(self.broker.url).startswith("memory"):
            found.append((("daemon", "worker_processes"),
                          "worker processes need a shared broker: set broker.url to a "
                          "redis:// or amqp:// URL, or worker_processes to 0"))
        if found:
            raise issues(found)
        return self

    def _shared_tables(self) -> list[tuple[SubLoc, str]]:
        """Two entities bound to one table of one endpoint would overwrite each other."""
        found: list[tuple[SubLoc, str]] = []
        owner: dict[tuple[str, str], str] = {}
        for name, entity in self.entities.items():
            for endpoint, bound in entity.endpoints.items():
                settings = self.endpoints.get(endpoint)
                table = bound.table
                if isinstance(settings, PostgresConfig) and "." not in table:
                    table = f"{settings.schema_}.{table}"
                elif isinstance(settings, MysqlConfig) and "." not in table:
                    table = f"{settings.database}.{table}"
                first = owner.setdefault((endpoint, table), name)
                if first != name:
                    found.append(
                        (
                            ("entities", name, "endpoints", endpoint, "table"),
                            f"table {bound.table!r} of endpoint {endpoint!r}"
                            f" is already bound to entity {first!r}",
                        )
                    )
        return found

    @property
    def path(self) -> Path:
        """The pipeline file this was loaded from (absolute)."""
        return self._path

    @property
    def secrets(self) -> frozenset[str]:
        """Every secret of the file, written in it or from the environment: for the
        process to mask wherever it may show up (logs, drivers' error messages).

        One written in the file counts from 8 characters: a short one is as likely a
        word of the messages themselves (a test server's password ``cdcsync`` masked
        every ``cdcsync setup`` they name), and URLs and ``password=`` are masked by
        their shape anyway."""
        written = secrets_in(self.model_dump(mode="json", by_alias=True))
        return frozenset({s for s in written if len(s) >= _WRITTEN_SECRET} | self._secret_values)

    @property
    def base_dir(self) -> Path:
        """The pipeline file's directory: relative paths in the file are relative to it."""
        return self._path.parent

    def binding(self, entity: str, endpoint: str) -> Binding:
        """The connector contract's view of ``entity`` at ``endpoint``."""
        return self.entities[entity].binding(entity, endpoint)
