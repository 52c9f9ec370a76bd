"""The state store on PostgreSQL: the quickstart flow, with a column-by-column decision."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli_quickstart import (  # noqa: F401
    EXAMPLE,
    cdcsync,
    quickstart,
    rows,
    run_json,
)


def test_quickstart_on_a_postgres_state_store(quickstart: Path, pg_dsn: str) -> None:  # noqa: F811
    p = quickstart / "pipeline.yaml"
    url = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    p.write_text(p.read_text().replace("url: sqlite:///data/state.db", f'url: "{url}"'))
    billing = quickstart / "data" / "billing.db"
    cdcsync("setup", str(p))
    run_json(p)
    import subprocess
    import sys

    subprocess.run([sys.executable, str(quickstart / "seed.py"), "edit"], check=True,
                   capture_output=True)
    second = run_json(p, expect=3)
    assert (second["totals"]["resolved"], second["totals"]["parked"]) == (1, 1)
    (conflict,) = json.loads(cdcsync("conflicts", "list", str(p), "--json").stdout)
    cdcsync("conflicts", "resolve", str(p), conflict["id"], "--field", "email=billing",
            "--by", "steward-with-a-long-name")
    assert rows(billing, "SELECT email FROM clients WHERE client_id = 2") == [
        ("ghopper@billing.example",)]
    shown = json.loads(cdcsync("conflicts", "show", str(p), conflict["id"], "--json").stdout)
    assert shown["winner"] == "fields:email=billing"
    assert shown["decided_by"] == "steward-with-a-long-name"
    assert run_json(p)["totals"]["applied"] == 0
    cdcsync("verify", str(p))
