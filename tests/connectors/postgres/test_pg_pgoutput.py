"""The pure pgoutput decoder and the naming rules (no server needed)."""

from __future__ import annotations

import struct

import pytest

from connectors.postgres.names import Names, bounded, sanitize
from connectors.postgres.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Delete,
    Insert,
    Origin,
    ProtocolError,
    Relation,
    Truncate,
    Type,
    Update,
    format_lsn,
    parse,
    parse_lsn,
    pg_timestamp,
)


def _tuple(*values: bytes | str | None) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v == "u":
            out += b"u"
        else:
            assert isinstance(v, bytes)
            out += b"t" + struct.pack("!i", len(v)) + v
    return out


def test_begin_commit_origin() -> None:
    ts = 789_000_000  # 789 s after 2000-01-01
    begin = parse(b"B" + struct.pack("!QqI", 0x1_0000_0010, ts, 4242))
    assert begin == Begin(0x1_0000_0010, pg_timestamp(ts), 4242)
    assert begin.commit_ts == pytest.approx(946_684_800 + 789)
    commit = parse(b"C" + struct.pack("!BQQq", 0, 0x10, 0x38, ts))
    assert commit == Commit(0, 0x10, 0x38, pg_timestamp(ts))
    assert parse(b"O" + struct.pack("!Q", 7) + b"cdcsync_p\x00") == Origin(7, "cdcsync_p")


def test_relation_and_type() -> None:
    body = struct.pack("!I", 16384) + b"\x00t\x00f" + struct.pack("!h", 2)
    body += b"\x01id\x00" + struct.pack("!Ii", 23, -1)
    body += b"\x00name\x00" + struct.pack("!Ii", 25, -1)
    rel = parse(b"R" + body)
    assert isinstance(rel, Relation)
    assert rel.namespace == "pg_catalog"  # empty namespace means pg_catalog
    assert rel.name == "t" and rel.replica_identity == "f"
    assert [(c.name, c.type_oid, c.is_key) for c in rel.columns] == [
        ("id", 23, True), ("name", 25, False)]
    assert parse(b"Y" + struct.pack("!I", 99) + b"public\x00mood\x00") == Type(99, "public", "mood")


def test_row_messages() -> None:
    rel = struct.pack("!I", 5)
    ins = parse(b"I" + rel + b"N" + _tuple(b"1", None, "u"))
    assert ins == Insert(5, (b"1", None, UNCHANGED))
    upd = parse(b"U" + rel + b"O" + _tuple(b"1", b"a") + b"N" + _tuple(b"2", b"b"))
    assert isinstance(upd, Update)
    assert upd.old == (b"1", b"a") and not upd.old_is_key
    assert upd.new == (b"2", b"b")
    plain = parse(b"U" + rel + b"N" + _tuple(b"3"))
    assert isinstance(plain, Update) and plain.old is None
    key = parse(b"D" + rel + b"K" + _tuple(b"1", None))
    assert key == Delete(5, (b"1", None), True)
    trunc = parse(b"T" + struct.pack("!iB", 2, 3) + struct.pack("!II", 5, 6))
    assert trunc == Truncate(3, (5, 6))


@pytest.mark.parametrize("data", [b"", b"Z", b"B\x00", b"I" + struct.pack("!I", 1) + b"X",
                                  b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1)
                                  + b"b" + struct.pack("!i", 1) + b"x",
                                  b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1)
                                  + b"t" + struct.pack("!i", 10) + b"ab"])
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse(data)


def test_lsn_text_round_trip() -> None:
    assert format_lsn(0x16B3748) == "0/16B3748"
    assert format_lsn((0x2A << 32) | 0x10) == "2A/10"
    assert parse_lsn("2A/10") == (0x2A << 32) | 0x10
    with pytest.raises(ValueError):
        parse_lsn("garbage")


def test_names_are_sanitised_and_bounded() -> None:
    assert sanitize("My Pipeline-1") == "my_pipeline_1"
    assert sanitize("---") == "x"
    long = "p" * 100
    assert len(bounded(long)) == 63 and bounded(long) != bounded(long[:-1] + "q")
    names = Names.of("CRM sync", "Billing DB")
    assert names.slot == "cdcsync_crm_sync_billing_db" == names.publication
    assert names.origin == "cdcsync_crm_sync"
    assert len(Names.of("x" * 80, "y" * 80).slot) <= 63
    with pytest.raises(ValueError, match="slot name"):
        Names.of("p", "e", type("S", (), {"slot": "Bad-Name"})())


def test_own_origins_are_the_pipeline_pool_only() -> None:
    names = Names.of("p", "e")
    assert names.is_own_origin("cdcsync_p")
    assert names.is_own_origin(names.pool_origin(3)) and names.pool_origin(3) == "cdcsync_p.3"
    assert not names.is_own_origin("cdcsync_p2")
    assert not names.is_own_origin("cdcsync_p.x")
    assert not names.is_own_origin("pg_16384")
