"""The dead-letter queue: record, list, show, requeue (replayed by a run), drop (audited)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sync import dlq
from sync.engine import run_pipeline
from sync.state import open_store
from sync.state.schema import audit
from tests.ops.conftest import cdcsync, sql

POISON = ("CREATE TRIGGER poison BEFORE INSERT ON items WHEN NEW.name LIKE 'poison%' "
          "BEGIN SELECT RAISE(ABORT, 'poison refused'); END")


def _audit(cfg: Any) -> list[tuple[str, str, dict[str, Any]]]:
    store = open_store(cfg.state.url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(audit.c.actor, audit.c.action, audit.c.detail)
                                .where(audit.c.action.startswith("dlq."))
                                .order_by(audit.c.id)).all()
    finally:
        store.close()
    return [(a, b, dict(c)) for a, b, c in rows]


def _outbox(cfg: Any) -> list[str]:
    store = open_store(cfg.state.url)
    try:
        return store.outbox_keys(cfg.pipeline, "items")
    finally:
        store.close()


def test_record_requeue_and_drop_through_the_cli(cfg: Any, pipeline: Path) -> None:
    p, a_db, b_db = str(pipeline), pipeline.parent / "a.db", pipeline.parent / "b.db"
    run_pipeline(cfg)  # snapshot: row 1 reaches b
    # Two rows that b refuses for good: the run isolates them, parks them in one dead
    # letter (one error) and ends waiting for an operator; their applies stay in the outbox.
    sql(b_db, POISON)
    sql(a_db, "INSERT INTO items VALUES (10, 'poison-10'), (11, 'poison-11')")
    failed = cdcsync("run", p, expect=3)
    assert "poison refused" in failed.stderr and "dead letter" in failed.stderr
    keys = _outbox(cfg)
    assert len(keys) == 2
    k10, k11 = sorted(keys, key=lambda k: json.loads(k)["id"])
    [made] = json.loads(cdcsync("dlq", "list", p, "--json").stdout)
    assert sorted(made["keys"]) == sorted(keys) and made["attempts"] == 1
    assert made["error"].startswith("RowRejected: ") and "poison refused" in made["error"]
    # Instead, what the daemon's worker does after the last try: a dead letter per batch.
    store = open_store(cfg.state.url)
    try:
        dlq.requeue(store, "ops", made["id"], "test")
        with store.transaction() as conn:
            first = dlq.record(conn, "ops", "items", "b", [k10], "poison refused", 5)
            second = dlq.record(conn, "ops", "items", "b", [k11, k11], "poison refused", 5)
        assert dlq.depth(store, "ops") == 2
        assert dlq.dead_keys(store, "ops", "items", "b") == {k10, k11}
        assert dlq.dead_keys(store, "ops", "items", "a") == set()
    finally:
        store.close()

    # The cause is fixed at b, but dead keys wait for an operator: a run skips them.
    sql(b_db, "DROP TRIGGER poison")
    cdcsync("run", p, expect=3)
    assert sql(b_db, "SELECT id FROM items ORDER BY id") == [(1,)]
    assert sorted(_outbox(cfg)) == sorted([k10, k11])

    listed = json.loads(cdcsync("dlq", "list", p, "--json").stdout)
    assert [(x["id"], x["entity"], x["target"], x["keys"], x["attempts"]) for x in listed] == [
        (first, "items", "b", [k10], 5), (second, "items", "b", [k11], 5)]
    assert "poison refused" in cdcsync("dlq", "list", p).stdout
    shown = json.loads(cdcsync("dlq", "show", p, str(first), "--json").stdout)
    assert (shown["error"], shown["pending"]) == ("poison refused", [k10])
    text = cdcsync("dlq", "show", p, str(first)).stdout
    assert f"* {k10}" in text and "entity items -> b" in text
    assert "no dead letter 999" in cdcsync("dlq", "show", p, "999", expect=2).stderr

    # Requeue: the letter goes, the kept outbox entry is replayed by the next run.
    res = cdcsync("dlq", "requeue", p, str(first), "--by", "ops-ann")
    assert f"dead letter {first} requeued by ops-ann: 1 key(s)" in res.stdout
    assert [x["id"] for x in json.loads(cdcsync("dlq", "list", p, "--json").stdout)] == [second]
    assert run_pipeline(cfg).total("applied") == 1
    assert sql(b_db, "SELECT id, name FROM items ORDER BY id") == [(1, "one"), (10, "poison-10")]
    assert _outbox(cfg) == [k11]

    # Drop: the letter and the pending apply go; b stays behind until the row changes.
    assert cdcsync("dlq", "drop", p, str(second), "--yes", expect=2).returncode == 2  # --reason
    res = cdcsync("dlq", "drop", p, str(second), "--by", "ops-bob", "--reason", "bad data",
                  "--yes")
    assert "1 pending apply(s) of items to b discarded; b stays behind" in res.stdout
    assert _outbox(cfg) == []
    assert json.loads(cdcsync("dlq", "list", p, "--json").stdout) == []
    assert run_pipeline(cfg).total("applied") == 0
    assert sql(b_db, "SELECT count(*) FROM items WHERE id = 11") == [(0,)]
    cdcsync("verify", p, expect=1)  # the drift a drop leaves, until ...
    sql(a_db, "UPDATE items SET name = 'eleven' WHERE id = 11")  # ... the record changes
    run_pipeline(cfg)
    assert sql(b_db, "SELECT name FROM items WHERE id = 11") == [("eleven",)]
    cdcsync("verify", p)

    assert _audit(cfg)[1:] == [  # (after the test's own requeue of the run's letter)
        ("ops-ann", "dlq.requeue", {"id": first, "entity": "items", "target": "b",
                                    "keys": [k10], "error": "poison refused", "attempts": 5}),
        ("ops-bob", "dlq.drop", {"id": second, "entity": "items", "target": "b",
                                 "keys": [k11], "error": "poison refused", "attempts": 5,
                                 "reason": "bad data"}),
    ]
    assert "no dead letter" in cdcsync("dlq", "requeue", p, str(first), expect=2).stderr


def test_a_key_in_two_letters_stays_dead_until_both_are_decided(cfg: Any) -> None:
    store = open_store(cfg.state.url)
    try:
        with store.transaction() as conn:
            one = dlq.record(conn, "ops", "items", "b", ['{"id":1}'], "e1", 3)
            two = dlq.record(conn, "ops", "items", "b", ['{"id":1}', '{"id":2}'], "e2", 3)
        dlq.requeue(store, "ops", one, "t")
        assert dlq.dead_keys(store, "ops", "items", "b") == {'{"id":1}', '{"id":2}'}
        letter = dlq.drop(store, "ops", two, "t", "gone")
        assert letter["dropped"] == []  # these keys had no pending apply any more
        assert dlq.dead_keys(store, "ops", "items", "b") == set()
        assert dlq.depth(store, "ops") == 0
        assert dlq.get(store, "ops", two) is None
        with pytest.raises(dlq.DeadLetterNotFound, match="no dead letter 7 in pipeline ops"):
            dlq.requeue(store, "ops", 7, "t")
        with pytest.raises(dlq.DeadLetterNotFound):
            dlq.drop(store, "other", one, "t", "x")
    finally:
        store.close()


def test_drop_keeps_the_keys_other_pending_targets(tmp_path: Path, cfg: Any) -> None:
    """A key pending at two targets loses only the dropped letter's target."""
    from conflict.protocol import KeyState

    store = open_store(cfg.state.url)
    try:
        k = '{"id":5}'
        with store.transaction() as conn:
            store.save(conn, "ops", "items", {k: KeyState(outbox={"a", "b"}, key={"id": 5})})
            lid = dlq.record(conn, "ops", "items", "b", [k], "e", 1)
        assert dlq.get(store, "ops", lid)["pending"] == [k]  # type: ignore[index]
        dlq.drop(store, "ops", lid, "t", "r")
        assert store.load("ops", "items", [k])[k].outbox == {"a"}
        assert store.outbox_keys("ops", "items") == [k]
    finally:
        store.close()


