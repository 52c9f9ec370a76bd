"""The state store's hot path: what a batch or a worker skips must change nothing.

Derived forms of a key state's content (its hash, its stored JSON) are made once
per content object; apply results are recorded on states a worker loaded unless
someone saved them since; the collector settings of a cdcsync process.
"""

from __future__ import annotations

import datetime as dt
import decimal
import subprocess
import sys
from pathlib import Path

import pytest

from conflict import protocol
from conflict.canonical import row_hash
from conflict.protocol import Edit, KeyState, Kind, jobs, on_applied, on_change
from conflict.vector import VersionVector
from sync.state import open_store
from sync.state.codec import state_from_json, state_to_json

ROW = {"id": 1, "amount": decimal.Decimal("1.50"), "at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
       "doc": {"k": [1, 2]}, "name": "x"}


def _never(case: object) -> None:
    raise AssertionError("no conflict expected")


def read(st: KeyState, endpoint: str, row: dict[str, object], pos: int) -> Kind:
    return on_change(st, Edit(endpoint, row, (pos,), float(pos)), entity="t", key={"id": 1},
                     sinks=["a", "b"], resolve=_never).kind  # type: ignore[arg-type]


def test_the_content_hash_follows_the_content_it_was_made_from() -> None:
    st = KeyState(key={"id": 1})
    assert read(st, "a", ROW, 1) is Kind.APPLIED
    assert st.content_hash == row_hash(ROW)
    st.content = dict(ROW, name="y")  # replaced, as every writer of content does
    assert st.content_hash == row_hash(dict(ROW, name="y"))
    assert read(st, "a", dict(ROW, name="z"), 2) is Kind.APPLIED
    assert st.content_hash == row_hash(dict(ROW, name="z"))
    (job,) = jobs(st)
    assert job.content_hash == row_hash(job.content)


def test_an_apply_result_records_the_hash_of_what_was_written() -> None:
    st = KeyState(key={"id": 1})
    read(st, "a", ROW, 1)
    (job,) = jobs(st)
    assert on_applied(st, job, "v1")
    assert st.at("b").hash == row_hash(ROW) == st.at("a").hash


def test_a_state_saved_again_as_read_is_the_same_json_and_a_new_content_is_not() -> None:
    st = KeyState(key={"id": 1})
    read(st, "a", ROW, 1)
    stored = state_to_json(st)
    again = state_from_json(stored)
    assert state_to_json(again) == stored
    assert again.content == ROW and again.vector == VersionVector({"a": 1})
    read(again, "a", dict(ROW, amount=decimal.Decimal("2")), 2)
    changed = state_to_json(again)
    assert changed["c"]["amount"] == {"$n": "2"}
    assert state_from_json(changed).content == dict(ROW, amount=decimal.Decimal("2"))


def test_a_loaded_state_carries_its_content_hash_and_an_older_one_makes_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    st = KeyState(key={"id": 1})
    read(st, "a", ROW, 1)
    stored = state_to_json(st)
    assert stored["h"] == row_hash(ROW)
    assert "h" not in state_to_json(KeyState(key={"id": 1}))  # no content, no hash
    older = {k: v for k, v in stored.items() if k != "h"}  # saved before "h" was kept
    assert state_from_json(older).content_hash == row_hash(ROW)

    def no_hashing(row: object) -> str:
        raise AssertionError("the content was hashed again")

    monkeypatch.setattr(protocol, "row_hash", no_hashing)
    loaded = state_from_json(stored)
    assert loaded.content_hash == row_hash(ROW)
    (job,) = jobs(loaded)
    assert job.content_hash == row_hash(ROW)
    loaded.content = dict(ROW, name="y")  # a new content: its hash is made, not the stored one
    with pytest.raises(AssertionError, match="hashed again"):
        _ = loaded.content_hash


def test_a_write_that_found_no_row_is_stored_with_its_position_until_read_past() -> None:
    import json

    st = KeyState(key={"id": 1})
    read(st, "a", ROW, 1)
    (job,) = jobs(st)
    assert on_applied(st, job, "v1", position=(900, -1))
    stored = json.loads(json.dumps(state_to_json(st)))
    again = state_from_json(stored)
    assert again.at("b").wrote_at == (900, -1)
    assert again.at("b").known_before == VersionVector()
    assert state_to_json(again) == stored
    read(again, "b", dict(ROW, name="later"), 901)  # read past it: the window closes
    assert "w" not in state_to_json(again)["e"]["b"]


