"""``load_pipeline``: a pipeline file from disk to a validated :class:`PipelineConfig`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from pydantic import ValidationError

from config.base import LoadContext
from config.diagnostics import explain
from config.document import read_document
from config.errors import ConfigError, Problem
from config.models import PipelineConfig
from config.secrets import mask_text, secrets_in


def load_pipeline(path: str | Path, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Read, interpolate and validate the pipeline file at ``path``.

    ``${VAR}`` and ``${VAR:-default}`` in string values come from ``env``
    (default: ``os.environ``). Relative paths in the file are relative to its
    directory.

    Raises:
        ConfigError: listing every problem found, each with file, line, column and field.
    """
    shown = str(path)
    file = Path(os.path.abspath(path))
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(shown, None, None, "", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(shown, None, None, "", "is a directory, not a file")]) from None
    except OSError as exc:
        message = f"cannot be read: {exc.strerror or exc}"
        raise ConfigError([Problem(shown, None, None, "", message)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x})"
        raise ConfigError([Problem(shown, line, column, "", message)]) from None

    doc = read_document(text, shown, os.environ if env is None else env)
    if doc.data is None:  # "---" or "~" alone
        raise ConfigError([Problem(shown, None, None, "", "the file is empty")])
    if not isinstance(doc.data, dict):
        place = doc.places[()].value
        kind = "a list" if isinstance(doc.data, list) else f"{doc.data!r}"
        message = f"the file should be a mapping of settings (pipeline: ..., ...), not {kind}"
        raise ConfigError([Problem(shown, place.line, place.column, "", message)])

    endpoints = doc.data.get("endpoints")
    context = LoadContext(
        path=file,
        endpoint_names=frozenset(endpoints) if isinstance(endpoints, dict) else None,
        secret_values=frozenset(doc.secret_values),
    )
    problems = list(doc.problems)
    config: PipelineConfig | None = None
    try:
        config = PipelineConfig.model_validate(doc.data, context=context)
    except ValidationError as exc:
        problems += explain(exc, doc, PipelineConfig)
    if problems or config is None:
        # Messages echo values (a URL that is not one, a variable's value): every
        # secret of the file, written in it or from the environment, masked here at once.
        secrets = doc.secret_values | secrets_in(doc.data)
        raise ConfigError(replace(p, message=mask_text(p.message, secrets)) for p in problems)
    return config
