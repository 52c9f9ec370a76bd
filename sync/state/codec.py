"""JSON form of :class:`KeyState` in the store (compact keys: one row per record)."""

from __future__ import annotations

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
    return {"e": s.endpoint, "v": s.vector.as_dict(), "c": row_to_json(s.content),
            "t": s.committed_at}


def side_from_json(d: dict[str, Any]) -> Side:
    return Side(d["e"], VersionVector(d["v"]), row_from_json(d["c"]), float(d["t"]))


def _json_text(obj: Any) -> str:
    """Compact JSON; the standard library for what orjson refuses (integers past 64 bits).

    As ``str``: orjson's ``bytes`` keep its output buffer's spare capacity (~4 KiB each)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def _stored(st: KeyState, name: str, row: dict[str, Any] | None) -> str:
    """The JSON text of ``row_to_json(row)``, made once per row object (a batch saves a
    state twice). Kept as text, not as the JSON tree: a loaded state keeps it until it
    is saved again, and the tree would be a second copy of the content in memory."""
    memo = st.memo.get(name)
    if memo is not None and memo[0] is row:
        return memo[1]  # type: ignore[no-any-return]
    out = _json_text(row_to_json(row))
    st.memo[name] = (row, out)
    return out


def state_to_json(st: KeyState, *, fragments: bool = False) -> dict[str, Any]:
    """The stored form of ``st``. ``fragments``: the content and key as orjson
    fragments of their JSON text (for :func:`orjson.dumps`, which writes them as they
    are), else as JSON trees."""
    part = orjson.Fragment if fragments else parse_json
    out: dict[str, Any] = {
        "v": st.vector.as_dict(),
        "c": part(_stored(st, "json", st.content)),
        "t": st.committed_at,
        "o": st.origin,
        "e": {name: _endpoint_to_json(e) for name, e in st.endpoints.items()},
        "x": sorted(st.outbox),
        "k": part(_stored(st, "key json", st.key)),
    }
    if st.content is not None:
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
    st = KeyState(
        vector=VersionVector.stored(d["v"]),
        content=row_from_json(d["c"]),
        committed_at=float(d["t"]),
        origin=d["o"],
        endpoints={name: _endpoint_from_json(e) for name, e in d["e"].items()},
        outbox=set(d["x"]),
        key=row_from_json(d.get("k")),
        parked=None if park is None else ParkedConflict(
            park["id"], {n: side_from_json(s) for n, s in park["sides"].items()},
            row_from_json(park["base"])),
    )
    # saved again as it was read, unless replaced
    st.memo["json"] = (st.content, _json_text(d["c"]))
    if "h" in d:  # states saved before it was kept have it made when asked
        st.memo["hash"] = (st.content, d["h"])
    st.memo["key json"] = (st.key, _json_text(d.get("k")))
    return st
