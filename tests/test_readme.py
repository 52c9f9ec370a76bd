"""What the README tells a new user holds: its pipeline file passes ``config check``, every
command is in its CLI section, and its exit codes are the CLI's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CDCSYNC = Path(sys.executable).with_name("cdcsync")


def test_the_readme_pipeline_file_is_valid_and_its_secret_masked(tmp_path: Path) -> None:
    block = README.split("## A pipeline file", 1)[1].split("```yaml\n", 1)[1].split("```")[0]
    p = tmp_path / "pipeline.yaml"
    p.write_text(block, encoding="utf-8")
    env = {**os.environ, "PGPASSWORD": "readme-Secret-1"}
    check = subprocess.run([str(CDCSYNC), "config", "check", str(p)], capture_output=True,
                           text=True, env=env, timeout=60)
    assert check.returncode == 0, check.stderr
    show = subprocess.run([str(CDCSYNC), "config", "show", str(p)], capture_output=True,
                          text=True, env=env, timeout=60)
    assert show.returncode == 0, show.stderr
    assert "readme-Secret-1" not in show.stdout
    assert "postgresql://cdcsync:***@db.internal:5432/billing" in show.stdout


def test_every_command_is_in_the_readme() -> None:
    import click

    from sync.cli import main

    text = " ".join(README.split())
    ctx = click.Context(main)
    for name in main.list_commands(ctx):
        assert re.search(rf"cdcsync {name}\b|`{name}`", text), name
        cmd = main.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):  # `conflicts list`, `quarantine list|show`
                assert re.search(rf"{name} (\S+ )?[\w|\\]*\b{sub}\b", text), f"{name} {sub}"


def test_the_exit_codes_table_is_the_clis() -> None:
    from sync import cli

    table = README.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = dict(re.findall(r"^\| (\d) \| ([^|]+) \|$", table, flags=re.M))
    assert set(codes) == {str(c) for c in (cli.EXIT_OK, cli.EXIT_FAILURE, cli.EXIT_USAGE,
                                           cli.EXIT_ATTENTION)}
    assert codes[str(cli.EXIT_OK)].startswith("success")
    assert codes[str(cli.EXIT_FAILURE)].startswith("failure")
    assert codes[str(cli.EXIT_USAGE)].startswith("usage or configuration error")
    assert "steward" in codes[str(cli.EXIT_ATTENTION)]
