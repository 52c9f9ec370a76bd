"""Custom conflict policies that the policy tests name by dotted path."""

from __future__ import annotations

from typing import Any

from conflict.case import ConflictCase, Park, Resolution, Winner


def pick_incoming(case: ConflictCase) -> Resolution:
    # The winner claimed here is wrong on purpose: the policy must tell it by content.
    return Resolution(case.incoming.content, Winner.MERGED, "mine", "billing is the ledger")


def delete_it(case: ConflictCase) -> Resolution:
    return Resolution(None, Winner.CURRENT, "mine")


def park(case: ConflictCase) -> Park:
    return Park("mine", "needs finance")


def park_silently(case: ConflictCase) -> Park:
    return Park("mine")


def combine_names(case: ConflictCase) -> dict[str, Any]:
    cur, inc = case.current.content, case.incoming.content
    assert cur is not None and inc is not None
    return {**cur, "name": f"{cur['name']} / {inc['name']}"}


def same_as_current(case: ConflictCase) -> dict[str, Any] | None:
    return None if case.current.content is None else dict(case.current.content)


def no_opinion(case: ConflictCase) -> None:
    return None


def explode(case: ConflictCase) -> None:
    raise ValueError("boom")


def wrong_type(case: ConflictCase) -> int:
    return 42


def uncomparable(case: ConflictCase) -> dict[str, Any]:
    return {"id": 1, "name": object()}


def bad_resolution(case: ConflictCase) -> Resolution:
    return Resolution(["not", "a", "row"], Winner.CURRENT, "mine")  # type: ignore[arg-type]


class Steward:
    @staticmethod
    def decide(case: ConflictCase) -> Park:
        return Park("steward", "from a static method")


class CountingPicker:
    """Picks the incoming side and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, case: ConflictCase) -> Any:
        self.calls += 1
        return case.incoming.content


counting = CountingPicker()

NOT_CALLABLE = 3
