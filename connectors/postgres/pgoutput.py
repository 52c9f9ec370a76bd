"""A pure decoder of the ``pgoutput`` logical replication protocol, version 1.

No I/O: :func:`parse` turns one message (the ``data`` of a row of
``pg_logical_slot_peek_binary_changes`` or the payload of an XLogData frame
of the streaming protocol) into a frozen dataclass. Both readers share it.

Message layouts are those of PostgreSQL's "Logical Replication Message
Formats" (protocol version 1; PostgreSQL 15 sends nothing else unless asked
for streaming of in-progress transactions). Column values stay raw bytes here:
turning them into Python values is :mod:`connectors.postgres.types`' job,
which needs the column's type.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: PostgreSQL timestamps count microseconds from 2000-01-01 00:00:00 UTC.
PG_EPOCH_OFFSET = 946_684_800.0



class Unchanged:
    """An unchanged TOASTed value that pgoutput did not send (kind ``u``)."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unchanged toast>"


UNCHANGED = Unchanged()

#: One column of a TupleData: its text bytes, ``None`` for NULL, or :data:`UNCHANGED`.
#: (Binary values, kind ``b``, are only sent when asked for; this reader never asks.)
TupleValue = bytes | None | Unchanged

_U8 = struct.Struct("!B")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_I64 = struct.Struct("!q")


class ProtocolError(ValueError):
    """Bytes that are not a pgoutput protocol 1 message."""


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int  # the LSN of the transaction's commit record
    commit_ts: float  # seconds since the Unix epoch, UTC
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int  # where the commit record starts
    end_lsn: int  # where it ends: a slot confirmed here will not send the transaction again
    commit_ts: float


@dataclass(frozen=True, slots=True)
class Origin:
    """Sent right after :class:`Begin` when the transaction carries a replication origin."""

    lsn: int  # the commit LSN on the origin server
    name: str


@dataclass(frozen=True, slots=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool  # part of the replica identity


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True, slots=True)
class Type:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Insert:
    relid: int
    new: tuple[TupleValue, ...]


@dataclass(frozen=True, slots=True)
class Update:
    relid: int
    old: tuple[TupleValue, ...] | None  # the old row (FULL identity) or its key ('K')
    old_is_key: bool
    new: tuple[TupleValue, ...]


@dataclass(frozen=True, slots=True)
class Delete:
    relid: int
    old: tuple[TupleValue, ...]
    old_is_key: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    options: int  # bit 1: CASCADE, bit 2: RESTART IDENTITY
    relids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A logical decoding message (``pg_logical_emit_message``), sent only if asked for."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


PgOutputMessage = (
    Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate | Message
)


def pg_timestamp(micros: int) -> float:
    """A PostgreSQL protocol timestamp as Unix seconds."""
    return micros / 1_000_000 + PG_EPOCH_OFFSET


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes | memoryview) -> None:
        self.buf = bytes(buf)
        self.pos = 0

    def u8(self) -> int:
        (v,) = _U8.unpack_from(self.buf, self.pos)
        self.pos += 1
        return int(v)

    def i16(self) -> int:
        (v,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(v)

    def i32(self) -> int:
        (v,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u32(self) -> int:
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        (v,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def i64(self) -> int:
        (v,) = _I64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def cstring(self) -> str:
        end = self.buf.index(b"\x00", self.pos)
        text = self.buf[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ProtocolError("message truncated")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data

    def tuple_data(self) -> tuple[TupleValue, ...]:
        values, self.pos = _tuple_data(self.buf, self.pos)
        return tuple(values)


def _tuple_data(buf: bytes, pos: int) -> tuple[list[TupleValue], int]:
    """A TupleData at ``pos``: its values and the position after it (the hot path)."""
    n = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    out: list[TupleValue] = []
    append = out.append
    size_at = _I32.unpack_from
    total = len(buf)
    for _ in range(n):
        kind = buf[pos]
        if kind == 0x74:  # 't'
            start = pos + 5
            pos = start + size_at(buf, pos + 1)[0]
            if pos > total:
                raise ProtocolError("message truncated")
            append(buf[start:pos])
        elif kind == 0x6E:  # 'n'
            pos += 1
            append(None)
        elif kind == 0x75:  # 'u'
            pos += 1
            append(UNCHANGED)
        else:
            raise ProtocolError(f"unsupported tuple value kind {chr(kind)!r}")
    return out, pos


def parse(data: bytes | memoryview) -> PgOutputMessage:
    """Decode one pgoutput message.

    Raises:
        ProtocolError: unknown message type or malformed bytes.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    try:
        if buf[:1] == b"I" and buf[5:6] == b"N":  # the hot path: inserts
            (relid,) = _U32.unpack_from(buf, 1)
            values, _ = _tuple_data(buf, 6)
            return Insert(relid, tuple(values))
    except (struct.error, IndexError) as exc:
        raise ProtocolError(f"malformed pgoutput message: {exc}") from exc
    r = _Reader(buf)
    try:
        tag = chr(r.u8())
        if tag == "B":
            return Begin(r.u64(), pg_timestamp(r.i64()), r.u32())
        if tag == "C":
            return Commit(r.u8(), r.u64(), r.u64(), pg_timestamp(r.i64()))
        if tag == "O":
            return Origin(r.u64(), r.cstring())
        if tag == "R":
            return _relation(r)
        if tag == "Y":
            return Type(r.u32(), r.cstring(), r.cstring())
        if tag == "I":
            relid = r.u32()
            if chr(r.u8()) != "N":
                raise ProtocolError("insert without a new tuple")
            return Insert(relid, r.tuple_data())
        if tag == "U":
            return _update(r)
        if tag == "D":
            relid = r.u32()
            kind = chr(r.u8())
            if kind not in "KO":
                raise ProtocolError(f"delete with old tuple kind {kind!r}")
            return Delete(relid, r.tuple_data(), kind == "K")
        if tag == "T":
            n = r.i32()
            options = r.u8()
            return Truncate(options, tuple(r.u32() for _ in range(n)))
        if tag == "M":
            transactional = r.u8() == 1
            lsn = r.u64()
            prefix = r.cstring()
            return Message(transactional, lsn, prefix, r.raw(r.i32()))
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"malformed pgoutput message: {exc}") from exc
    raise ProtocolError(f"unknown pgoutput message type {tag!r}")


def _relation(r: _Reader) -> Relation:
    relid = r.u32()
    namespace = r.cstring()
    name = r.cstring()
    ident = chr(r.u8())
    cols = []
    for _ in range(r.i16()):
        flags = r.u8()
        cols.append(RelationColumn(r.cstring(), r.u32(), r.i32(), bool(flags & 1)))
    return Relation(relid, namespace or "pg_catalog", name, ident, tuple(cols))


def _update(r: _Reader) -> Update:
    relid = r.u32()
    kind = chr(r.u8())
    old: tuple[TupleValue, ...] | None = None
    old_is_key = False
    if kind in "KO":
        old_is_key = kind == "K"
        old = r.tuple_data()
        kind = chr(r.u8())
    if kind != "N":
        raise ProtocolError(f"update without a new tuple (got {kind!r})")
    return Update(relid, old, old_is_key, r.tuple_data())


def format_lsn(lsn: int) -> str:
    """``0x16B3748`` -> ``'0/16B3748'``, PostgreSQL's text form of a ``pg_lsn``."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """``'0/16B3748'`` -> ``0x16B3748``."""
    hi, _, lo = text.partition("/")
    if not lo:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(hi, 16) << 32) | int(lo, 16)
