"""`cdcsync --help` must answer at once: no heavy import at start (issue 2, item 8)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ["sqlalchemy", "psycopg", "pymysql", "pymysqlreplication", "great_expectations",
         "dramatiq", "rich", "pydantic", "yaml", "alembic", "redis", "httpx", "flask"]


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from sync.cli import main\n"
            "r = CliRunner().invoke(main, ['--help'])\n"
            "assert r.exit_code == 0 and 'conflicts' in r.output, r.output\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert res.stdout.strip() == "[]"


def test_every_command_has_help() -> None:
    from click.testing import CliRunner

    from sync.cli import main

    runner = CliRunner()
    for args in (["run"], ["setup"], ["teardown"], ["status"], ["verify"],
                 ["conflicts", "list"], ["conflicts", "show"], ["conflicts", "resolve"],
                 ["config", "check"], ["config", "show"]):
        res = runner.invoke(main, [*args, "--help"])
        assert res.exit_code == 0, (args, res.output)
        assert "Usage:" in res.output
