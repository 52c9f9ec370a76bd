"""A YAML pipeline file read into plain data plus a map of where every key and value is.

PyYAML's composer keeps the position of every node; this module turns the node
tree into dicts, lists and scalars itself, so it can also report duplicate
keys (which PyYAML silently overwrites), substitute environment variables in
string values, and remember each value's line and column for error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from config.errors import ConfigError, Problem
from config.interpolation import interpolate
from config.secrets import is_secret_key, url_password_span

#: A location in the data: mapping keys and list indexes, e.g. ("entities", "c", "key", 0).
DataPath = tuple[str | int, ...]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SECRET_VARIABLE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based

    @classmethod
    def of(cls, mark: yaml.Mark) -> Position:
        return cls(mark.line + 1, mark.column + 1)


@dataclass(frozen=True, slots=True)
class Located:
    """Where one value is: its key (``None`` for list items and the root) and the value itself.

    ``block`` is true for a block-style mapping or list, whose own position is
    the line after its key: errors about it point at the key instead.
    """

    key: Position | None
    value: Position
    block: bool

    def entry(self) -> Position:
        """Where the entry starts: the key if there is one."""
        return self.key or self.value

    def at_value(self) -> Position:
        """Where to point for a problem with the value itself."""
        return self.key if self.block and self.key is not None else self.value


@dataclass(slots=True)
class Document:
    """A parsed pipeline file."""

    file: str
    data: Any = None
    places: dict[DataPath, Located] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: paths of values whose interpolation failed (their validation errors are noise)
    broken: set[DataPath] = field(default_factory=set)
    #: environment values substituted into secret positions, to mask wherever they appear
    secret_values: set[str] = field(default_factory=set)

    def problem(self, path: DataPath, at: Position | None, message: str) -> None:
        self.problems.append(
            Problem(
                self.file,
                at.line if at else None,
                at.column if at else None,
                dotted(path),
                message,
            )
        )

    def locate(self, path: DataPath) -> tuple[Located | None, bool]:
        """The deepest known place on ``path`` and whether it is ``path`` itself."""
        for n in range(len(path), -1, -1):
            found = self.places.get(path[:n])
            if found is not None:
                return found, n == len(path)
        return None, False


def dotted(path: DataPath) -> str:
    """``("schedule", 0, "cron")`` -> ``"schedule[0].cron"``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def read_document(text: str, file: str, env: Mapping[str, str]) -> Document:
    """Parse ``text`` (the contents of ``file``) into a :class:`Document`.

    Raises :class:`ConfigError` when there is nothing to validate: a YAML syntax
    error or an empty file. Other problems are collected in the document.
    """
    doc = Document(file)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError([Problem(file, None, None, "", "the file is empty")])
        doc.places[()] = Located(None, Position.of(root.start_mark), _is_block(root))
        doc.data = _Builder(loader, doc, env).build(root, ())
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_syntax_problem(file, exc)]) from None
    except yaml.YAMLError as exc:  # e.g. a control character the reader refuses
        raise ConfigError([Problem(file, None, None, "", f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return doc


def _syntax_problem(file: str, exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or exc.context or "invalid YAML"
    if exc.context and exc.problem:
        joined = exc.problem.startswith("but ")  # "expected a single document ..., but found ..."
        what = f"{exc.context}, {exc.problem}" if joined else f"{exc.problem} ({exc.context})"
    if "'\\t'" in what:
        what += "; indent with spaces, not tabs"
    elif "<block end>" in what or "<block mapping start>" in what:
        what += "; check the indentation"
    return Problem(
        file,
        mark.line + 1 if mark else None,
        mark.column + 1 if mark else None,
        "",
        f"YAML syntax error: {what}",
    )


def _is_block(node: yaml.Node) -> bool:
    return isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, doc: Document, env: Mapping[str, str]) -> None:
        self.loader = loader
        self.doc = doc
        self.env = env
        self.open: set[int] = set()  # ids of collections being built (to stop recursive aliases)

    def build(self, node: yaml.Node, path: DataPath) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.open:
            self.doc.problem(path, Position.of(node.start_mark), "recursive alias")
            return None
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return self._sequence(node, path)
        finally:
            self.open.discard(id(node))

    def _sequence(self, node: yaml.Node, path: DataPath) -> list[Any]:
        items: list[Any] = []
        for i, child in enumerate(node.value):
            self.doc.places[(*path, i)] = Located(
                None, Position.of(child.start_mark), _is_block(child)
            )
            items.append(self.build(child, (*path, i)))
        return items

    def _mapping(self, node: yaml.MappingNode, path: DataPath) -> dict[str, Any]:
        first: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = str(key_node.value)
            if key in first:
                line = first[key].start_mark.line + 1
                self.doc.problem(
                    (*path, key),
                    Position.of(key_node.start_mark),
                    f"duplicate key {key!r} (first defined on line {line})",
                )
            else:
                first[key] = key_node
        self.loader.flatten_mapping(node)  # resolve `<<: *anchor` merges
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.doc.problem(
                    path, Position.of(key_node.start_mark), "keys should be plain strings"
                )
                continue
            key = str(key_node.value)
            sub = (*path, key)
            self.doc.places[sub] = Located(
                Position.of(key_node.start_mark),
                Position.of(value_node.start_mark),
                _is_block(value_node),
            )
            out[key] = self.build(value_node, sub)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: DataPath) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if node.tag != _STR_TAG or not isinstance(value, str) or "$" not in value:
            return value
        done = interpolate(value, self.env)
        for error in done.errors:
            self.doc.problem(path, Position.of(node.start_mark), error)
            self.doc.broken.add(path)
        secret_field = bool(path) and is_secret_key(path[-1])
        span = url_password_span(done.text)
        for sub in done.substitutions:
            in_password = span is not None and sub.start < span[1] and sub.end > span[0]
            if secret_field or in_password or _SECRET_VARIABLE.search(sub.name):
                self.doc.secret_values.add(sub.value)
        return done.text
