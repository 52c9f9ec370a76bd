"""Pipelines without suites never import Great Expectations (2-10 s and ~220 MB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from pathlib import Path
from tests.quality.conftest import make_shop
from tests.quality.test_pipeline import seed_clean

shop = make_shop(Path(sys.argv[1]), suite=None if sys.argv[2] == "none" else
                 json.loads(sys.argv[2]))
seed_clean(shop)
shop.setup()
first = shop.run()
shop.crm("UPDATE customers SET email = 'not-an-email' WHERE id = 2")
second = shop.run()
print(json.dumps({"gx": "great_expectations" in sys.modules,
                  "pandas": "pandas" in sys.modules,
                  "applied": first.total("applied") + second.total("applied"),
                  "quality": second.to_json()["quality"]}))
"""


def run(tmp_path: Path, suite: str) -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), suite], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def test_no_suite_no_great_expectations(tmp_path: Path) -> None:
    got = run(tmp_path, "none")
    assert got == {"gx": False, "pandas": False, "applied": 4, "quality": []}


def test_with_a_suite_it_is_imported_when_a_batch_is_validated(tmp_path: Path) -> None:
    suite = {"expectations": [{"type": "expect_column_values_to_match_regex",
                               "kwargs": {"column": "email", "regex": "@"}}]}
    got = run(tmp_path, json.dumps(suite))
    assert got["gx"] is True
    assert got["applied"] == 3  # the malformed e-mail was not applied
