"""JSON form of :class:`KeyState` in the store (compact keys: one row per record)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson

from conflict.canonical import (
    from_json_value,
    parse_json,
    row_from_json,
    row_to_json,
    to_json_value,
)
from conflict.case import Side
from conflict.protocol import EndpointState, KeyState, ParkedConflict
from conflict.vector import VersionVector


def side_to_json(s: Side) -> dict[str, Any]:
    out = {"e": s.endpoint, "v": s.vector.as_dict(), "c": row_to_json(s.content),
           "t": s.committed_at}
    if s.snapshot_read:  # ("t" is when it was read)
        out["s"] = True
    return out


def side_from_json(d: dict[str, Any]) -> Side:
    return Side(d["e"], VersionVector(d["v"]), row_from_json(d["c"]), float(d["t"]),
                bool(d.get("s", False)))


def json_text(obj: Any) -> str:
    """Compact JSON, as the state store writes it: orjson, the standard library for
    what orjson refuses (integers past 64 bits).

    As ``str``: orjson's ``bytes`` keep its output buffer's spare capacity (~4 KiB each)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


#: the dataclass's slot for ``content``: StoredState keeps the decoded content there
_CONTENT: Any = KeyState.__dict__["content"]
_DECODED = object()  # StoredState's ``_raw`` once the content is decoded (or replaced)


class StoredState(KeyState):
    """A state read from the store, whose content is decoded from its JSON tree when
    first asked for. A change that dominates (nearly every one) replaces the content
    unread, and saving such a state writes the tree back as it was read: decoding the
    typed values (decimals, timestamps, ...) was half of what a load cost. The hash
    stored with the content answers :attr:`content_hash` meanwhile."""

    __slots__ = ("_raw",)
    _raw: Any

    @property
    def content(self) -> dict[str, Any] | None:
        raw = self._raw
        if raw is not _DECODED:
            self._raw = _DECODED
            value = row_from_json(raw)
            _CONTENT.__set__(self, value)
            self.memo["json"] = (value, json_text(raw))  # saved again as it was read
            known = self.memo.get("hash")
            if known is not None:
                self.memo["hash"] = (value, known[1])
        return _CONTENT.__get__(self)  # type: ignore[no-any-return]

    @content.setter
    def content(self, value: dict[str, Any] | None) -> None:
        self._raw = _DECODED
        _CONTENT.__set__(self, value)

    @property
    def content_hash(self) -> str:
        if self._raw is not _DECODED:
            known = self.memo.get("hash")
            if known is not None:
                return str(known[1])
        return KeyState.content_hash.__get__(self)  # type: ignore[no-any-return]

    def stored_content(self) -> Any:
        """The content's JSON tree while it is not decoded, else ``_DECODED``."""
        return self._raw

    def __eq__(self, other: object) -> bool:
        # the dataclass's __eq__ wants the very same class on both sides
        if not isinstance(other, KeyState):
            return NotImplemented
        return _fields(self) == _fields(other)


#: what the dataclass's __eq__ compares
_COMPARED = tuple(f.name for f in dataclasses.fields(KeyState) if f.compare)


def _fields(st: KeyState) -> tuple[Any, ...]:
    return tuple(getattr(st, name) for name in _COMPARED)


def _stored(st: KeyState, name: str, row: dict[str, Any] | None) -> str:
    """The JSON text of ``row_to_json(row)``, made once per row object (a batch saves a
    state twice). Kept as text, not as the JSON tree: a loaded state keeps it until it
    is saved again, and the tree would be a second copy of the content in memory."""
    memo = st.memo.get(name)
    if memo is not None and memo[0] is row:
        return memo[1]  # type: ignore[no-any-return]
    out = json_text(row_to_json(row))
    st.memo[name] = (row, out)
    return out


def state_to_json(st: KeyState, *, fragments: bool = False) -> dict[str, Any]:
    """The stored form of ``st``. ``fragments``: the content and key as orjson
    fragments of their JSON text (for :func:`orjson.dumps`, which writes them as they
    are), else as JSON trees."""
    part = orjson.Fragment if fragments else parse_json
    raw = st.stored_content() if isinstance(st, StoredState) else _DECODED
    out: dict[str, Any] = {
        "v": st.vector.as_dict(),
        "c": part(_stored(st, "json", st.content)) if raw is _DECODED else raw,
        "t": st.committed_at,
        "o": st.origin,
        **({"s": True} if st.snapshot_read else {}),
        "e": {name: _endpoint_to_json(e) for name, e in st.endpoints.items()},
        "x": sorted(st.outbox),
        "k": part(_stored(st, "key json", st.key)),
    }
    if (st.content if raw is _DECODED else raw) is not None:
        # Kept with the content: a worker in another process loads every state it
        # applies, and each apply job carries this hash (made again it costs a row
        # hash per key; the reader has it in hand from deciding).
        out["h"] = st.content_hash
    if st.parked is not None:
        out["park"] = {
            "id": st.parked.conflict_id,
            "sides": {n: side_to_json(s) for n, s in st.parked.sides.items()},
            "base": row_to_json(st.parked.base),
        }
    return out


def _endpoint_to_json(e: EndpointState) -> dict[str, Any]:
    out = {
        "k": e.known.as_dict(),
        "r": to_json_value(e.row_version),
        "h": e.hash,
        "p": list(e.last_pos) if e.last_pos is not None else None,
        "q": list(e.pending),
        "n": e.reads,
    }
    if e.wrote_at is not None:  # after an insert into a row known absent, until read past
        out["w"] = list(e.wrote_at)
        out["b"] = e.known_before.as_dict() if e.known_before is not None else None
    return out


def _endpoint_from_json(e: dict[str, Any]) -> EndpointState:
    wrote_at, before = e.get("w"), e.get("b")
    return EndpointState(
        known=VersionVector.stored(e["k"]),
        row_version=from_json_value(e["r"]),
        hash=e["h"],
        last_pos=tuple(e["p"]) if e["p"] is not None else None,
        pending=list(e["q"]),
        reads=int(e.get("n", 0)),
        wrote_at=tuple(wrote_at) if wrote_at is not None else None,
        known_before=VersionVector.stored(before) if before is not None else None,
    )


def state_from_json(d: dict[str, Any]) -> KeyState:
    park = d.get("park")
    st = StoredState(
        vector=VersionVector.stored(d["v"]),
        committed_at=float(d["t"]),
        snapshot_read=bool(d.get("s", False)),
        origin=d["o"],
        endpoints={name: _endpoint_from_json(e) for name, e in d["e"].items()},
        outbox=set(d["x"]),
        key=row_from_json(d.get("k")),
        parked=None if park is None else ParkedConflict(
            park["id"], {n: side_from_json(s) for n, s in park["sides"].items()},
            row_from_json(park["base"])),
    )
    st._raw = d["c"]  # decoded when asked for; until then saved again as it was read
    if st._raw is None:
        st._raw = _DECODED
    if "h" in d:  # states saved before it was kept have it made when asked
        st.memo["hash"] = (st.content if st._raw is _DECODED else _DECODED, d["h"])
    st.memo["key json"] = (st.key, json_text(d.get("k")))
    return st
