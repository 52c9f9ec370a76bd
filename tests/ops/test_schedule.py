"""``cdcsync schedule``: cron ticks on an injected clock, coalescing, the lock, stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from config import load_pipeline
from sync.checks import check_pipeline
from sync.engine import run_pipeline
from sync.runlock import RunLock
from sync.schedule import ScheduledRun, Scheduler, check_schedule
from sync.signals import stop_on_signals
from sync.state import open_store
from tests.ops.conftest import PIPELINE, cdcsync, sql


class FakeClock:
    """Time that moves only when the scheduler sleeps or a run says it took a while."""

    def __init__(self, start: datetime) -> None:
        self.t = start.timestamp()
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2030, 1, 1, hh, mm, ss, tzinfo=UTC)


def with_schedule(cfg: Any, *crons: str, command: str = "run") -> Any:
    from config.models import ScheduleEntry

    entries = [ScheduleEntry(cron=c, command=command) for c in crons]
    return cfg.model_copy(update={"schedule": entries})


def test_runs_at_each_minute_and_folds_ticks_missed_during_a_long_run(
        cfg: Any, pipeline: Path) -> None:
    clock = FakeClock(at(0, 0, 30))
    started: list[datetime] = []
    took = [150.0, 10.0, 0.0, 0.0]  # the first run outlasts two ticks
    a_db, b_db = pipeline.parent / "a.db", pipeline.parent / "b.db"
    scheduler: Scheduler

    def engine(c: Any) -> Any:
        started.append(datetime.fromtimestamp(clock.now(), UTC))
        summary = run_pipeline(c)
        if len(started) == 1:  # an edit made while the first run lasts
            sql(a_db, "INSERT INTO items VALUES (2, 'two')")
        clock.t += took[len(started) - 1]
        if len(started) == len(took):
            scheduler.stop()
        return summary

    scheduler = Scheduler(cfg, runner=engine, clock=clock, tz=UTC)
    done = scheduler.serve()

    assert started == [at(0, 1), at(0, 3, 30), at(0, 4), at(0, 5)]
    assert [r.tick for r in done] == [at(0, 1), at(0, 3), at(0, 4), at(0, 5)]
    assert [r.coalesced for r in done] == [0, 1, 0, 0]  # 00:02 and 00:03 -> one run
    assert [r.exit_code for r in done] == [0, 0, 0, 0]
    assert done[1].summary.total("applied") == 1  # the catch-up run synced the edit
    assert sql(b_db, "SELECT id, name FROM items ORDER BY id") == [(1, "one"), (2, "two")]
    assert max(clock.slept) <= 30.0  # the loop re-reads the clock while it waits
    store = open_store(cfg.state.url)
    try:
        assert len(store.runs("ops", limit=100)) == 4
    finally:
        store.close()


def test_ticks_of_several_entries_merge(cfg: Any) -> None:
    s = Scheduler(with_schedule(cfg, "0 * * * *", "30 * * * *", "0 * * * *"),
                  runner=lambda c: None, clock=FakeClock(at(0, 0)), tz=UTC)
    assert s.next_tick(at(0, 0)) == at(0, 30)
    assert s.next_tick(at(0, 30)) == at(1, 0)
    assert s.due(at(0, 0), at(0, 29, 59)) is None
    assert s.due(at(0, 0), at(2, 45)) == (at(2, 30), 4)  # 00:30 ... 02:30: one run


@pytest.mark.parametrize(("start", "expected"), [
    # 02:30 does not exist on 2030-03-31 in Paris: Debian cron runs the job at 03:00.
    ((3, 29), [(30, 2, 30), (31, 3, 0), (1, 2, 30)]),
    # 02:00-03:00 happens twice on 2030-10-27: the job still runs once.
    ((10, 26), [(27, 2, 30), (28, 2, 30), (29, 2, 30)]),
])
def test_daily_entry_across_a_dst_change_runs_once_a_day(
        cfg: Any, start: tuple[int, int], expected: list[tuple[int, int, int]]) -> None:
    paris = ZoneInfo("Europe/Paris")
    clock = FakeClock(datetime(2030, *start, 12, 0, tzinfo=paris))
    ran: list[datetime] = []
    s: Scheduler

    def engine(_c: Any) -> None:
        ran.append(datetime.fromtimestamp(clock.now(), paris))
        if len(ran) == 3:
            s.stop()

    s = Scheduler(with_schedule(cfg, "30 2 * * *"), runner=engine, clock=clock, tz=paris,
                  max_sleep=86400)
    s.serve()
    assert [(d.day, d.hour, d.minute) for d in ran] == expected


def test_a_tick_while_another_run_holds_the_lock_is_skipped(cfg: Any) -> None:
    store = open_store(cfg.state.url)
    try:
        with RunLock(store, "ops") as lock:
            s = Scheduler(cfg, clock=FakeClock(at(0, 0, 30)), tz=UTC)  # the real engine
            (skipped,) = s.serve(once=True)
        assert skipped.locked_by == lock.holder
        assert skipped.exit_code == 1
        (ran,) = Scheduler(cfg, clock=FakeClock(at(0, 0, 30)), tz=UTC).serve(once=True)
        assert ran.exit_code == 0 and ran.summary.status == "ok"
        assert len(store.runs("ops")) == 1
    finally:
        store.close()


def test_a_failed_run_is_logged_and_the_schedule_goes_on(
        cfg: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    s: Scheduler

    def engine(_c: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            s.stop()
        raise RuntimeError("target down")

    s = Scheduler(cfg, runner=engine, clock=FakeClock(at(0, 0, 30)), tz=UTC)
    with caplog.at_level("ERROR", logger="cdcsync.schedule"):
        done = s.serve()
    assert [r.error for r in done] == ["RuntimeError: target down"] * 2
    assert [r.exit_code for r in done] == [1, 1]
    assert "run of ops failed: RuntimeError: target down" in caplog.text


def test_sigterm_lets_the_current_run_finish_then_stops(cfg: Any, pipeline: Path) -> None:
    clock = FakeClock(at(0, 0, 30))
    s: Scheduler

    def engine(c: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the run is under way
        return run_pipeline(c)

    s = Scheduler(cfg, runner=engine, clock=clock, tz=UTC)
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(s.stop, "the current run"):
        done = s.serve()
    assert signal.getsignal(signal.SIGTERM) is before
    assert len(done) == 1 and done[0].exit_code == 0  # finished, and no further tick
    assert sql(pipeline.parent / "b.db", "SELECT id FROM items") == [(1,)]


def test_summary_exit_codes() -> None:
    class Summary:
        status = "attention"

    assert ScheduledRun(at(0, 0), 0, summary=Summary()).exit_code == 3
    assert ScheduledRun(at(0, 0), 0, locked_by="h").exit_code == 1


# --- configuration and the CLI ---------------------------------------------------------


@pytest.mark.parametrize(("cron", "command", "message"), [
    ("61 * * * *", "run",
     "schedule[0].cron: invalid cron expression '61 * * * *': Bad minute"),
    ("0 0 31 2 *", "run",
     "schedule[0].cron: invalid cron expression '0 0 31 2 *': Bad day-of-month"),
    ("0 ? * * *", "run", "schedule[0].cron: invalid cron expression '0 ? * * *': Bad hour"),
    ("*/5 * * * *", "verify",
     "schedule[0].command: unknown command 'verify'; a schedule can run: run"),
])
def test_config_check_validates_cron_expressions(tmp_path: Path, cron: str, command: str,
                                                  message: str) -> None:
    path = _with_entry(tmp_path, cron, command)
    assert check_schedule(load_pipeline(path)) == [f"{path}: {message}"]
    assert check_pipeline(load_pipeline(path)) == [f"{path}: {message}"]  # config check's


def _with_entry(tmp_path: Path, cron: str, command: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.replace('  - cron: "* * * * *"\n',
                                     f'  - cron: "{cron}"\n    command: {command}\n'))
    return path


def test_config_check_exits_2_on_a_bad_cron_expression(tmp_path: Path) -> None:
    path = _with_entry(tmp_path, "0 0 31 2 *", "run")
    res = cdcsync("config", "check", str(path), expect=2)
    assert res.stderr.strip() == (f"{path}: schedule[0].cron: invalid cron expression "
                                  "'0 0 31 2 *': Bad day-of-month")


def test_schedule_help() -> None:
    res = cdcsync("schedule", "--help")
    assert "Usage: cdcsync schedule [OPTIONS] PIPELINE" in res.stdout
    assert "--once" in res.stdout and "--tz" in res.stdout


def test_schedule_without_a_schedule_section_is_a_usage_error(pipeline: Path) -> None:
    pipeline.write_text(PIPELINE.split("schedule:")[0])
    res = cdcsync("schedule", str(pipeline), expect=2)
    assert "no schedule: section" in res.stderr


def test_schedule_process_stops_on_sigterm_with_exit_0(pipeline: Path) -> None:
    exe = Path(sys.executable).with_name("cdcsync")
    with subprocess.Popen([str(exe), "schedule", str(pipeline), "--tz", "UTC"],
                          stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # logged once the loop is running
        assert "schedule of ops: next run at " in line, line
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, rest
    assert "SIGTERM: stopping after the current run" in rest


