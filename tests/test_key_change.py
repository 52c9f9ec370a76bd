"""An entity's key changed in the pipeline file after it ran (``key: [id]`` -> ``[code]``).

Until 2026-12-07 nothing said so: the states stayed under the old key, every change
was read under a key no state knew, and the resync a user would try reconciled the
endpoints' copies knowing nothing of them: the copy read last won, and an edit on
its way to the other endpoint was overwritten there by the copy that lagged. Now
every run stops and names ``resync --reset-stream``, which moves the states to the
new key (sync/rekey.py) so that the snapshot tells the edits from the lagging
copies. Through the real CLI, at SQLite and PostgreSQL endpoints.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.fix_ends import Sqlite
from tests.test_cli_quickstart import cdcsync, run_json


def pipeline(tmp: Path, a: Any, b: Any, key: str, extra: str = "") -> Path:
    p = tmp / "p.yaml"
    p.write_text(f"""
pipeline: rekey{abs(hash(str(tmp))) % 10**6}
state: {{url: "sqlite:///{tmp}/state.db"}}
endpoints:
  a: {a.spec}
  b: {b.spec}
entities:
  t:
    key: [{key}]
    endpoints: {{a: t, b: t}}
{extra}""")
    return p


def test_a_changed_key_stops_the_run_and_its_resync_keeps_the_edits_made_meanwhile(
        tmp_path: Path, two_ends: tuple[Any, Any]) -> None:
    a, b = two_ends
    a.run("INSERT INTO t VALUES (1, 'x', 'one'), (2, 'y', 'two'), (3, 'z', 'three')")
    p = pipeline(tmp_path, a, b, "id")
    cdcsync("setup", str(p))
    run_json(p)
    a.run("DELETE FROM t WHERE id = 3")
    run_json(p)
    pipeline(tmp_path, a, b, "code")
    a.run("UPDATE t SET v = 'ONE' WHERE id = 1")  # edits not synced yet, one at each end
    b.run("UPDATE t SET v = 'TWO' WHERE id = 2")
    cdcsync("setup", str(p))

    stopped = cdcsync("run", str(p), expect=1)
    assert "keyed by (code)" in stopped.stderr and "by (id)" in stopped.stderr, stopped.stderr
    assert "resync PIPELINE t --reset-stream" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    plain = cdcsync("resync", str(p), "t", expect=1)
    assert "--reset-stream" in plain.stderr and "nothing was changed" in plain.stderr
    cdcsync("run", str(p), expect=1)  # the plain resync moved nothing

    said = cdcsync("resync", str(p), "t", "--reset-stream").stdout
    assert "2 state(s) moved from key (id) to (code); 1 of deleted rows dropped" in said
    run_json(p)
    want = [(1, "x", "ONE"), (2, "y", "TWO")]
    assert a.run("SELECT id, code, v FROM t ORDER BY id") == want
    assert b.run("SELECT id, code, v FROM t ORDER BY id") == want
    out = run_json(p)
    assert out["totals"]["applied"] == 0, out
    a.run("UPDATE t SET v = 'uno' WHERE code = 'x'")  # and the stream reads on
    b.run("DELETE FROM t WHERE code = 'y'")
    run_json(p)
    assert a.run("SELECT id, code, v FROM t ORDER BY id") == [(1, "x", "uno")]
    assert b.run("SELECT id, code, v FROM t ORDER BY id") == [(1, "x", "uno")]


def test_states_stay_under_the_old_key_while_a_dead_letter_refers_to_it(tmp_path: Path) -> None:
    a, b = Sqlite(tmp_path, "a"), Sqlite(tmp_path, "b")
    b.run("CREATE TRIGGER no_bad BEFORE INSERT ON t WHEN NEW.v = 'bad'"
          " BEGIN SELECT RAISE(ABORT, 'v may not be bad'); END")
    a.run("INSERT INTO t VALUES (1, 'x', 'one'), (2, 'y', 'bad')")
    one_way = "    direction: one-way\n    source: a\n"
    p = pipeline(tmp_path, a, b, "id", one_way)
    cdcsync("setup", str(p))
    run_json(p, expect=3)  # a dead letter waits: the run needs attention
    assert b.run("SELECT id FROM t") == [(1,)]
    pipeline(tmp_path, a, b, "code", one_way)
    cdcsync("setup", str(p))

    refused = cdcsync("resync", str(p), "t", "--reset-stream", expect=1)
    assert "1 dead letters (`cdcsync dlq`)" in refused.stderr, refused.stderr
    assert "nothing was changed" in refused.stderr
    with sqlite3.connect(tmp_path / "state.db") as conn:
        keys = sorted(k for (k,) in conn.execute("SELECT key FROM key_states"))
    assert keys == ['{"id":1}', '{"id":2}']


def test_a_resync_stopped_part_way_changed_nothing_and_runs_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until 2026-12-07 the states moved in one transaction and the checkpoints went in
    the next: a resync stopped between the two (Ctrl-C, a kill) left the states under
    the new key with the old checkpoints, under which the SQLite log's entries of old
    keys would be read as keys of the new columns. Now it is one transaction."""
    from config.loader import load_pipeline
    from sync.setup import resync
    from sync.state.store import StateStore

    a, b = Sqlite(tmp_path, "a"), Sqlite(tmp_path, "b")
    a.run("INSERT INTO t VALUES (1, 'x', 'one'), (2, 'y', 'two')")
    p = pipeline(tmp_path, a, b, "id")
    cdcsync("setup", str(p))
    run_json(p)
    pipeline(tmp_path, a, b, "code")
    a.run("UPDATE t SET v = 'ONE' WHERE id = 1")
    cdcsync("setup", str(p))

    def stored() -> tuple[list[str], int]:
        with sqlite3.connect(tmp_path / "state.db") as conn:
            keys = sorted(k for (k,) in conn.execute("SELECT key FROM key_states"))
            (n,) = conn.execute("SELECT count(*) FROM checkpoints").fetchone()
        return keys, n

    before = stored()
    real = StateStore.audit

    def killed(conn: Any, pipeline: str, actor: str, action: str, detail: Any) -> None:
        real(conn, pipeline, actor, action, detail)
        if action == "resync":  # the last step of the resync's work on the state store
            raise KeyboardInterrupt

    monkeypatch.setattr(StateStore, "audit", staticmethod(killed))
    with pytest.raises(KeyboardInterrupt):
        resync(load_pipeline(p), ["t"], reset_stream=True)
    monkeypatch.undo()
    assert stored() == before
    assert before[0] == ['{"id":1}', '{"id":2}'] and before[1] > 0

    stopped = cdcsync("run", str(p), expect=1)
    assert "resync PIPELINE t --reset-stream" in stopped.stderr, stopped.stderr
    cdcsync("resync", str(p), "t", "--reset-stream")
    run_json(p)
    want = [(1, "x", "ONE"), (2, "y", "two")]
    assert a.run("SELECT id, code, v FROM t ORDER BY id") == want
    assert b.run("SELECT id, code, v FROM t ORDER BY id") == want
