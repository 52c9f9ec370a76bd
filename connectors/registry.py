"""Endpoint kinds by the ``kind:`` of the config, imported only when used.

Importing a driver (psycopg, pymysql, the binlog reader) costs start-up time,
so ``cdcsync --help`` and pipelines that do not use a kind never pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from connectors.base import ConnectorError, Endpoint

KINDS: dict[str, str] = {
    "sqlite": "connectors.sqlite",
    "postgres": "connectors.postgres",
    "mysql": "connectors.mysql",
}


def open_endpoint(name: str, settings: Any, *, pipeline: str = "") -> Endpoint:
    """Open the endpoint ``name`` described by its config ``settings`` (with ``.kind``)."""
    kind = settings.kind
    module_name = KINDS.get(kind)
    if module_name is None:
        raise ConnectorError(f"endpoint {name!r}: no connector for kind {kind!r}")
    module = importlib.import_module(module_name)
    endpoint: Endpoint = module.open_endpoint(name, settings, pipeline=pipeline)
    return endpoint
