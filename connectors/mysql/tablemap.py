"""Table-map events, parsed once and cached, and the rows they let us decode.

MariaDB writes a table-map event before the row events of every table in
every transaction. ``mysql-replication`` parses each one from scratch (the
optional metadata with column names, charsets, enum values...), which was
measured at ~60% of the stock reader's time on single-row transactions here.
A table map's bytes are the same for every transaction until the table's
definition changes, so the cache keys on ``table_id`` and checks the bytes: a
DDL (new columns, new names) or a reused table id changes them, and the map is
parsed again. That comparison is the "schema version".

Parsing itself is left to ``mysql-replication``'s ``TableMapEvent``; what the
cache keeps is a compiled decoder per column (:mod:`connectors.mysql.rowcodec`)
plus the converter to the column's typed value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pymysql.protocol import MysqlPacket
from pymysqlreplication.constants import FIELD_TYPE
from pymysqlreplication.packet import BinLogPacketWrapper
from pymysqlreplication.row_event import TableMapEvent

from connectors.base import ConnectorError, SchemaError
from connectors.mysql.rowcodec import Decoder, UnsupportedColumn, column_decoder, inline_code
from connectors.mysql.schema import TableInfo
from connectors.mysql.types import ColumnInfo, binlog_converter

Converter = Callable[[Any], Any] | None
Image = Callable[[bytes, int], tuple[dict[str, Any], int]]

_INSERT, _UPDATE, _DELETE = 0, 1, 2


class _ControlStub:
    """The two things ``mysql-replication``'s event classes ask of a control connection."""

    charset = "utf8mb4"

    def __init__(self, dbms: str) -> None:
        self._dbms = dbms

    def _get_dbms(self) -> str:
        return self._dbms


def table_names(body: bytes, post_header_len: int) -> tuple[str, str]:
    """``(schema, table)`` from a table-map event body, without parsing the rest."""
    off = post_header_len
    n = body[off]
    schema = body[off + 1 : off + 1 + n].decode()
    off += n + 2
    m = body[off]
    table = body[off + 1 : off + 1 + m].decode()
    return schema, table


def parse_with_library(packet: bytes, *, dbms: str, checksum: bool,
                       post_header_lengths: Any) -> TableMapEvent:
    """Parse a whole table-map packet (OK byte, header, body[, checksum]) with
    ``mysql-replication``."""
    if not checksum:
        # The library reads optional metadata up to a 4-byte checksum: give it one.
        size = struct.unpack_from("<I", packet, 10)[0] + 4
        packet = packet[:10] + struct.pack("<I", size) + packet[14:] + b"\0\0\0\0"
    wrapper = BinLogPacketWrapper(
        MysqlPacket(packet, "utf8"),
        table_map={},
        ctl_connection=_ControlStub(dbms),
        mysql_version=(0, 0, 0),
        use_checksum=True,
        allowed_events=frozenset([TableMapEvent]),
        only_tables=None,
        ignored_tables=None,
        only_schemas=None,
        ignored_schemas=None,
        freeze_schema=False,
        ignore_decode_errors=False,
        verify_checksum=False,
        optional_meta_data=True,
        enable_logging=False,
        post_header_lengths=post_header_lengths,
    )
    event = wrapper.event
    if not isinstance(event, TableMapEvent):
        raise ConnectorError("could not parse a table-map event")
    return event


def _fallback_info(column: Any) -> ColumnInfo:
    """A column description from the table map alone (the table is gone or changed)."""
    t = column.type
    binary = getattr(column, "character_set_name", None) == "binary"
    if t in (FIELD_TYPE.TINY, FIELD_TYPE.SHORT, FIELD_TYPE.INT24, FIELD_TYPE.LONG,
             FIELD_TYPE.LONGLONG, FIELD_TYPE.YEAR, FIELD_TYPE.BIT):
        logical, data_type = "int", "int"
    elif t == FIELD_TYPE.NEWDECIMAL:
        logical, data_type = "decimal", "decimal"
    elif t in (FIELD_TYPE.FLOAT, FIELD_TYPE.DOUBLE):
        logical, data_type = "float", "float" if t == FIELD_TYPE.FLOAT else "double"
    elif t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING, FIELD_TYPE.BLOB):
        logical, data_type = ("bytes", "blob") if binary else ("text", "text")
    elif t in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        logical, data_type = "text", "enum"
    elif t in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        logical, data_type = "date", "date"
    elif t in (FIELD_TYPE.DATETIME, FIELD_TYPE.DATETIME2):
        logical, data_type = "timestamp", "datetime"
    elif t in (FIELD_TYPE.TIMESTAMP, FIELD_TYPE.TIMESTAMP2):
        logical, data_type = "timestamptz", "timestamp"
    elif t in (FIELD_TYPE.TIME, FIELD_TYPE.TIME2):
        logical, data_type = "time", "time"
    elif t == FIELD_TYPE.JSON:
        logical, data_type = "json", "json"
    else:
        logical, data_type = "any", "unknown"
    return ColumnInfo(name=column.name, data_type=data_type, column_type=data_type,
                      logical=logical)


