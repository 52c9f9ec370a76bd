"""``float32`` gives the shortest decimal that reads back as the same single, as
PostgreSQL's ``real`` output does: subnormals included (``1e-45``, not ``1.4013e-45``),
or ``verify`` sees the same value as two."""

from __future__ import annotations

import decimal
import math
import random
import struct
from fractions import Fraction

import psycopg
import pytest

from connectors.mysql.types import float32

_F = struct.Struct("<f")


def _from_bits(bits: int) -> float:
    return float(_F.unpack(struct.pack("<I", bits))[0])


def _shortest(single: float) -> float:
    """Reference: the fewest significant digits of a decimal strictly between the
    midpoints to the neighbouring singles (PostgreSQL's Ryu takes no bound), both
    N-digit neighbours of the exact value tried, the nearer one first, the even one
    on a tie of distance (PostgreSQL's ``-0.00024414062``)."""
    bits = struct.unpack("<I", _F.pack(single))[0]
    toward, away = _from_bits(bits - 1), _from_bits(bits + 1)
    if math.isinf(away):
        away = 2 * single - toward
    low, high = sorted((Fraction(single + toward) / 2, Fraction(single + away) / 2))
    exact = decimal.Decimal(single)
    ctx = decimal.Context(prec=100)
    for digits in range(1, 10):
        unit = decimal.Decimal(1).scaleb(exact.adjusted() - digits + 1)
        down = exact.quantize(unit, rounding=decimal.ROUND_FLOOR)
        fits = [d for d in (down, ctx.add(down, unit)) if low < Fraction(d) < high]
        if fits:
            return float(min(fits, key=lambda d: (abs(ctx.subtract(d, exact)),
                                                   d.as_tuple().digits[-1] % 2)))
    raise AssertionError(single)


def _samples() -> list[float]:
    rng = random.Random(20261207)
    bits = list(range(1, 2048))                                   # the smallest subnormals
    bits += [rng.randrange(1, 0x800000) for _ in range(2000)]      # subnormals
    bits += [e << 23 for e in range(1, 255)]                       # powers of two
    bits += [(e << 23) - 1 for e in range(1, 255)]                 # just below them
    bits += [rng.randrange(0x800000, 0x7F800000) for _ in range(3000)]
    bits += [rng.randrange(0x4B800000, 0x7F800000) for _ in range(2000)]  # from 2**24 on
    return [_from_bits(b | sign) for b in bits for sign in (0, 0x80000000)]


@pytest.mark.parametrize(("stored", "shown"), [
    (1e-45, 1e-45),                    # the smallest subnormal, 1.401298e-45
    (1e-40, 1e-40),                    # 9.99994610111476e-41 as a single
    (3e-45, 3e-45),                    # two of the smallest
    (-1e-41, -1e-41),
    (1.1754942e-38, 1.1754942e-38),    # the largest subnormal
    (1.1754944e-38, 1.1754944e-38),    # the smallest normal
    (1.2345677614212036, 1.2345678),
    (0.10000000149011612, 0.1),
    (3.0, 3.0),
    (-0.0, -0.0),
    (3.4028234663852886e38, 3.4028235e38),
    (2.0**-96, 1.2621775e-29),         # a power of two: the nearest 8 digits miss
    (206755008.0, 206755010.0),        # 206755000 is halfway to 206754992: not taken
    (-(2.0**-12), -0.00024414062),     # halfway between two: the even one
])
def test_the_shortest_decimal_that_reads_back_as_the_same_single(
        stored: float, shown: float) -> None:
    assert repr(float32(stored)) == repr(shown)


def test_subnormals_powers_of_two_and_random_singles_are_the_shortest() -> None:
    for single in _samples():
        assert float32(single) == _shortest(single), single


def test_what_postgresql_shows_for_the_same_real(pg_server: str) -> None:
    singles = _samples()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        shown = [float(r[0]) for r in conn.execute(
            "SELECT x::float4::text FROM unnest(%s::float8[]) WITH ORDINALITY AS t(x, i)"
            " ORDER BY i", (singles,))]
    assert [s for s, pg in zip(singles, shown, strict=True) if float32(s) != pg] == []
