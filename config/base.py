"""What every configuration model shares: strictness, masking, load context, errors.

Cross-field rules raise :func:`issues`: one pydantic error that carries a list of
``(sub-location, message)`` pairs, so a model can report several problems at
once, each pointing at the key it is about (the loader expands them).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo
from pydantic_core import PydanticCustomError

from config.secrets import MASK, is_secret_key, mask_tree

#: A location below the model that raises, in file keys: ("conflict", "priority", 1).
SubLoc = tuple[str | int, ...]

ISSUES_ERROR = "cdcsync_issues"
MESSAGE_ERROR = "cdcsync"

_NAME = re.compile(r"[A-Za-z0-9_-]+")


class ConfigModel(BaseModel):
    """Base of all configuration models: frozen, unknown keys rejected, no secret in repr."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if is_secret_key(name) and value not in (None, ""):
                yield name, MASK
            else:
                yield name, mask_tree(value) if isinstance(value, str | dict | list) else value


@dataclass(frozen=True)
class LoadContext:
    """What validation needs to know beyond the data (pydantic's validation ``context``).

    ``path`` is the pipeline file (relative paths in it are relative to its
    directory). ``endpoint_names`` are the names under the top-level
    ``endpoints`` as written, so entities can check their references even when
    some endpoint is otherwise invalid; ``None`` leaves the check to
    :class:`config.PipelineConfig`. ``secret_values`` are values interpolated
    from the environment into secret positions, masked wherever they appear.
    """

    path: Path = field(default_factory=lambda: Path.cwd() / "pipeline.yaml")
    endpoint_names: frozenset[str] | None = None
    secret_values: frozenset[str] = frozenset()

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def context_of(info: ValidationInfo) -> LoadContext:
    ctx = info.context
    return ctx if isinstance(ctx, LoadContext) else LoadContext()


def resolve_path(value: Path, info: ValidationInfo) -> Path:
    """An absolute, normalised path; a relative one is taken from the config file's directory."""
    value = value.expanduser()
    if not value.is_absolute():
        value = context_of(info).base_dir / value
    return Path(os.path.normpath(value))


def fail(message: str) -> PydanticCustomError:
    """A validation error whose message is exactly ``message``."""
    return PydanticCustomError(MESSAGE_ERROR, "{message}", {"message": message})


def issues(found: Sequence[tuple[SubLoc, str]]) -> PydanticCustomError:
    """One validation error carrying several problems below the raising model."""
    text = "; ".join(msg for _, msg in found)
    return PydanticCustomError(ISSUES_ERROR, "{message}", {"message": text, "issues": list(found)})


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise fail(f"invalid name {value!r}: use only letters, digits, '_' and '-'")
    return value


#: A pipeline, endpoint or entity name.
Name = Annotated[str, AfterValidator(_check_name)]


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
