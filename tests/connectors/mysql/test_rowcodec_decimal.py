"""The binlog's packed DECIMAL against an encoder written from MySQL's ``decimal2bin``.

Every precision (1-65) and scale, both signs: the decoded value has every digit and
the column's scale (its exponent), as a ``SELECT`` of the column gives. The real
server's bytes are checked end to end by the type round trips (test_types.py).
"""

from __future__ import annotations

import decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mysql.rowcodec import _decimal

DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)


def packed(value: decimal.Decimal, precision: int, scale: int) -> bytes:
    """``value`` (which fits DECIMAL(precision, scale)) as MySQL stores it in a row image:
    base-10^9 groups, big-endian, the leading and trailing partial groups in as few
    bytes as their digits need; negative numbers inverted; the first bit flipped."""
    with decimal.localcontext() as ctx:
        ctx.prec = 100  # (the default 28 digits would round DECIMAL(65))
        text = format(abs(value), f".{scale}f")
    whole, _, frac = text.partition(".")
    intg = precision - scale
    whole = whole.zfill(intg)[-intg:] if intg else ""
    intg0, intg0x = divmod(intg, 9)
    frac0, frac0x = divmod(scale, 9)
    out = bytearray()
    if intg0x:
        out += int(whole[:intg0x]).to_bytes(DIG2BYTES[intg0x], "big")
    for i in range(intg0):
        out += int(whole[intg0x + 9 * i : intg0x + 9 * (i + 1)]).to_bytes(4, "big")
    for i in range(frac0):
        out += int(frac[9 * i : 9 * (i + 1)]).to_bytes(4, "big")
    if frac0x:
        out += int(frac[9 * frac0 :]).to_bytes(DIG2BYTES[frac0x], "big")
    if value.is_signed():
        out = bytearray(b ^ 0xFF for b in out)
    out[0] ^= 0x80
    return bytes(out)


@st.composite
def decimals(draw: st.DrawFn) -> tuple[decimal.Decimal, int, int]:
    precision = draw(st.integers(1, 65))
    scale = draw(st.integers(0, min(precision, 30)))
    digits = draw(st.integers(0, 10**precision - 1))
    negative = draw(st.booleans()) and digits != 0
    return decimal.Decimal(f"{'-' if negative else ''}{digits}E-{scale}"), precision, scale


@settings(max_examples=400, deadline=None)
@given(decimals(), st.binary(max_size=3), st.binary(max_size=3))
def test_a_packed_decimal_decodes_to_every_digit_at_the_column_scale(
        case: tuple[decimal.Decimal, int, int], before: bytes, after: bytes) -> None:
    value, precision, scale = case
    raw = packed(value, precision, scale)
    got, end = _decimal(precision, scale)(before + raw + after, len(before))
    assert end == len(before) + len(raw)
    assert got == value and got.as_tuple() == value.as_tuple(), (got, value)


def test_known_images() -> None:
    """Bytes from MySQL's documentation of the format: 1234567890.1234 as DECIMAL(14,4)
    is 81 0D FB 38 D2 04 D2, and its negative 7E F2 04 C7 2D FB 2D."""
    dec = _decimal(14, 4)
    assert dec(bytes.fromhex("810DFB38D204D2"), 0) == (decimal.Decimal("1234567890.1234"), 7)
    assert dec(bytes.fromhex("7EF204C72DFB2D"), 0) == (decimal.Decimal("-1234567890.1234"), 7)
