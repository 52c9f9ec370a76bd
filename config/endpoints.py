"""Per-kind endpoint settings, chosen by the ``kind`` key of each endpoint.

One model per connector kind, named ``<Kind>Config`` after the connector
classes that consume them (``PostgresSource`` reads a :class:`PostgresConfig`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from config.base import ConfigModel, fail, issues, resolve_path
from config.urls import postgres_dsn_problem

_HTTP_URL = re.compile(r"https?://[^\s/]+\S*")


def _check_http_url(value: str) -> str:
    if not _HTTP_URL.fullmatch(value):
        raise fail(f"should be an http:// or https:// URL, got {value!r}")
    return value


class SqliteConfig(ConfigModel):
    """An SQLite database file; a relative ``path`` is relative to the pipeline file."""

    kind: Literal["sqlite"]
    path: Path

    @field_validator("path", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise fail("should not be empty")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: Path, info: ValidationInfo) -> Path:
        return resolve_path(value, info)


#: PostgreSQL settings that a ``dsn`` replaces.
PG_DSN_EXCLUDES = ("host", "port", "user", "password", "dbname")


class PostgresConfig(ConfigModel):
    """A PostgreSQL database: either ``dsn`` or ``host``/``port``/``user``/``password``/``dbname``.

    ``slot`` and ``publication`` stay ``None`` unless set: the connector names
    them ``cdcsync_<pipeline>_<endpoint>``.
    """

    kind: Literal["postgres"]
    dsn: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    slot: str | None = None
    publication: str | None = None
    schema_: str = Field(default="public", alias="schema", min_length=1)
    connect_timeout: int = Field(default=10, ge=1)
    #: batch runs read over the replication protocol too (the daemon always does)
    streaming: bool = False
    #: ``cdcsync status`` warns loudly when the slot holds more WAL than this
    warn_retained_wal_bytes: int = Field(default=1 << 30, ge=1)

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> PostgresConfig:
        if self.dsn is not None:
            both = [f for f in PG_DSN_EXCLUDES if f in self.model_fields_set]
            if both:
                raise issues(
                    [((f,), "not allowed together with 'dsn'; put it in the dsn") for f in both]
                )
            if not self.dsn.strip():
                raise issues([(("dsn",), "should not be empty")])
            problem = postgres_dsn_problem(self.dsn)
            if problem is not None:
                raise issues([(("dsn",), problem)])
        elif self.dbname is None:
            raise issues([(("dbname",), "required field is missing (or give a 'dsn')")])
        return self

    def conninfo(self) -> str:
        """A libpq connection string (URL or key=value) for psycopg."""
        if self.dsn is not None:
            return self.dsn
        parts: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.dbname,
            "connect_timeout": self.connect_timeout,
        }
        return " ".join(f"{k}={_conninfo_value(v)}" for k, v in parts.items() if v is not None)


def _conninfo_value(value: object) -> str:
    text = str(value)
    if text and not re.search(r"[\s'\\]", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MysqlConfig(ConfigModel):
    """A MariaDB or MySQL server (``flavor``); ``server_id=None`` lets the connector pick."""

    kind: Literal["mysql"]
    host: str = "127.0.0.1"
    port: int = Field(default=3306, ge=1, le=65535)
    user: str
    password: str = ""
    database: str = Field(min_length=1)
    server_id: int | None = Field(default=None, ge=1, le=2**32 - 1)
    flavor: Literal["mariadb", "mysql"] = "mariadb"


class BearerAuth(ConfigModel):
    type: Literal["bearer"]
    token: str = Field(min_length=1)


class OAuth2ClientCredentials(ConfigModel):
    type: Literal["oauth2_client_credentials"]
    token_url: str
    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    scope: str | None = None

    _url = field_validator("token_url")(_check_http_url)


class NoAuth(ConfigModel):
    type: Literal["none"]


RestAuth = Annotated[BearerAuth | OAuth2ClientCredentials | NoAuth, Field(discriminator="type")]


class RestConfig(ConfigModel):
    """A SaaS REST API. ``objects`` (per-object settings) is free-form until it is specified."""

    kind: Literal["rest"]
    base_url: str
    auth: RestAuth = NoAuth(type="none")
    rate_limit_per_s: float | None = Field(default=None, gt=0)
    objects: dict[str, dict[str, Any]] = Field(default_factory=dict)

    _url = field_validator("base_url")(_check_http_url)


#: Any endpoint's settings; ``kind`` says which.
EndpointConfig = Annotated[
    SqliteConfig | PostgresConfig | MysqlConfig | RestConfig, Field(discriminator="kind")
]

ENDPOINT_KINDS = ("sqlite", "postgres", "mysql", "rest")
