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
                  "deferred": sorted(n for n in ("scipy.stats", "altair")
                                     if type(sys.modules.get(n)).__name__ == "_Deferred"),
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
    assert got == {"gx": False, "pandas": False, "deferred": [], "applied": 4, "quality": []}


def test_with_a_suite_it_is_imported_when_a_batch_is_validated(tmp_path: Path) -> None:
    suite = {"expectations": [{"type": "expect_column_values_to_match_regex",
                               "kwargs": {"column": "email", "regex": "@"}}]}
    got = run(tmp_path, json.dumps(suite))
    assert got["gx"] is True
    assert got["applied"] == 3  # the malformed e-mail was not applied
    # GX's import brings neither scipy.stats nor altair (~60 MiB): no expectation used them
    assert got["deferred"] == ["altair", "scipy.stats"]


DEFERRED = """
import sys
from sync.quality.gximport import import_gx, realize
import_gx()
from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl
kinds = lambda: [type(sys.modules[n]).__name__ for n in ("scipy.stats", "altair")]
print(kinds())
if sys.argv[1] == "realize":
    realize(["expect_column_kl_divergence_to_be_less_than"])
    print(kinds())
import scipy.stats
# GX's module holds the stand-ins: they hand on to the real modules
print(round(float(kl.stats.entropy([0.5, 0.5], [0.9, 0.1])), 4), kl.alt.Chart.__name__,
      scipy.stats.entropy is kl.stats.entropy)
print(kinds())
"""


def test_deferred_modules_load_when_used_or_when_a_suite_needs_them() -> None:
    for how in ("use", "realize"):
        res = subprocess.run([sys.executable, "-c", DEFERRED, how], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.strip().splitlines()
        assert lines[0] == "['_Deferred', '_Deferred']"  # GX imported, they are not
        if how == "realize":
            assert lines[1] == "['module', 'module']"  # loaded up front for such a suite
        assert lines[-2:] == ["0.5108 Chart True", "['module', 'module']"], lines
