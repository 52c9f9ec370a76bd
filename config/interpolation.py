"""``${VAR}`` / ``${VAR:-default}`` substitution in string values; ``$$`` is a literal ``$``.

As in a shell, the default is used when the variable is unset *or empty*. A
``$`` followed by anything else is kept as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_REFERENCE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Substitution:
    """One variable put into the text: its name, value and where it landed (``start``..``end``)."""

    name: str
    value: str
    start: int
    end: int


@dataclass(slots=True)
class Interpolated:
    text: str = ""
    substitutions: list[Substitution] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def interpolate(template: str, env: Mapping[str, str]) -> Interpolated:
    """Substitute environment variables into ``template``; problems are collected, not raised.

    A missing variable without a default becomes the empty string and an error.
    """
    result = Interpolated()
    out: list[str] = []
    length = 0
    i = 0
    while True:
        j = template.find("$", i)
        if j == -1:
            out.append(template[i:])
            break
        out.append(template[i:j])
        length += j - i
        if template.startswith("$$", j):
            out.append("$")
            length += 1
            i = j + 2
            continue
        if not template.startswith("${", j):
            out.append("$")
            length += 1
            i = j + 1
            continue
        close = template.find("}", j + 2)
        if close == -1:
            result.errors.append(
                f"unterminated {template[j:]!r}: write ${{NAME}}, or '$$' for a literal '$'"
            )
            out.append(template[j:])
            break
        body = template[j + 2 : close]
        i = close + 1
        m = _REFERENCE.fullmatch(body)
        if m is None:
            result.errors.append(
                f"invalid variable reference '${{{body}}}': write ${{NAME}} or ${{NAME:-default}}"
            )
            continue
        name, default = m["name"], m["default"]
        value = env.get(name)
        if not value and default is not None:
            value = default
        elif value is None:
            result.errors.append(f"environment variable {name} is not set")
            value = ""
        out.append(value)
        result.substitutions.append(Substitution(name, value, length, length + len(value)))
        length += len(value)
    result.text = "".join(out)
    return result
