from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conflict.vector import RESOLVER, Order, VersionVector

vectors = st.dictionaries(st.sampled_from(["a", "b", "c", RESOLVER]), st.integers(0, 5)).map(
    VersionVector)


def test_zero_counters_are_absent() -> None:
    assert VersionVector({"a": 0}) == VersionVector()
    assert VersionVector({"a": 1, "b": 0}).as_dict() == {"a": 1}
    assert VersionVector()["zzz"] == 0


def test_negative_counter_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        VersionVector({"a": -1})


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ({}, {}, Order.EQUAL),
        ({"a": 1}, {"a": 1}, Order.EQUAL),
        ({"a": 2}, {"a": 1}, Order.AFTER),
        ({"a": 1}, {"a": 1, "b": 1}, Order.BEFORE),
        ({"a": 2}, {"a": 1, "b": 1}, Order.CONCURRENT),
        ({"a": 1}, {"b": 1}, Order.CONCURRENT),
    ],
)
def test_compare(a: dict[str, int], b: dict[str, int], order: Order) -> None:
    assert VersionVector(a).compare(b) is order


def test_increment_and_with_counter_do_not_mutate() -> None:
    v = VersionVector({"a": 1})
    assert v.increment("a").as_dict() == {"a": 2}
    assert v.increment("b", 3).as_dict() == {"a": 1, "b": 3}
    assert v.with_counter("a", 7).as_dict() == {"a": 7}
    assert v.as_dict() == {"a": 1}


@given(vectors, vectors)
def test_merge_is_least_upper_bound(a: VersionVector, b: VersionVector) -> None:
    m = a.merge(b)
    assert m.dominates(a) and m.dominates(b)
    assert m == b.merge(a)
    for k in m:
        assert m[k] == max(a[k], b[k])


@given(vectors, vectors)
def test_compare_is_antisymmetric(a: VersionVector, b: VersionVector) -> None:
    flipped = {Order.BEFORE: Order.AFTER, Order.AFTER: Order.BEFORE,
               Order.EQUAL: Order.EQUAL, Order.CONCURRENT: Order.CONCURRENT}
    assert b.compare(a) is flipped[a.compare(b)]


@given(vectors)
def test_increment_dominates_strictly(a: VersionVector) -> None:
    assert a.increment("a").compare(a) is Order.AFTER


def test_hash_and_equality_with_plain_mappings() -> None:
    assert VersionVector({"a": 1}) == {"a": 1, "b": 0}
    assert len({VersionVector({"a": 1}), VersionVector([("a", 1)])}) == 1