def test_a_loaded_state_keeps_its_stored_content_as_text_and_saves_it_unchanged(
        tmp_path: Path) -> None:
    """The stored content kept with a loaded state, once decoded, is its JSON text (a
    JSON tree would be a second copy of every loaded row in memory); saved again, it is
    written as
    it was read, and an integer past 64 bits (orjson refuses it) survives both ways."""
    import json

    store = open_store(f"sqlite:///{tmp_path}/state.db")
    rows = {"small": ROW, "huge": dict(ROW, id=2, amount=2**70),
            # (2**70 is a float exactly; these are not, and orjson reads them as floats)
            "odd": dict(ROW, id=3, amount=2**70 + 1, doc={"n": 10**25 + 7, "m": [-(2**64) - 3]})}
    states = {}
    for k, row in rows.items():
        st = KeyState(key={"id": row["id"]})
        read(st, "a", row, 1)
        states[k] = st
    with store.transaction() as conn:
        store.save(conn, "p", "t", states)
    loaded = store.load("p", "t", list(rows))
    for k, row in rows.items():
        st = loaded[k]
        assert st.content == row
        assert all(isinstance(v, str) for _, v in st.memo.values() if v is not None)
        text = store.encode({k: st})[k]
        assert json.loads(text) == state_to_json(st) == state_to_json(states[k])
    with store.transaction() as conn:
        store.save(conn, "p", "t", loaded)
    assert {k: st.content for k, st in store.load("p", "t", list(rows)).items()} == rows