def test_drop_takes_the_lock_the_daemon_takes_around_key_states(cfg: Any) -> None:
    from sync.capture import state_lock
    from sync.context import open_pipeline

    with open_pipeline(cfg, with_types=False) as ctx:
        assert dlq.state_lock(cfg.pipeline) == state_lock(ctx)


def test_a_letter_id_is_never_given_twice(cfg: Any) -> None:
    """SQLite gave the newest letter's id again once it was requeued: the audit entry
    of the first then read as if it were about the second."""
    store = open_store(cfg.state.url)
    try:
        with store.transaction() as conn:
            dlq.record(conn, "ops", "items", "b", ['{"id":1}'], "e1", 1)
            second = dlq.record(conn, "ops", "items", "b", ['{"id":2}'], "e2", 1)
        dlq.requeue(store, "ops", second, "t")
        with store.transaction() as conn:
            third = dlq.record(conn, "ops", "items", "b", ['{"id":3}'], "e3", 1)
        assert third > second
    finally:
        store.close()


def test_requeue_all_of_a_target_after_fixing_it(cfg: Any, pipeline: Path) -> None:
    p = str(pipeline)
    store = open_store(cfg.state.url)
    try:
        with store.transaction() as conn:
            ids = [dlq.record(conn, "ops", "items", target, [f'{{"id":{n}}}'], "refused", 5)
                   for n, target in ((1, "b"), (2, "a"), (3, "b"))]
    finally:
        store.close()
    for args, says in [([], "name the dead letters"), (["--all", str(ids[0])], "name the dead"),
                       (["--target", "b", str(ids[0])], "name the dead letters"),
                       (["--all", "--target", "zz"], "no endpoint of pipeline")]:
        assert says in cdcsync("dlq", "requeue", p, *args, expect=2).stderr, args
    out = cdcsync("dlq", "requeue", p, "--all", "--target", "b", "--by", "ops-ann").stdout
    assert out.count("requeued by ops-ann") == 2, out
    assert [x["id"] for x in json.loads(cdcsync("dlq", "list", p, "--json").stdout)] == [ids[1]]
    assert [(a, d["id"]) for a, _, d in _audit(cfg)] == [("ops-ann", ids[0]), ("ops-ann", ids[2])]
    assert "requeued" in cdcsync("dlq", "requeue", p, "--all").stdout
    assert cdcsync("dlq", "requeue", p, "--all").stdout.strip() == "no dead letters"
