"""Configuration problems: where in which file, which field, what is wrong.

A pipeline file is checked as a whole and every problem found is reported at
once, each pointing at the line and column of the offending key or value, the
way a compiler reports errors. :class:`ConfigError` carries them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a pipeline file.

    ``line`` and ``column`` are 1-based and ``None`` when unknown (a file that
    cannot be read has no line). ``field`` is the dotted path of the setting,
    e.g. ``entities.customers.conflict.policy`` (list items as ``schedule[0]``),
    empty when the problem is not about one setting.
    """

    file: str
    line: int | None
    column: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line or 0, self.column or 0, self.field, self.message)


class ConfigError(Exception):
    """A pipeline file is unusable; ``problems`` lists every reason, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        unique = sorted(set(problems), key=Problem.sort_key)
        if not unique:
            raise ValueError("ConfigError needs at least one problem")
        self.problems: list[Problem] = unique
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)
