"""``--json`` commands that fail say so on stdout too, as JSON.

A caller that reads a command's JSON (an orchestrator running ``cdcsync run
--json``) got nothing on stdout when the run failed: only stderr had the error.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.pipelines import sqlite_pair
from tests.test_cli_quickstart import cdcsync


def test_a_failed_run_and_a_bad_file_answer_in_json(tmp_path: Path) -> None:
    _a, _b, p = sqlite_pair(tmp_path, "fails", "t", (
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)",))
    res = cdcsync("run", str(p), "--json", expect=1)  # not set up
    out = json.loads(res.stdout)
    assert out["status"] == "failed" and out["exit"] == 1, out
    assert out["error"] and out["error"] in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(p.read_text().replace("entities:", "entitys:"))
    for args in (("run", str(bad), "--json"), ("status", str(bad), "--json"),
                 ("conflicts", "list", str(bad), "--json"), ("dlq", "list", str(bad), "--json"),
                 ("quarantine", "list", str(bad), "--json")):
        res = cdcsync(*args, expect=2)
        out = json.loads(res.stdout)
        assert out["exit"] == 2 and "entitys" in out["error"], (args, out)
    # without --json, stdout stays empty
    assert cdcsync("run", str(bad), expect=2).stdout == ""
