"""Checks of a loaded pipeline beyond its schema: what ``config check`` adds.

The config loader validates the file's shape; these look at what the file
refers to (a custom policy's function must import, a quality suite must load),
without contacting any server.
"""

from __future__ import annotations

import sys
from typing import Any


def make_importable(cfg: Any) -> None:
    """Custom policy functions may live next to the pipeline file."""
    base = str(cfg.base_dir)
    if base not in sys.path:
        sys.path.insert(0, base)


def check_pipeline(cfg: Any) -> list[str]:
    """Problems as ``FILE: FIELD: MESSAGE`` lines (empty when all is well)."""
    from conflict.policies import PolicyError, build_resolver

    make_importable(cfg)
    problems: list[str] = []
    for name, ent in cfg.entities.items():
        try:
            build_resolver(ent.conflict)
        except PolicyError as exc:
            field = f"entities.{name}.conflict" + (f".{exc.field}" if exc.field else "")
            problems.append(f"{cfg.path}: {field}: {exc.message}")
    from sync.schedule import check_schedule

    problems += check_schedule(cfg)
    return problems
