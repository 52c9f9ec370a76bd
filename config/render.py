"""``render_config``: the resolved configuration as YAML, safe to show."""

from __future__ import annotations

from typing import Any

import yaml

from config.endpoints import PG_DSN_EXCLUDES
from config.models import PipelineConfig
from config.secrets import mask_tree


def render_config(cfg: PipelineConfig) -> str:
    """YAML of ``cfg`` with defaults filled in and paths resolved, every secret shown as ``***``.

    Masked: settings named password, secret, client_secret, token or api_key;
    the password of any URL or DSN (``postgresql://u:***@h/db``, also in
    ``state.url`` and ``broker.url``); and any value that was interpolated
    from the environment into such a place, wherever else it appears.
    """
    data = cfg.model_dump(mode="json", by_alias=True)
    for endpoint in data["endpoints"].values():
        if endpoint["kind"] == "postgres" and endpoint["dsn"] is not None:
            for unused in PG_DSN_EXCLUDES:  # the dsn says it all; showing defaults would mislead
                del endpoint[unused]
    masked = mask_tree(data, cfg._secret_values)
    return _dump(masked)


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
