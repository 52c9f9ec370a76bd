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



TRIM = """
import ctypes, sys
from sync.arenas import trim

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

# A burst: 100 MiB in 4 KiB blocks (below the mmap threshold: from the heap), touched.
blocks = [libc.malloc(4096) for _ in range(25_600)]
for b in blocks:
    ctypes.memset(b, 1, 4096)
keep = blocks[-1]  # the top of the heap stays in use: free() alone cannot shrink it
for b in blocks[:-1]:
    libc.free(b)
before = rss()
done = trim() if sys.argv[1] == "trim" else None
print(done, before - rss())
"""


def test_trim_gives_a_bursts_free_pages_back() -> None:
    def freed(how: str) -> tuple[str, int]:
        res = subprocess.run([sys.executable, "-c", TRIM, how], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=True)
        done, kib = res.stdout.split()
        return done, int(kib)

    untrimmed, trimmed = freed("none"), freed("trim")
    assert untrimmed[0] == "None" and untrimmed[1] < 10 * 1024  # RSS stays at the burst
    assert trimmed[0] == "True" and trimmed[1] > 80 * 1024  # ~100 MiB given back
