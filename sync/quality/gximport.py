"""Import Great Expectations without the two libraries it loads for three expectations.

Importing GX 1.x loads ``scipy.stats`` (~61 MiB resident here) and ``altair``
(~30 MiB) with it: ``expect_column_kl_divergence_to_be_less_than`` and the KS
test metrics import them at module level and use them only inside functions
(computing the metric, drawing its chart). Half of GX's import cost in memory,
in every process with a suite, for expectations few suites use. Both are put
in ``sys.modules`` as stand-ins before GX is imported: a stand-in imports the
real module the first time one of its attributes is read, and hands on every
attribute read after that. (The standard library's ``LazyLoader`` does not do:
an ``import`` statement reading ``__spec__`` loads its module at once.)

A suite that uses one of those expectations loads them when its gate is made
(:func:`realize`), in the thread that makes it: a lazy module's first use must
not race between threads.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

#: imported by GX at its import, used only inside the functions of a few expectations
LAZY = ("scipy.stats", "altair")
#: expectation types whose evaluation or rendering uses them (GX 1.x)
NEEDS_LAZY = ("kl_divergence", "ks_test")
_lock = threading.RLock()


class _Deferred(types.ModuleType):
    """A module not imported yet: the first attribute it lacks imports the real one."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(_real(self.__name__), attr)


def _real(name: str) -> types.ModuleType:
    with _lock:
        if isinstance(sys.modules.get(name), _Deferred):
            del sys.modules[name]
            importlib.import_module(name)
        return sys.modules[name]


def _defer(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None:
        return  # not installed: GX's own import says so
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    sys.modules[name] = stand_in


def import_gx() -> Any:
    """``great_expectations``, imported with :data:`LAZY` deferred (once per process)."""
    with _lock:
        if "great_expectations" not in sys.modules:
            for name in LAZY:
                _defer(name)
        import great_expectations

        return great_expectations


def realize(expectation_types: list[str]) -> None:
    """Load the deferred modules now if one of ``expectation_types`` needs them."""
    if any(need in t for t in expectation_types for need in NEEDS_LAZY):
        for name in LAZY:
            _real(name)
