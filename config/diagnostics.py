"""Pydantic validation errors turned into :class:`config.errors.Problem` s.

Each error's ``loc`` is a path through the models; this module maps it to the
keys of the file (dropping the union tags pydantic inserts, like ``postgres``
in ``endpoints.billing.postgres.dbname``), finds the line and column of the
offending key or value, and rewrites pydantic's wording for someone editing a
YAML file rather than calling Python.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from config.base import ISSUES_ERROR, MESSAGE_ERROR, did_you_mean
from config.document import DataPath, Document, Located, Position, dotted
from config.errors import Problem
from config.secrets import MASK, is_secret_key

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "path_type": "a path",
}


def explain(error: ValidationError, doc: Document, root: type[BaseModel]) -> list[Problem]:
    """Every problem in ``error`` (validation of ``doc.data`` as ``root``), located in ``doc``."""
    problems: list[Problem] = []
    for detail in error.errors():
        path, parent = _file_path(root, detail["loc"])
        for where, message, mode in _describe(detail, path, parent):
            if any(where[: len(b)] == b for b in doc.broken):
                continue  # the value is wrong because its ${VAR} was: already reported
            problems.append(_problem(doc, where, message, mode))
    return problems


def _problem(doc: Document, path: DataPath, message: str, mode: str) -> Problem:
    place, exact = doc.locate(path)
    at = _point(place, exact, mode)
    return Problem(
        doc.file, at.line if at else None, at.column if at else None, dotted(path), message
    )


def _point(place: Located | None, exact: bool, mode: str) -> Position | None:
    if place is None:
        return None
    if not exact:  # a missing setting: point at the mapping that should hold it
        return place.entry()
    return place.entry() if mode == "key" else place.at_value()


def _describe(
    detail: ErrorDetails, path: DataPath, parent: Any
) -> Iterator[tuple[DataPath, str, str]]:
    """(path in the file, message, "key" or "value") for one pydantic error."""
    kind = detail["type"]
    ctx: dict[str, Any] = dict(detail.get("ctx") or {})
    value = detail.get("input")
    if path and is_secret_key(path[-1]) and value not in (None, ""):
        value = _Masked()  # a secret set wrongly is still a secret: never echoed
    if kind == ISSUES_ERROR:
        for sub, message in ctx["issues"]:
            yield (*path, *sub), message, "value"
    elif kind == MESSAGE_ERROR:
        yield path, str(ctx["message"]), "key" if "[key]" in detail["loc"] else "value"
    elif kind == "missing":
        yield path, "required field is missing", "value"
    elif kind == "extra_forbidden":
        name = str(path[-1]) if path else ""
        allowed = _keys_of(parent)
        hint = did_you_mean(name, allowed) or (
            f"; expected one of: {', '.join(allowed)}" if allowed else ""
        )
        yield path, f"unknown key {name!r}{hint}", "key"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "kind")).strip("'")
        if kind == "union_tag_not_found":
            yield (*path, key), "required field is missing", "value"
            return
        tags = _QUOTED.findall(str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag"))
        hint = did_you_mean(tag, tags) or f"; expected one of: {', '.join(tags)}"
        what = {"kind": "endpoint kind", "type": "auth type"}.get(key, key)
        yield (*path, key), f"unknown {what} {tag!r}{hint}", "value"
    elif kind == "literal_error":
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
        if not choices:
            yield path, f"should be {ctx.get('expected')}, got {_show(value)}", "value"
            return
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        yield (
            path,
            f"invalid value {_show(value)}{hint or '; expected one of: ' + ', '.join(choices)}",
            "value",
        )
    elif kind in _TYPE_WORDS:
        yield path, f"should be {_TYPE_WORDS[kind]}, got {_show(value)}", "value"
    elif kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        yield path, "should not be empty", "value"
    else:
        message = detail["msg"].removeprefix("Value error, ")
        if message.startswith("Input should"):
            message = "should" + message.removeprefix("Input should") + f", got {_show(value)}"
        yield path, message, "value"


class _Masked:
    """Stands for the value of a secret setting in a message: shown as ``***``."""

    def __str__(self) -> str:
        return MASK


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, briefly."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


def _file_path(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[DataPath, Any]:
    """The keys of ``loc`` as written in the file, and the type holding its last element."""
    path: list[str | int] = []
    tp: Any = root
    parent: Any = None
    for part in loc:
        if part == "[key]":
            continue
        tp = _unwrap(tp)
        member = _tagged_member(tp, part)
        if member is not None:  # a union tag pydantic adds to the location
            tp = member
            continue
        parent = tp
        path.append(part)
        tp = _child(tp, part)
    return tuple(path), parent


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if _is_union(tp):
        members = [m for m in get_args(tp) if m is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _tagged_member(tp: Any, part: int | str) -> Any:
    if not _is_union(tp):
        return None
    for member in get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for f in member.model_fields.values():
                if get_origin(f.annotation) is Literal and part in get_args(f.annotation):
                    return member
    return None


def _child(tp: Any, part: int | str) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return None
    origin = get_origin(tp)
    if origin is dict:
        return get_args(tp)[1]
    if origin is list:
        return get_args(tp)[0]
    return None


def _keys_of(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or name for name, f in tp.model_fields.items()]
    return []
