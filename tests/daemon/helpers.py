"""Running `cdcsync daemon` as a real process, and waiting for rows to arrive."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CDCSYNC = Path(sys.executable).with_name("cdcsync")
STARTED: list[Daemon] = []  # reaped after every test by tests/daemon/conftest.py


class Daemon:
    def __init__(self, pipeline: Path, *, verb: str = "daemon", args: tuple[str, ...] = (),
                 options: tuple[str, ...] = ()) -> None:
        """``cdcsync [options] verb [args] pipeline``, its stderr kept in a file."""
        self.pipeline = pipeline
        self.log = pipeline.parent / f"{verb}-{time.monotonic_ns()}.log"
        with self.log.open("w") as err:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(CDCSYNC), *options, verb, *args, str(pipeline)], stdout=subprocess.DEVNULL,
                stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        STARTED.append(self)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready" in self.log.read_text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"daemon not ready in {timeout}s: {self.output()}")

    def ready_state(self) -> dict[str, Any]:
        """The daemon's /readyz answer (its port is in the ready line)."""
        import json
        import re
        import urllib.error
        import urllib.request

        m = re.search(r"ready on (http://\S+)", self.output())
        assert m, self.output()
        try:
            with urllib.request.urlopen(m.group(1) + "/readyz", timeout=5) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as e:
            return json.loads(e.read())  # type: ignore[no-any-return]

    def output(self) -> str:
        return self.log.read_text()

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - t0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


class PrivateRedis:
    """A real Redis of the test's own on a free port, keeping nothing on disk (like the
    machine's): restarting it loses every message without disturbing anything else."""


    def __init__(self, tmp: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 timeout=20, what="private redis")

    def restart(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # like the machine's Redis: nothing kept on disk, messages gone
        self.proc.wait()
        self.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # a database busy mid-write: look again
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def cli(*args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(CDCSYNC), *args], capture_output=True, text=True, timeout=300)
    if expect is not None:
        assert res.returncode == expect, (res.returncode, res.stdout, res.stderr)
    return res


def decide_as_a_reader(ctx: Any, source: str, entity: str = "items") -> tuple[list[str], Any]:
    """What a daemon's reader does: read ``source``'s next batch, decide it and commit it
    with its outbox. Returns the keys with pending applies and the decided batch."""
    from sync.capture import STREAM, decide_and_commit, source_entities
    from sync.events import expand
    from sync.summary import RunSummary

    bindings = [e.bindings[source] for e in source_entities(ctx, source)]
    batch = ctx.endpoints[source].changes(
        bindings, ctx.store.checkpoint(ctx.pipeline, source, STREAM), 100)
    decided = decide_and_commit(ctx, source, expand(ctx, source, batch), batch.checkpoint,
                                RunSummary(pipeline=ctx.pipeline))
    return [k for k, st in decided.states[entity].items() if st.outbox], decided
