"""``cdcsync review``: the command itself, as a user starts and stops it, and its packaging."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from fnmatch import fnmatch
from pathlib import Path

import pytest
from click.testing import CliRunner

from sync.cli import main
from tests.review.conftest import ROOT, Quickstart


def test_help_and_a_token_variable_that_is_not_set(quickstart: Quickstart) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["review", "--help"])
    assert res.exit_code == 0
    assert "--token-env NAME" in res.output and "--host" in res.output
    env = {k: v for k, v in os.environ.items() if k != "CDCSYNC_REVIEW_NOT_SET"}
    res = runner.invoke(main, ["review", str(quickstart.pipeline), "--token-env",
                               "CDCSYNC_REVIEW_NOT_SET"], env=env)
    assert res.exit_code == 2
    assert "--token-env CDCSYNC_REVIEW_NOT_SET: that environment variable is not set" in (
        res.stderr)


def test_the_command_serves_until_sigterm(quickstart: Quickstart) -> None:
    exe = Path(sys.executable).with_name("cdcsync")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "sync.cli"]
    env = {**os.environ, "CDCSYNC_REVIEW_TOKEN": "tok-for-the-test"}
    proc = subprocess.Popen([*cmd, "review", str(quickstart.pipeline), "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=env)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        found = re.match(r"cdcsync review on (http://127\.0\.0\.1:\d+)/ \(basic auth", first)
        assert found, first
        url = found.group(1)
        with urllib.request.urlopen(url + "/healthz", timeout=30) as res:
            assert res.status == 200
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url + "/conflicts", timeout=30)
        assert denied.value.code == 401
        denied.value.close()
        auth = base64.b64encode(b"bea:tok-for-the-test").decode()
        req = urllib.request.Request(url + "/conflicts", headers={"Authorization": "Basic " + auth})
        with urllib.request.urlopen(req, timeout=30) as res:
            assert "deciding as <strong>bea</strong>" in res.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        rest = proc.stderr.read()
        assert "tok-for-the-test" not in first + rest  # the token is never printed
        assert '"GET /conflicts HTTP/1.1" 200' in rest  # an access log
        assert "\x1b[" not in rest  # plain text, no terminal colours
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_an_installed_wheel_has_the_templates() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["sync"]
    templates = sorted((ROOT / "sync" / "review" / "templates").glob("*"))
    assert templates
    for path in templates:
        rel = path.relative_to(ROOT / "sync").as_posix()
        assert any(fnmatch(rel, g) for g in globs), f"{rel} is not in sync's package-data"
    deps = pyproject["project"]["dependencies"]
    assert any(d.split(">")[0].split("=")[0].strip() == "flask" for d in deps)
