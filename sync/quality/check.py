"""Suite problems of a whole pipeline, for ``cdcsync config check``.

:func:`check_pipeline_suites` checks every entity's suite: malformed JSON,
unknown expectation types, expectations that cannot judge one row, invalid
arguments, and (when the endpoints can be read) columns that the entity does
not have. Entities without a suite cost nothing and import nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from sync.quality.suite import check_suite

log = logging.getLogger("cdcsync.quality")


def entity_columns(cfg: Any, entity: str) -> tuple[set[str], dict[str, str]]:
    """The synchronised columns of ``entity`` and their logical types, read from its endpoints."""
    from connectors.registry import open_endpoint
    from sync.context import bindings_for, entity_types

    bindings = bindings_for(cfg, entity)
    schemas = {}
    for ep, binding in bindings.items():
        endpoint = open_endpoint(ep, cfg.endpoints[ep], pipeline=cfg.pipeline)
        try:
            schemas[ep] = endpoint.schema(binding)
        finally:
            endpoint.close()
    types = entity_types(schemas, bindings)
    synced = {c for c in types if any(b.synced(c) for b in bindings.values())}
    return synced, {c: t for c, t in types.items() if c in synced}


def _local(cfg: Any, ent: Any) -> bool:
    """Every endpoint of the entity is an existing SQLite file: reading it contacts nobody."""
    for ep in ent.endpoints:
        settings = cfg.endpoints[ep]
        if settings.kind != "sqlite" or not Path(settings.path).exists():
            return False
    return True


def check_pipeline_suites(cfg: Any, *,
                          read_schemas: bool | Literal["local"] = "local") -> list[str]:
    """Every problem of every entity's suite, as ``entities.NAME.quality.suite: ...`` lines.

    Columns are checked against the entity's real columns when its endpoints
    are read (``read_schemas``: always, never, or ``"local"`` for entities
    whose endpoints are all existing SQLite files); otherwise against its
    ``include`` list when it has one. An endpoint that cannot be reached
    leaves the column check out (``config check`` is not a connectivity
    check) and says so in the log.
    """
    problems: list[str] = []
    for name, ent in cfg.entities.items():
        suite = ent.quality.suite
        if suite is None:
            continue
        columns: set[str] | None = None
        types: dict[str, str] | None = None
        if ent.include:
            columns = set(ent.include) | set(ent.key)
        if read_schemas is True or (read_schemas == "local" and _local(cfg, ent)):
            try:
                columns, types = entity_columns(cfg, name)
            except Exception as exc:  # unreachable server, table not created yet
                log.warning("entity %s: columns not checked against the suite: %s", name, exc)
        where = f"entities.{name}.quality.suite"
        problems += [f"{where}: {p}" for p in check_suite(suite, columns, types)]
    return problems
