"""Endpoint settings as config/ builds them: dsn or discrete fields, schema, names."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from config.endpoints import PostgresConfig
from connectors.postgres import open_endpoint
from connectors.postgres.connect import conninfo, describe, schema_of


def test_a_dsn_is_used_as_given() -> None:
    cfg = PostgresConfig(kind="postgres", dsn="postgresql://u:secret@db.example:6000/x")
    params = conninfo_to_dict(conninfo(cfg))
    assert (params["host"], params["port"], params["dbname"]) == ("db.example", "6000", "x")
    assert params["connect_timeout"] == "10"
    assert "TimeZone=UTC" in params["options"] and "DateStyle=ISO" in params["options"]
    assert "secret" not in describe(conninfo(cfg))
    assert schema_of(cfg) == "public"


def test_discrete_fields_and_schema() -> None:
    cfg = PostgresConfig(kind="postgres", dbname="x", user="u", password="p w", schema="sales",
                         connect_timeout=3)
    params = conninfo_to_dict(conninfo(cfg))
    assert (params["host"], params["user"], params["password"]) == ("127.0.0.1", "u", "p w")
    assert params["connect_timeout"] == "3"
    assert schema_of(cfg) == "sales"


def test_user_options_are_kept() -> None:
    cfg = PostgresConfig(kind="postgres", dsn="dbname=x options='-c work_mem=64MB'")
    assert conninfo_to_dict(conninfo(cfg))["options"].startswith("-c work_mem=64MB -c")


def test_default_and_configured_names() -> None:
    ep = open_endpoint("Billing", PostgresConfig(kind="postgres", dbname="x"), pipeline="CRM")
    assert (ep.names.slot, ep.names.publication, ep.names.origin) == (
        "cdcsync_crm_billing", "cdcsync_crm_billing", "cdcsync_crm")
    assert ep.default_schema == "public"
    ep2 = open_endpoint("b", PostgresConfig(kind="postgres", dbname="x", slot="my_slot",
                                            publication="My Pub"), pipeline="p")
    assert (ep2.names.slot, ep2.names.publication) == ("my_slot", "My Pub")


def test_streaming_and_the_wal_warning_are_pipeline_settings() -> None:
    pg = PostgresConfig(kind="postgres", dbname="x")
    assert (pg.streaming, pg.warn_retained_wal_bytes) == (False, 1 << 30)
    assert open_endpoint("a", pg, pipeline="p").stream is None
    pg = PostgresConfig.model_validate({"kind": "postgres", "dbname": "x", "streaming": True,
                                        "warn_retained_wal_bytes": 5})
    assert pg.warn_retained_wal_bytes == 5
    ep = open_endpoint("a", pg, pipeline="p")
    assert ep.stream is not None  # batch runs stream too
    ep.close()


def test_a_statement_stopped_by_statement_timeout_says_how_to_lift_it(pg_dsn: str) -> None:
    """A snapshot chunk or batch stopped by a ``statement_timeout`` set for the role or
    database times out alike each time it is tried: the message names the setting."""
    import psycopg
    import pytest

    from connectors.base import RetriableError
    from connectors.postgres.connect import classified

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 20")
        with pytest.raises(RetriableError) as caught, classified("reading t at p"):
            conn.execute("SELECT pg_sleep(2)")
        with pytest.raises(RetriableError) as other, classified("reading t at p"):
            conn.execute("SET statement_timeout = 0")
            conn.execute("SELECT pg_cancel_backend(pg_backend_pid())")
    assert "reading t at p: canceling statement due to statement timeout" in str(caught.value)
    assert "`ALTER ROLE <the endpoint user> SET statement_timeout = 0`" in str(caught.value)
    assert "user request" in str(other.value) and "ALTER ROLE" not in str(other.value)