@dataclass(slots=True)
class TableMap:
    """One table as a table-map event describes it, ready to decode rows."""

    table_id: int
    schema: str
    table: str
    raw: bytes  # the event body after the table id: what identifies this version
    names: tuple[str, ...] = ()
    decoders: tuple[Decoder, ...] = ()
    converters: tuple[Converter, ...] = ()
    bound: bool = False  # decoders compiled (a table the reader was asked for)
    columns: tuple[ColumnInfo, ...] = field(default_factory=tuple)
    full_image: Image | None = None  # the decoder of an image with every column present
    row_end: str | None = None  # a system-versioned table's row-end column (schema.py)

    def decode(self, kind: int, buf: bytes, off: int, end: int
               ) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
        """The ``(before, after)`` images of a rows event's body from ``off`` to ``end``."""
        ncols, off = _lenenc(buf, off)
        nbytes = (ncols + 7) >> 3
        present = _present(buf[off : off + nbytes], ncols)
        off += nbytes
        present_after = present
        if kind == _UPDATE:
            present_after = _present(buf[off : off + nbytes], ncols)
            off += nbytes
        out: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = []
        full = self.full_image
        n = len(self.names)
        if full is not None and len(present) == n and len(present_after) == n:
            # binlog_row_image = FULL: every image has every column.
            if kind == _INSERT:
                while off < end:
                    after, off = full(buf, off)
                    out.append((None, after))
            elif kind == _DELETE:
                while off < end:
                    before, off = full(buf, off)
                    out.append((before, None))
            else:
                while off < end:
                    before, off = full(buf, off)
                    after, off = full(buf, off)
                    out.append((before, after))
            return out
        image = self._image
        while off < end:
            if kind == _INSERT:
                after, off = image(buf, off, present)
                out.append((None, after))
            elif kind == _DELETE:
                before, off = image(buf, off, present)
                out.append((before, None))
            else:
                before, off = image(buf, off, present)
                after, off = image(buf, off, present_after)
                out.append((before, after))
        return out

    def _image(self, buf: bytes, off: int, present: tuple[int, ...]
               ) -> tuple[dict[str, Any], int]:
        nb = (len(present) + 7) >> 3
        nulls = int.from_bytes(buf[off : off + nb], "little")
        off += nb
        names, decoders, converters = self.names, self.decoders, self.converters
        row: dict[str, Any] = {}
        for bit, i in enumerate(present):
            if nulls >> bit & 1:
                row[names[i]] = None
            else:
                value, off = decoders[i](buf, off)
                conv = converters[i]
                row[names[i]] = value if conv is None or value is None else conv(value)
        return row, off


def _lenenc(buf: bytes, off: int) -> tuple[int, int]:
    first = buf[off]
    if first < 251:
        return first, off + 1
    size = {252: 2, 253: 3, 254: 8}[first]
    return int.from_bytes(buf[off + 1 : off + 1 + size], "little"), off + 1 + size


_PRESENT_CACHE: dict[tuple[bytes, int], tuple[int, ...]] = {}


def _present(bitmap: bytes, ncols: int) -> tuple[int, ...]:
    key = (bitmap, ncols)
    got = _PRESENT_CACHE.get(key)
    if got is None:
        mask = int.from_bytes(bitmap, "little")
        got = tuple(i for i in range(ncols) if mask >> i & 1)
        if len(_PRESENT_CACHE) < 4096:
            _PRESENT_CACHE[key] = got
    return got


