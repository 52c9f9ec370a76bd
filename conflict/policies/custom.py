"""A user's own Python callable as a policy."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from conflict.case import ConflictCase, Decision, Park, Resolution
from conflict.policies._rows import resolution_of
from conflict.policies.policy import PolicyError


class Custom:
    """Calls ``package.module:callable`` (or ``package.module.callable``) with the case.

    The callable is imported when the policy is built, so a path that does not
    import is a :class:`PolicyError` at configuration time, not at the first
    conflict. Nested attributes need the colon form (``pkg.mod:Class.method``).

    The callable may return:

    * a :class:`~conflict.case.Resolution` or :class:`~conflict.case.Park`:
      taken as the decision, under this policy's name;
    * a mapping: the winning content;
    * ``None``: cannot decide (the next policy does).

    The winner of a resolution is always told by comparing its content with
    both sides (canonically), whatever the callable said: the protocol relies on
    it to know which endpoints already hold the result. Anything else returned,
    or an exception raised, is a :class:`PolicyError` naming the path.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"custom:{path}"
        self.function = _load(path)

    def __repr__(self) -> str:
        return f"Custom({self.path!r})"

    def decide(self, case: ConflictCase) -> Decision | None:
        try:
            answer: object = self.function(case)
        except Exception as exc:
            raise PolicyError(
                f"custom policy {self.path!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        try:
            return self._decision(answer, case)
        except TypeError as exc:  # a value with no canonical form
            raise PolicyError(
                f"custom policy {self.path!r} returned a row that cannot be compared: {exc}"
            ) from exc

    def _decision(self, answer: object, case: ConflictCase) -> Decision | None:
        if answer is None:
            return None
        if isinstance(answer, Park):
            return dataclasses.replace(
                answer, policy=self.name, reason=answer.reason or f"parked by {self.path}"
            )
        if isinstance(answer, Resolution):
            if answer.content is not None and not isinstance(answer.content, Mapping):
                raise PolicyError(
                    f"custom policy {self.path!r} returned a Resolution whose content is "
                    f"{type(answer.content).__name__}, not a row mapping or None"
                )
            return resolution_of(
                answer.content, case, policy=self.name,
                reason=answer.reason or f"decided by {self.path}",
            )
        if isinstance(answer, Mapping):
            return resolution_of(answer, case, policy=self.name,
                                 reason=f"content chosen by {self.path}")
        raise PolicyError(
            f"custom policy {self.path!r} returned {type(answer).__name__}; expected a "
            "Resolution, a Park, a row mapping or None"
        )


def _load(path: str) -> Callable[[ConflictCase], object]:
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute or "" in attribute.split("."):
        raise PolicyError(
            f"custom policy {path!r}: expected 'package.module:callable' or "
            "'package.module.callable'"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PolicyError(
            f"custom policy {path!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    except Exception as exc:  # the module itself fails while importing
        raise PolicyError(
            f"custom policy {path!r}: importing module {module_name!r} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PolicyError(
                f"custom policy {path!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(obj):
        raise PolicyError(
            f"custom policy {path!r}: {attribute!r} is a {type(obj).__name__}, not a callable"
        )
    function: Callable[[ConflictCase], object] = obj
    return function
