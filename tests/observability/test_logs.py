"""Structured logs: JSON lines, a batch id that follows a change to its apply thread, secrets."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from sync.logs import (
    JsonFormatter,
    configure,
    current_context,
    log_context,
    mask_secrets,
    new_batch_id,
    register_secrets,
)

pytestmark = pytest.mark.usefixtures("restore_logging")

log = logging.getLogger("cdcsync.tests.observability")


def lines_of(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_have_the_fields() -> None:
    buf = io.StringIO()
    configure(json=True, level="INFO", stream=buf)
    with log_context(pipeline="crm-billing", entity="customers"):
        log.info("read %d changes", 3, extra={"endpoint": "crm"})
    log.debug("below the level")
    (line,) = lines_of(buf)
    assert list(line)[:4] == ["timestamp", "level", "logger", "message"]
    assert line["level"] == "INFO" and line["logger"] == "cdcsync.tests.observability"
    assert line["message"] == "read 3 changes"
    assert line["pipeline"] == "crm-billing" and line["entity"] == "customers"
    assert line["endpoint"] == "crm" and "batch_id" not in line
    at = datetime.fromisoformat(line["timestamp"])
    assert line["timestamp"].endswith("Z") and at.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - at).total_seconds()) < 3600


def test_batch_id_follows_the_change_into_the_apply_thread() -> None:
    buf = io.StringIO()
    configure(json=True, level="INFO", stream=buf)
    batch_id = new_batch_id()
    with log_context(pipeline="crm-billing", batch_id=batch_id):
        log.info("batch read")
        # what the reader puts in the task message: plain JSON
        message = json.loads(json.dumps({"log": current_context(), "changes": []}))

    def apply_worker() -> None:
        log.info("no context carried")
        with log_context(**message["log"], entity="customers", endpoint="billing"):
            log.info("batch applied")
        log.info("after the apply")

    worker = threading.Thread(target=apply_worker)
    worker.start()
    worker.join()
    read, bare, applied, after = lines_of(buf)
    assert read["batch_id"] == batch_id and len(batch_id) == 16
    assert "batch_id" not in bare  # a thread does not inherit the context by itself
    assert applied["message"] == "batch applied"
    assert applied["batch_id"] == batch_id and applied["pipeline"] == "crm-billing"
    assert (applied["entity"], applied["endpoint"]) == ("customers", "billing")
    assert "batch_id" not in after
    assert current_context() == {}


def test_nested_context_adds_and_none_removes() -> None:
    with log_context(batch_id="b1", entity="customers"):
        with log_context(entity=None, endpoint="crm") as inner:
            assert inner == {"batch_id": "b1", "endpoint": "crm"}
            assert current_context() == inner
        assert current_context() == {"batch_id": "b1", "entity": "customers"}


def test_text_lines_show_the_context() -> None:
    buf = io.StringIO()
    configure(json=False, level="INFO", stream=buf)
    with log_context(batch_id="abc", pipeline="p"):
        log.warning("slow apply")
    assert buf.getvalue() == ("WARNING cdcsync.tests.observability: slow apply "
                              "[batch_id=abc pipeline=p]\n")


def test_configure_twice_keeps_one_handler_and_levels_apart() -> None:
    buf = io.StringIO()
    configure(json=False, level="DEBUG", stream=io.StringIO())
    configure(json=True, level="INFO", stream=buf, libraries="WARNING")
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1
    log.info("ours at info")
    logging.getLogger("dramatiq.tests").info("a library at info")
    logging.getLogger("dramatiq.tests").warning("a library at warning")
    assert [line["message"] for line in lines_of(buf)] == ["ours at info", "a library at warning"]
    with pytest.raises(ValueError, match="unknown log level"):
        configure(level="CHATTY")


SECRET = "hunter2-Sekret"


@pytest.mark.parametrize("message", [
    f"connecting to postgresql://sync:{SECRET}@db.example:5432/crm?sslmode=require",
    f"broker redis://:{SECRET}@127.0.0.1:6379/0 unreachable",
    f"mysql://sync:{SECRET}@host/db and amqp://guest:{SECRET}@rabbit:5672//",
    f"conninfo host=db user=sync password={SECRET} dbname=crm",
    f"conninfo host=db password='{SECRET} with spaces' dbname=crm",
    f"settings {{'host': 'db', 'password': '{SECRET}', 'port': 5432}}",
    f'json {{"client_secret": "{SECRET}", "id": 1}}',
    f"PGPASSWORD={SECRET} psql",
    f"GET /api?api_key={SECRET}&page=2",
    f"Authorization: Bearer {SECRET}",
])
def test_secrets_never_reach_the_log(message: str) -> None:
    buf = io.StringIO()
    configure(json=True, level="INFO", stream=buf)
    log.info(message)
    log.warning("as an argument: %s", message)
    try:
        raise ConnectionError(message)
    except ConnectionError:
        log.exception("connection failed")
    out = buf.getvalue()
    assert SECRET not in out and "hunter2" not in out
    records = lines_of(buf)
    assert len(records) == 3 and all("***" in r["message"] for r in records[:2])
    assert "ConnectionError" in records[2]["exc"] and "***" in records[2]["exc"]


def test_masking_keeps_what_is_not_secret() -> None:
    assert mask_secrets("postgresql://sync:pw@db:5432/crm") == "postgresql://sync:***@db:5432/crm"
    assert mask_secrets("p@ss: postgresql://u:p@ss@db/x") == "p@ss: postgresql://u:***@db/x"
    keep = ["postgresql://sync@db:5432/crm", "http://db:8080/path", "http://db:8080/a/b",
            "Access denied for user 'root'@'localhost' (using password: YES)",
            "apply token=3f2a for key 7"]
    for text in keep:
        assert mask_secrets(text) == text


def test_registered_secrets_are_masked_anywhere() -> None:
    buf = io.StringIO()
    configure(json=False, level="INFO", stream=buf)
    register_secrets(["tok-5ec2e7-value", "ab"])  # too short to mask without garbling
    log.error("the API said: invalid token tok-5ec2e7-value (about ab)")
    assert buf.getvalue().endswith("invalid token *** (about ab)\n")


def test_cli_log_json_uses_the_json_formatter() -> None:
    from click.testing import CliRunner

    from sync.cli import main

    res = CliRunner().invoke(main, ["--log-json", "status", "--help"])
    assert res.exit_code == 0, res.output
    handlers = [h for h in logging.getLogger().handlers if getattr(h, "_cdcsync", False)]
    assert len(handlers) == 1 and isinstance(handlers[0].formatter, JsonFormatter)
    assert logging.getLogger().level == logging.WARNING