class TableMapCache:
    """Table maps by table id, re-parsed only when their bytes change."""

    def __init__(self, *, dbms: str, describe: Callable[[str, str], TableInfo | None]) -> None:
        self.dbms = dbms
        self._describe = describe
        self._maps: dict[int, TableMap] = {}
        self.parsed = 0  # how many table maps were parsed (cache misses)

    def forget(self, schema: str, table: str) -> None:
        """Drop a table's maps (its definition changed): they are rebuilt on next use."""
        for tid in [t for t, m in self._maps.items() if (m.schema, m.table) == (schema, table)]:
            del self._maps[tid]

    def get(self, table_id: int) -> TableMap | None:
        return self._maps.get(table_id)

    def on_event(self, table_id: int, raw: bytes, packet: bytes, *, wanted: bool,
                 checksum: bool, post_header_lengths: Any, post_header_len: int) -> TableMap:
        """The map for a table-map event (``raw`` = its body after the table id)."""
        current = self._maps.get(table_id)
        if current is not None and current.raw == raw and (current.bound or not wanted):
            return current
        schema, table = table_names(packet[20:], post_header_len)
        tm = TableMap(table_id, schema, table, raw)
        if wanted:
            self._compile(tm, packet, checksum, post_header_lengths)
        self._maps[table_id] = tm
        return tm

    def _compile(self, tm: TableMap, packet: bytes, checksum: bool,
                 post_header_lengths: Any) -> None:
        event = parse_with_library(packet, dbms=self.dbms, checksum=checksum,
                                   post_header_lengths=post_header_lengths)
        self.parsed += 1
        columns = event.columns
        if any(c.name is None for c in columns):
            raise ConnectorError(
                f"the binlog has no column names for {tm.schema}.{tm.table}: "
                "set binlog_row_metadata = FULL on the server (see `cdcsync setup`)"
            )
        try:
            info = self._describe(tm.schema, tm.table)
        except SchemaError:
            info = None
        hints = info.by_name() if info is not None else {}
        hidden = info.hidden if info is not None else ()
        infos = []
        for c in columns:
            hint = hints.get(c.name)
            if hint is None and c.name in hidden:  # never synchronised, as generated ones
                hint = replace(_fallback_info(c), generated=True)
            infos.append(hint if hint is not None and _fits(hint, c) else _fallback_info(c))
        try:
            tm.decoders = tuple(column_decoder(c) for c in columns)
        except UnsupportedColumn as exc:
            raise SchemaError(f"{tm.schema}.{tm.table}: {exc}") from exc
        tm.names = tuple(c.name for c in columns)
        tm.columns = tuple(infos)
        tm.converters = tuple(binlog_converter(i) for i in infos)
        tm.full_image = compile_full_image(tm.names, columns, tm.decoders, tm.converters)
        tm.row_end = info.row_end if info is not None and info.row_end in tm.names else None
        tm.bound = True


def compile_full_image(names: tuple[str, ...], columns: list[Any],
                       decoders: tuple[Decoder, ...], converters: tuple[Converter, ...]
                       ) -> Image:
    """A decoder of one row image with every column present, generated as straight-line
    code for this table (no per-column loop, dispatch or tuple indexing); column names
    and helpers are passed in a namespace, never spliced into the source."""
    nb = (len(names) + 7) >> 3
    ns: dict[str, Any] = {"from_bytes": int.from_bytes}
    lines = ["def image(buf, off):",
             f"    nulls = from_bytes(buf[off:off + {nb}], 'little')",
             f"    off += {nb}",
             "    row = {}"]
    for i, column in enumerate(columns):
        ns[f"N{i}"] = names[i]
        code = inline_code(column, i, ns)
        if code is None:
            ns[f"D{i}"] = decoders[i]
            code = [f"v, off = D{i}(buf, off)"]
        if converters[i] is not None:
            ns[f"C{i}"] = converters[i]
            code.append(f"row[N{i}] = None if v is None else C{i}(v)")
        else:
            code.append(f"row[N{i}] = v")
        lines.append(f"    if nulls >> {i} & 1:")
        lines.append(f"        row[N{i}] = None")
        lines.append("    else:")
        lines.extend("        " + c for c in code)
    lines.append("    return row, off")
    exec("\n".join(lines), ns)  # generated from column types only
    image: Image = ns["image"]
    return image


def _fits(hint: ColumnInfo, column: Any) -> bool:
    """Whether ``information_schema``'s description still matches the table map's column
    (it may be newer than the event: the column may have been changed since)."""
    return _fallback_info(column).logical == _fallback_kind(hint)


def _fallback_kind(hint: ColumnInfo) -> str:
    """What the table map alone would say of a column ``information_schema`` describes."""
    if hint.logical == "bool":
        return "int"
    if hint.logical == "json":
        return "json" if hint.data_type == "json" else "text"
    if hint.logical == "uuid" or hint.data_type in ("inet4", "inet6"):
        return "bytes"  # (their stored bytes: types.typed makes them what SELECT reads)
    return hint.logical