def test_a_loaded_states_content_is_decoded_only_when_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deciding a change that dominates replaces a loaded state's content unread, and
    a state saved unread writes its content back as it was read (integers past 64
    bits too): neither decodes it. Asked for, it is the content that was saved."""
    from sync.state import codec

    store = open_store(f"sqlite:///{tmp_path}/state.db")
    huge = dict(ROW, amount=2**70 + 1, doc={"n": 10**25 + 7})
    states = {}
    for k, row in (("k1", ROW), ("k2", huge)):
        st = KeyState(key={"id": 1})
        read(st, "a", row, 1)
        states[k] = st
    with store.transaction() as conn:
        store.save(conn, "p", "t", states)
    decode = codec.row_from_json

    def no_decoding(data: dict[str, object] | None) -> object:
        if data is not None and "name" in data:  # (the key is decoded as loaded)
            raise AssertionError("the content was decoded")
        return decode(data)

    monkeypatch.setattr(codec, "row_from_json", no_decoding)
    loaded = store.load("p", "t", ["k1", "k2"])
    assert loaded["k1"].content_hash == row_hash(ROW)
    assert read(loaded["k1"], "a", dict(ROW, name="new"), 5) is Kind.APPLIED
    assert loaded["k1"].content == dict(ROW, name="new")
    assert state_to_json(loaded["k2"]) == state_to_json(states["k2"])
    with store.transaction() as conn:
        store.save(conn, "p", "t", loaded)
    monkeypatch.setattr(codec, "row_from_json", decode)
    again = store.load("p", "t", ["k1", "k2"])
    assert again["k1"].content == dict(ROW, name="new") and again["k2"].content == huge
    assert again["k2"] == states["k2"] and states["k2"] == again["k2"]
    assert again["k1"] != states["k1"]
    with pytest.raises(AssertionError, match="decoded"):  # a conflict asks for it
        monkeypatch.setattr(codec, "row_from_json", no_decoding)
        other = store.load("p", "t", ["k2"])["k2"]
        on_change(other, Edit("b", dict(ROW, name="rival"), (1,), 1.0), entity="t",
                  key={"id": 1}, sinks=["a", "b"], resolve=_never)  # type: ignore[arg-type]


def test_a_parked_state_with_an_integer_past_64_bits_is_saved(tmp_path: Path) -> None:
    """A parked conflict's sides are JSON trees, which orjson refuses with an integer
    past 64 bits in them (a JSON document's): the store writes such a state with the
    standard library (it failed on the content's orjson fragment, and the batch with it)."""
    from conflict.case import Park

    store = open_store(f"sqlite:///{tmp_path}/state.db")
    huge = dict(ROW, doc={"n": 10**25 + 7})
    st = KeyState(key={"id": 1})
    read(st, "a", huge, 1)
    outcome = on_change(st, Edit("b", dict(huge, name="rival"), (1,), 1.0), entity="t",
                        key={"id": 1}, sinks=["a", "b"], resolve=lambda case: Park("both"))
    assert outcome.kind is Kind.PARKED
    with store.transaction() as conn:
        store.save(conn, "p", "t", {"k": st})
    loaded = store.load("p", "t", ["k"])["k"]
    assert loaded == st and loaded.parked is not None
    assert loaded.parked.sides["b"].content == dict(huge, name="rival")


def test_a_worker_reloads_exactly_the_keys_saved_since_it_loaded_them(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    states = {}
    for i in range(3):
        st = KeyState(key={"id": i})
        read(st, "a", dict(ROW, id=i), 1)
        states[f"k{i}"] = st
    with store.transaction(lock="t") as conn:
        store.save(conn, "p", "t", states)
    stamps: dict[str, float] = {}
    loaded = store.load("p", "t", ["k0", "k1", "k2", "k3"], stamps=stamps)
    assert sorted(stamps) == ["k0", "k1", "k2"]  # k3 has no state yet
    assert loaded["k1"].content == dict(ROW, id=1)
    with store.transaction(lock="t") as conn:  # the reader decides a newer version of k1
        store.save(conn, "p", "t", {"k1": loaded["k1"]})
    with store.transaction(lock="t") as conn:  # absent then and now: k3 has not moved
        assert store.moved_since(conn, "p", "t", ["k0", "k1", "k2", "k3"], stamps) == {"k1"}
        store.save(conn, "p", "t", {"k3": loaded["k3"]})
        assert store.moved_since(conn, "p", "t", ["k2", "k3"], stamps) == {"k3"}


def test_a_cdcsync_process_collects_young_objects_less_often(tmp_path: Path) -> None:
    from sync.gctune import YOUNG

    code = ("import gc\nfrom sync.cli import main\n"
            f"try:\n    main(['config', 'check', {str(tmp_path / 'none.yaml')!r}])\n"
            "except SystemExit:\n    pass\n"
            "print(gc.get_threshold()[0], gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(YOUNG), "True"]


def test_a_hashed_row_version_is_the_contents_hash_only_where_typing_kept_it() -> None:
    """MariaDB's row versions are row hashes (connectors.base ``Source.hashed_versions``):
    the protocol takes one for its content's hash, unless typing the row changed it."""
    from types import SimpleNamespace

    from sync.capture import edit_of
    from sync.change import Change, Op

    def change(after: dict[str, object]) -> Change:
        return Change("t", {"id": 1}, Op.UPDATE, None, after, "m", (1, 2, 0), 1.0,
                      row_version=row_hash(after))

    as_read = SimpleNamespace(ignored=set(), types={"id": "int", "flag": "int"})
    as_bool = SimpleNamespace(ignored=set(), types={"id": "int", "flag": "bool"})
    ignoring = SimpleNamespace(ignored={"extra"}, types={"id": "int", "flag": "int"})
    kept = change({"id": 1, "flag": 1})
    assert edit_of(as_read, kept, hashed=True).content_hash == row_hash({"id": 1, "flag": 1})
    assert edit_of(as_read, kept).content_hash is None  # a version that is no hash
    typed = edit_of(as_bool, kept, hashed=True)  # 1 -> True: another hash
    assert typed.content == {"id": 1, "flag": True} and typed.content_hash is None
    assert edit_of(ignoring, change({"id": 1, "flag": 1, "extra": 2}),
                   hashed=True).content_hash is None  # a column left out
    st, again = KeyState(key={"id": 1}), KeyState(key={"id": 1})
    for s, edit in ((st, edit_of(as_read, kept, hashed=True)), (again, edit_of(as_read, kept))):
        on_change(s, edit, entity="t", key={"id": 1}, sinks=["m", "p"], resolve=_never)  # type: ignore[arg-type]
    assert state_to_json(st) == state_to_json(again)
