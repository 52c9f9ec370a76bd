"""The daemon limits glibc's malloc arenas itself (sync/arenas.py).

Counted by glibc's own ``malloc_stats()`` in a fresh process whose threads are
alive at once: one arena each without the limit, two with it; an operator's
``MALLOC_ARENA_MAX`` is left in force.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import ctypes, sys, threading
from sync.arenas import limit
done = limit() if sys.argv[1] == "limit" else None
barrier = threading.Barrier(8)

def work():
    keep = [bytearray(4096) for _ in range(200)]  # malloc, not Python's small-object pool
    barrier.wait()  # all eight alive at once

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(done, flush=True)
ctypes.CDLL("libc.so.6").malloc_stats()  # to stderr: one "Arena N:" block per arena
"""


def arenas(how: str, env: dict[str, str]) -> tuple[str, int]:
    res = subprocess.run([sys.executable, "-c", SCRIPT, how], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return res.stdout.strip(), sum(line.startswith("Arena ") for line in res.stderr.splitlines())


def test_the_limit_keeps_eight_threads_to_two_arenas() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    plain, limited = arenas("none", env), arenas("limit", env)
    assert plain[0] == "None" and plain[1] > 2  # the main thread's and one per thread (9)
    assert limited == ("True", 2)


def test_an_operators_malloc_arena_max_is_left_in_force() -> None:
    env = {**os.environ, "MALLOC_ARENA_MAX": "4"}
    assert arenas("limit", env) == ("False", 4)

