"""Version vectors: which edits of a record a version has seen."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping

#: The counter a conflict resolution bumps, so that the resolved version
#: dominates both sides it was made from.
RESOLVER = "~resolver"


class Order(enum.Enum):
    """How two versions relate."""

    EQUAL = "equal"
    BEFORE = "before"  # self happened before other (other dominates)
    AFTER = "after"  # self dominates other
    CONCURRENT = "concurrent"


class VersionVector(Mapping[str, int]):
    """An immutable map ``{endpoint: counter}``; absent endpoints count 0.

    Zero counters are not stored, so ``{}`` and ``{"a": 0}`` are one vector.
    """

    __slots__ = ("_c", "_hash")

    def __init__(self, counters: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> None:
        if type(counters) is VersionVector:  # already checked and sorted; both immutable
            self._c: dict[str, int] = counters._c
            self._hash: int | None = counters._hash
            return
        # A plain dict first: isinstance() against the Mapping ABC is slow, and every
        # key state read from the store makes a few vectors.
        items = (counters.items() if type(counters) is dict or isinstance(counters, Mapping)
                 else counters)
        c: dict[str, int] = {}
        for name, n in items:
            if n < 0:
                raise ValueError(f"negative counter for {name!r}: {n}")
            if n:
                c[str(name)] = int(n)
        self._c = c if len(c) < 2 else dict(sorted(c.items()))
        self._hash = None

    @classmethod
    def stored(cls, counters: dict[str, int]) -> VersionVector:
        """The vector whose :meth:`as_dict` is ``counters``, as a key state in the store
        holds it (already without zero counters and sorted): not checked again, since a
        worker loads a few per key it applies."""
        v = cls.__new__(cls)
        v._c = counters
        v._hash = None
        return v

    # Mapping protocol
    def __getitem__(self, name: str) -> int:
        return self._c.get(name, 0)

    def __iter__(self) -> Iterator[str]:
        return iter(self._c)

    def __len__(self) -> int:
        return len(self._c)

    def __contains__(self, name: object) -> bool:
        return name in self._c

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionVector):
            return self._c == other._c
        if isinstance(other, Mapping):
            return self._c == {k: v for k, v in other.items() if v}
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self._c.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"VersionVector({self._c!r})"

    def as_dict(self) -> dict[str, int]:
        return dict(self._c)

    # Order
    def dominates(self, other: Mapping[str, int]) -> bool:
        """``self >= other`` component-wise (equal vectors dominate each other)."""
        return all(self[k] >= n for k, n in other.items())

    def compare(self, other: Mapping[str, int]) -> Order:
        ge = self.dominates(other)
        le = VersionVector(other).dominates(self)
        if ge and le:
            return Order.EQUAL
        if ge:
            return Order.AFTER
        if le:
            return Order.BEFORE
        return Order.CONCURRENT

    # Construction
    def merge(self, other: Mapping[str, int]) -> VersionVector:
        """The least vector that dominates both."""
        out = dict(self._c)
        for k, n in other.items():
            if n > out.get(k, 0):
                out[k] = n
        return VersionVector(out)

    def increment(self, name: str, by: int = 1) -> VersionVector:
        out = dict(self._c)
        out[name] = out.get(name, 0) + by
        return VersionVector(out)

    def with_counter(self, name: str, value: int) -> VersionVector:
        out = dict(self._c)
        out[name] = value
        return VersionVector(out)
