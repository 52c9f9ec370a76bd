"""Two pipeline names that derive one slot, publication and origin.

Slot and origin names are the pipeline's and the endpoint's names reduced to
lower-case letters, digits and ``_``: ``Xpo-Dash`` and ``xpo_dash`` both became slot
``cdcsync_xpo_dash_a`` and origin ``cdcsync_xpo_dash``, and so did pipeline ``a_b``
with endpoint ``c`` and pipeline ``a`` with endpoint ``b_c``. The second setup
silently shared the first's slot: the one run first confirmed it past changes the
other had not read ("changes in between are gone"), and the other endpoint of the
first pipeline never got the row. Setup now refuses, naming both pipelines; the
derived names of existing pipelines stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.connectors.postgres.helpers import pipeline_of
from tests.pipelines import pg_endpoint, sqlite_endpoint, sqlite_run, write_pipeline
from tests.test_cli_quickstart import cdcsync, run_json
from tests.test_wide_dates import pg

T = "CREATE TABLE t (id int PRIMARY KEY, v text)"


def _slots(dsn: str) -> list[tuple[str]]:
    return [(str(r[0]),) for r in pg(dsn, "SELECT slot_name FROM pg_replication_slots"
                                          " WHERE database = current_database() ORDER BY 1")]


def _two_databases(tmp: Path, factory: Callable[[], str]) -> tuple[str, str, str]:
    """Two databases holding ``t``, a SQLite file ``two/s.db`` too; the base name."""
    a, b = factory(), factory()
    for dsn in (a, b):
        pg(dsn, T)
    (tmp / "one").mkdir()
    (tmp / "two").mkdir()
    sqlite_run(tmp / "two" / "s.db", T)
    return a, b, pipeline_of(a)  # (lower case: the fixture drops the origins named after it)


def _pipelines(tmp: Path, first: tuple[str, str, str], second: tuple[str, str], a: str,
               b: str) -> tuple[Path, Path]:
    """``first`` (name, endpoint at a, endpoint at b) both ways; ``second`` (name,
    endpoint at a) one way from a to the SQLite file."""
    name, ea, eb = first
    p1 = write_pipeline(tmp / "one", name, {ea: pg_endpoint(a), eb: pg_endpoint(b)}, "t",
                        {ea: "t", eb: "t"})
    name, ea = second
    p2 = write_pipeline(tmp / "two", name, {ea: pg_endpoint(a), "s": sqlite_endpoint()}, "t",
                        {ea: "t", "s": "t"}, options=["direction: one-way", f"source: {ea}"])
    return p1, p2


def test_a_second_pipeline_whose_name_sanitises_alike_is_refused(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    a, b, c = pg_dsn_factory(), pg_dsn_factory(), pg_dsn_factory()
    for dsn in (a, b, c):
        pg(dsn, T)
    base = pipeline_of(a)  # (lower case: the fixture drops the origins named after it)
    first, second = f"Xpo-{base}", f"xpo_{base}"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    p1 = write_pipeline(tmp_path / "one", first, {"a": pg_endpoint(a), "b": pg_endpoint(b)},
                        "t", {"a": "t", "b": "t"})
    p2 = write_pipeline(tmp_path / "two", second, {"a": pg_endpoint(a), "c": pg_endpoint(c)},
                        "t", {"a": "t", "c": "t"}, options=["direction: one-way", "source: a"])
    try:
        cdcsync("setup", str(p1))
        run_json(p1)
        slots = _slots(a)
        assert len(slots) == 1, slots
        res = cdcsync("setup", str(p2), expect=None)
        assert res.returncode != 0, (res.stdout, res.stderr)
        text = res.stdout + res.stderr
        assert repr(first) in text and repr(second) in text, text
        assert f"slot {slots[0][0]}" in text and f"origin cdcsync_xpo_{base}" in text, text
        assert "Rename this pipeline" in text, text
        # nothing was made or changed for the second pipeline
        assert _slots(a) == slots
        assert pg(c, "SELECT to_regnamespace('cdcsync')") == [(None,)]
        # a run of the refused pipeline does not read (and confirm) the other's slot
        pg(a, "INSERT INTO t VALUES (1, 'x')")
        res = cdcsync("run", str(p2), expect=None)
        assert res.returncode != 0 and "cannot read its slot" in res.stderr, (
            res.stdout, res.stderr)
        assert _slots(a) == slots
        # and the first pipeline goes on: its other endpoint gets the row inserted at a
        run_json(p1)
        assert pg(b, "SELECT id, v FROM t") == [(1, "x")]
        # its next setup is quiet, and it still holds its names
        res = cdcsync("setup", str(p1))
        assert "error" not in res.stdout + res.stderr
    finally:
        cdcsync("teardown", str(p1), "--force", expect=None)
    assert _slots(a) == [] and _slots(b) == []
    assert pg(a, "SELECT to_regnamespace('cdcsync')") == [(None,)]


def test_pipeline_and_endpoint_names_that_join_alike_are_refused(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """Pipeline ``P_b`` with endpoint ``c`` and pipeline ``P`` with endpoint ``b_c``:
    one slot and publication, two origins. The teardown of the refused pipeline keeps
    what the other holds."""
    a, b, base = _two_databases(tmp_path, pg_dsn_factory)
    p1, p2 = _pipelines(tmp_path, (f"{base}_b", "c", "d"), (base, "b_c"), a, b)
    try:
        cdcsync("setup", str(p1))
        slots = _slots(a)
        res = cdcsync("setup", str(p2), expect=None)
        assert res.returncode != 0, (res.stdout, res.stderr)
        text = res.stdout + res.stderr
        assert f"slot cdcsync_{base}_b_c" in text and f"'{base}_b'" in text, text
        assert "slot:, publication:" in text, text  # (the origins differ)
        # a teardown under the refused name leaves the other pipeline's slot and record
        out = cdcsync("teardown", str(p2), "--force").stdout
        assert "kept slot" in out, out
        assert _slots(a) == slots
        assert pg(a, "SELECT pipeline FROM cdcsync.pipeline_names") == [(f"{base}_b",)]
        pg(a, "INSERT INTO t VALUES (1, 'x')")
        run_json(p1)
        assert pg(b, "SELECT id, v FROM t") == [(1, "x")]
    finally:
        cdcsync("teardown", str(p2), "--force", expect=None)
        cdcsync("teardown", str(p1), "--force", expect=None)
    assert _slots(a) == [] and _slots(b) == []
    assert pg(a, "SELECT to_regnamespace('cdcsync')") == [(None,)]


def test_a_pipeline_set_up_before_the_record_is_recorded_at_its_next_setup(
        tmp_path: Path, pg_dsn_factory: Callable[[], str]) -> None:
    """A deployment set up before the record existed keeps its names and is recorded
    without complaint; a second pipeline deriving its names is refused from then on,
    and a teardown forgets the record."""
    a, b, base = _two_databases(tmp_path, pg_dsn_factory)
    p1, p2 = _pipelines(tmp_path, (f"Old-{base}", "a", "b"), (f"old_{base}", "a"), a, b)
    try:
        cdcsync("setup", str(p1))
        slots = _slots(a)
        for dsn in (a, b):  # as set up before the record existed
            pg(dsn, "DROP TABLE IF EXISTS cdcsync.pipeline_names")
        out = cdcsync("setup", str(p1)).stdout
        assert _slots(a) == slots, out
        assert pg(a, "SELECT pipeline, endpoint, slot FROM cdcsync.pipeline_names") == [
            (f"Old-{base}", "a", slots[0][0])]
        cdcsync("setup", str(p2), expect=1)
        cdcsync("teardown", str(p1), "--force")
        assert _slots(a) == []
        assert pg(a, "SELECT to_regnamespace('cdcsync')") == [(None,)]
        assert pg(b, "SELECT to_regnamespace('cdcsync')") == [(None,)]
    finally:
        cdcsync("teardown", str(p1), "--force", expect=None)
