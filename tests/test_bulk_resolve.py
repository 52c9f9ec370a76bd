"""`cdcsync conflicts resolve --all --pick ENDPOINT`: a steward decides every open
conflict (of an entity) at once, and sees the decisions applied at every endpoint."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.pipelines import sqlite_endpoint, sqlite_run
from tests.test_cli_quickstart import cdcsync, run_json

ITEMS = 250  # more than sync.steward.BULK_CHUNK: several transactions
ENDS = ("crm", "billing", "web")


def _rows(db: Path, table: str) -> dict[int, str]:
    with sqlite3.connect(db) as c:
        got = dict(c.execute(f'SELECT id, v FROM "{table}"').fetchall())
    c.close()
    return got


def _open(p: Path, entity: str | None = None) -> list[dict[str, object]]:
    args = ["--entity", entity] if entity else []
    res = cdcsync("conflicts", "list", str(p), "--json", "--limit", "0", *args)
    return list(json.loads(res.stdout))


def _parked(tmp: Path) -> Path:
    """Three files holding ``items`` and ``notes``, every row of which differs between crm
    and billing (web holds crm's rows), first synced under the manual policy: every
    differing row is parked."""
    for name in ENDS:
        db = tmp / f"{name}.db"
        own = "billing" if name == "billing" else "crm"
        sqlite_run(db, "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)",
                   "CREATE TABLE notes (id INTEGER PRIMARY KEY, v TEXT)",
                   f"WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE"
                   f" x < {ITEMS}) INSERT INTO items SELECT x, '{own} ' || x FROM g",
                   f"INSERT INTO notes VALUES (1, '{own} note'), (2, 'same')")
    lines = ["pipeline: bulk", f"state: {{url: sqlite:///{tmp}/state.db}}", "endpoints:",
             *(f"  {n}: {sqlite_endpoint(str(tmp / f'{n}.db'))}" for n in ENDS), "entities:"]
    for table in ("items", "notes"):
        lines += [f"  {table}:", "    key: [id]", "    conflict: {policy: manual}",
                  "    endpoints: {" + ", ".join(f"{n}: {table}" for n in ENDS) + "}"]
    p = tmp / "p.yaml"
    p.write_text("\n".join(lines) + "\n")
    cdcsync("setup", str(p))
    out = " ".join(cdcsync("run", str(p), expect=3).stdout.split())  # (as the caption wraps)
    assert "(one decision for all: conflicts resolve PIPELINE --all --pick ENDPOINT)" in out, out
    return p


def test_every_open_conflict_of_an_entity_is_decided_and_applied(tmp_path: Path) -> None:
    p = _parked(tmp_path)
    assert len(_open(p, "items")) == ITEMS and len(_open(p, "notes")) == 1
    # the listing says it shows only some (it showed the first 200 and no more)
    listed = cdcsync("conflicts", "list", str(p), "--entity", "items", "--json")
    assert len(json.loads(listed.stdout)) == 200
    assert f"the oldest 200 of {ITEMS} conflicts shown: --limit 0" in listed.stderr
    table = cdcsync("conflicts", "list", str(p), "--limit", "10").stdout
    assert f"the oldest 10 of {ITEMS + 1} conflicts shown" in table, table
    out = cdcsync("conflicts", "resolve", str(p), "--all", "--entity", "items", "--pick", "crm",
                  "--by", "ann", "--note", "crm is the master").stdout
    assert f"{ITEMS} conflict(s) resolved by ann, taking crm's side: {ITEMS} write(s)" in out
    crm = {i: f"crm {i}" for i in range(1, ITEMS + 1)}
    assert all(_rows(tmp_path / f"{n}.db", "items") == crm for n in ENDS)
    assert _open(p, "items") == [] and len(_open(p, "notes")) == 1  # the other entity waits
    with sqlite3.connect(tmp_path / "state.db") as c:
        decided = c.execute("SELECT count(*) FROM conflicts WHERE entity = 'items' AND"
                            " status = 'resolved' AND decided_by = 'ann' AND winner = 'crm'"
                            " AND reason = 'crm is the master'").fetchone()[0]
        audited = c.execute("SELECT count(*) FROM audit WHERE actor = 'ann' AND"
                            " action = 'conflict.resolve'").fetchone()[0]
    c.close()
    assert decided == audited == ITEMS

    # every other open conflict (no --entity), taking billing's side
    out = cdcsync("conflicts", "resolve", str(p), "--all", "--pick", "billing").stdout
    assert "1 conflict(s) resolved" in out, out
    assert all(_rows(tmp_path / f"{n}.db", "notes") == {1: "billing note", 2: "same"}
               for n in ENDS)
    assert _open(p) == []
    assert run_json(p)["totals"]["applied"] == 0  # nothing was left due
    cdcsync("verify", str(p))


def test_a_conflict_the_endpoint_is_no_side_of_stays_open(tmp_path: Path) -> None:
    """web held crm's rows: the conflicts' sides are crm's and billing's versions."""
    p = _parked(tmp_path)
    res = cdcsync("conflicts", "resolve", str(p), "--all", "--entity", "notes", "--pick", "web",
                  expect=3)
    assert "0 conflict(s) resolved" in res.stdout
    assert "not decided" in res.stdout and "no side 'web'" in res.stdout, res.stdout
    assert len(_open(p, "notes")) == 1


def test_a_bulk_decision_must_be_one_side_of_a_known_endpoint(tmp_path: Path) -> None:
    p = _parked(tmp_path)
    (one,) = _open(p, "notes")
    for args, says in [
            (["--all"], "--pick ENDPOINT"),
            (["--all", "--pick", "crm", "--field", "v=crm"], "--pick ENDPOINT"),
            (["--all", "--pick", "nobody"], "no endpoint of pipeline 'bulk'"),
            (["--all", "--pick", "crm", "--entity", "nothing"], "no entity of pipeline"),
            (["--all", "--pick", "crm", str(one["id"])], "name no conflict id"),
            (["--entity", "notes", "--pick", "crm"], "--entity goes with --all"),
            ([], "name the conflict to decide")]:
        res = cdcsync("conflicts", "resolve", str(p), *args, expect=2)
        assert says in res.stderr, (args, res.stderr)
    assert len(_open(p, "items")) == ITEMS and len(_open(p, "notes")) == 1  # nothing decided


def test_a_steward_decides_every_conflict_listed_in_the_browser(tmp_path: Path) -> None:
    import re

    from config.loader import load_pipeline
    from sync.review.app import create_app
    from tests.review.conftest import csrf_of

    p = _parked(tmp_path)
    client = create_app(load_pipeline(p)).test_client()
    html = client.get("/conflicts?entity=items").get_data(as_text=True)
    assert f"Decide all {ITEMS}<" in html and "Showing the oldest" not in html  # (500 a page)
    found = re.search(r'name="seen_at" value="([^"]+)"', html)
    assert found
    form = {"csrf_token": csrf_of(html), "entity": "items", "pick": "crm", "note": "crm wins",
            "seen_at": found.group(1)}
    # a form shown before the conflicts were raised decides none of them
    early = client.post("/conflicts/resolve-all", data={**form, "seen_at": "1.0"})
    assert early.status_code == 303 and len(_open(p, "items")) == ITEMS
    res = client.post("/conflicts/resolve-all", data=form, follow_redirects=True)
    page = res.get_data(as_text=True)
    assert res.status_code == 200 and f"Resolved {ITEMS} conflicts" in page, page
    assert _open(p, "items") == [] and len(_open(p, "notes")) == 1
    crm = {i: f"crm {i}" for i in range(1, ITEMS + 1)}
    assert all(_rows(tmp_path / f"{n}.db", "items") == crm for n in ENDS)
    # without the form's token nothing is decided
    refused = client.post("/conflicts/resolve-all", data={**form, "csrf_token": "x",
                                                          "entity": "notes"})
    assert refused.status_code == 400 and len(_open(p, "notes")) == 1


def test_the_browsers_decision_for_all_goes_by_the_runs_clocks(tmp_path: Path) -> None:
    """The runs that raise conflicts may keep a clock ahead of the review server's:
    "Decide all" decides the conflicts up to the newest one listed, by their own times,
    and leaves one raised after the page was shown."""
    import re
    import time

    from config.loader import load_pipeline
    from sync.review.app import create_app
    from tests.review.conftest import csrf_of

    p = _parked(tmp_path)
    ahead = time.time() + 3600  # the runs' machine is an hour ahead
    with sqlite3.connect(tmp_path / "state.db") as c:
        c.execute("UPDATE conflicts SET created_at = created_at - "
                  "(SELECT MIN(created_at) FROM conflicts) + ?", (ahead,))
    c.close()
    client = create_app(load_pipeline(p)).test_client()
    html = client.get("/conflicts?entity=items").get_data(as_text=True)
    found = re.search(r'name="seen_at" value="([^"]+)"', html)
    assert found and f"Decide all {ITEMS}<" in html
    later = _open(p, "items")[-1]["id"]  # raised (by that clock) after the page was shown
    with sqlite3.connect(tmp_path / "state.db") as c:
        c.execute("UPDATE conflicts SET created_at = ? WHERE id = ?", (ahead + 60, later))
    c.close()
    res = client.post("/conflicts/resolve-all", follow_redirects=True, data={
        "csrf_token": csrf_of(html), "entity": "items", "pick": "billing",
        "seen_at": found.group(1)})
    assert f"Resolved {ITEMS - 1} conflicts" in res.get_data(as_text=True)
    assert [c["id"] for c in _open(p, "items")] == [later]
