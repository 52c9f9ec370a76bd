"""Scheduled batch syncs: ``cdcsync schedule PIPELINE`` runs the pipeline's cron entries.

For users without cron, a Kubernetes CronJob or an orchestrator: one
long-lived process that runs :func:`sync.engine.run_pipeline` at the times of
the ``schedule:`` section (five-field cron expressions, minute hour
day-of-month month day-of-week).

* **One run at a time.** Every run takes the pipeline's run lock
  (:mod:`sync.runlock`), as ``cdcsync run`` does, so two schedulers (on two
  machines, for availability) and a manual run never overlap: the loser of a
  tick logs that it was skipped.
* **Coalescing.** Ticks that pass while a run lasts are not queued: when the
  run ends, one run starts for all of them (the changes they would have synced
  are all read by one catch-up), then the schedule resumes.
* **Stopping.** SIGTERM or SIGINT lets the current run finish, then the loop
  exits 0; a second signal interrupts the run (it resumes from its last
  durable batch next time).
* **Time zone.** Expressions are evaluated in the machine's local zone, like
  cron, or in ``--tz ZONE`` (an IANA name). Daylight-saving transitions follow
  Debian cron's rules.

Cron parsing and next-time computation come from ``cronsim``, not from code
of ours. Chosen over ``croniter`` because it is small, pure Python, typed and
without dependencies (croniter needs python-dateutil), because it matches
Debian cron's semantics by design, including its day-of-month/day-of-week OR
rule and its DST handling, and rejects impossible dates ("31 2") up front;
croniter was announced as unmaintained in 2024 before being taken over.

The clock is injectable (:class:`Clock`), so tests drive the loop through
days of ticks without waiting.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sync.runlock import RunLocked

__all__ = ["COMMANDS", "Clock", "RunLocked", "ScheduledRun", "Scheduler", "SystemClock",
           "check_schedule", "local_zone", "summary_line"]

log = logging.getLogger("cdcsync.schedule")

COMMANDS = ("run",)  # what a schedule entry may run
MAX_SLEEP = 30.0  # re-read the clock at least this often (it may be set while we sleep)


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds``; may return early (the loop re-reads :meth:`now`)."""


class SystemClock:
    """Wall-clock time; :meth:`wake` ends a sleep at once (used to stop)."""

    def __init__(self) -> None:
        self._wake = threading.Event()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        self._wake.wait(max(0.0, seconds))

    def wake(self) -> None:
        self._wake.set()


def local_zone() -> tzinfo:
    """The machine's zone with its DST rules: $TZ, else /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("TZ=%s is not a known time zone; using the system's", name)
    localtime = Path("/etc/localtime")
    if localtime.exists():
        with localtime.open("rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    return UTC


def check_schedule(cfg: Any) -> list[str]:
    """Problems of the ``schedule:`` section as ``FILE: FIELD: MESSAGE`` lines."""
    from cronsim import CronSim, CronSimError

    problems: list[str] = []
    start = datetime(2000, 1, 1, tzinfo=UTC)
    for i, entry in enumerate(cfg.schedule):
        where = f"{cfg.path}: schedule[{i}]"
        try:
            next(CronSim(entry.cron, start))
        except CronSimError as exc:
            problems.append(f"{where}.cron: invalid cron expression {entry.cron!r}: {exc}")
        except StopIteration:
            problems.append(f"{where}.cron: {entry.cron!r} never matches a date")
        if entry.command not in COMMANDS:
            problems.append(f"{where}.command: unknown command {entry.command!r}; "
                            f"a schedule can run: {', '.join(COMMANDS)}")
    return problems


def summary_line(summary: Any) -> str:
    """One log line for a run's :class:`sync.summary.RunSummary`."""
    t = summary.total
    return (f"run of {summary.pipeline} {summary.status} in {summary.seconds:.1f}s: "
            f"read {t('read')}, applied {t('applied')}, skipped {t('skipped')}, "
            f"echoes {t('echoes')}, conflicts resolved {t('resolved')} / parked "
            f"{t('parked')}, open conflicts {summary.open_conflicts}")


@dataclass
class ScheduledRun:
    """What one tick did."""

    tick: datetime  # the (latest) scheduled time this run stands for
    coalesced: int  # further ticks that had passed and were folded into this run
    summary: Any = None  # RunSummary when the run finished
    error: str | None = None  # the run failed with this
    locked_by: str | None = None  # skipped: another run held the lock

    @property
    def exit_code(self) -> int:
        """As ``cdcsync run`` would exit: 0 ok, 1 failed or skipped, 3 steward needed."""
        if self.error is not None or self.locked_by is not None or self.summary is None:
            return 1
        return 3 if self.summary.status == "attention" else 0


Runner = Callable[[Any], Any]


class Scheduler:
    """Runs ``runner(cfg)`` (default :func:`sync.engine.run_pipeline`) on ``cfg.schedule``.

    Parameters
    ----------
    cfg: a loaded ``config.PipelineConfig`` with a non-empty ``schedule``.
    runner: what a tick runs; tests wrap the real engine to watch the clock.
    clock: :class:`SystemClock` by default; tests inject a fake one.
    tz: the zone the expressions are read in (default :func:`local_zone`).
    max_sleep: the longest wait before the clock is read again (it may be set meanwhile).
    """

    def __init__(self, cfg: Any, *, runner: Runner | None = None, clock: Clock | None = None,
                 tz: tzinfo | None = None, max_sleep: float = MAX_SLEEP) -> None:
        if not cfg.schedule:
            raise ValueError(f"pipeline {cfg.pipeline} has no schedule: section")
        problems = check_schedule(cfg)
        if problems:
            raise ValueError("; ".join(problems))
        self.cfg = cfg
        self.crons = list(dict.fromkeys(e.cron for e in cfg.schedule))
        self.runner = runner
        self.clock: Clock = clock or SystemClock()
        self.tz = tz or local_zone()
        self.max_sleep = max_sleep
        self.stopping = False

    # --- time ----------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), self.tz)

    def next_tick(self, after: datetime) -> datetime:
        """The first time strictly after ``after`` that any entry is due."""
        from cronsim import CronSim

        return min(next(CronSim(c, after)) for c in self.crons)

    def due(self, last: datetime, now: datetime) -> tuple[datetime, int] | None:
        """The latest tick in (last, now] and how many earlier ones it folds in.

        Compared as instants (timestamps): aware datetimes of one zone compare
        by wall time, which is ambiguous in the hour a DST change repeats.
        """
        tick = self.next_tick(last)
        if tick.timestamp() > now.timestamp():
            return None
        folded = 0
        while (following := self.next_tick(tick)).timestamp() <= now.timestamp():
            tick, folded = following, folded + 1
        return tick, folded

    # --- running -------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current run (if any), then leave :meth:`serve`."""
        self.stopping = True
        wake = getattr(self.clock, "wake", None)
        if wake is not None:
            wake()

    def run_tick(self, tick: datetime, coalesced: int) -> ScheduledRun:
        """Run the pipeline once for ``tick``; never raises for a failed run."""
        out = ScheduledRun(tick=tick, coalesced=coalesced)
        if coalesced:
            log.info("%s: %d missed tick(s) folded into this run", self.cfg.pipeline, coalesced)
        try:
            out.summary = self._runner()(self.cfg)
        except RunLocked as exc:
            out.locked_by = exc.holder or "unknown"
            log.info("tick %s skipped: %s", tick.isoformat(), exc)
        except Exception as exc:  # RunLockLost included: the run overlapped another
            out.error = f"{type(exc).__name__}: {exc}"
            log.error("run of %s failed: %s (the next tick resumes from the last durable "
                      "batch)", self.cfg.pipeline, out.error)
        else:
            if out.summary is not None:
                log.info("%s", summary_line(out.summary))
        return out

    def serve(self, *, once: bool = False) -> list[ScheduledRun]:
        """Run at every due tick until :meth:`stop` (or after one run with ``once``).

        Ticks before the call are not caught up: the schedule starts now.
        Returns what each tick did (the CLI uses the last one's exit code).
        """
        done: list[ScheduledRun] = []
        last = self.now()
        log.info("schedule of %s: next run at %s", self.cfg.pipeline,
                 self.next_tick(last).isoformat())
        while not self.stopping:
            now = self.now()
            found = self.due(last, now)
            if found is None:
                wait = self.next_tick(last).timestamp() - now.timestamp()
                self.clock.sleep(min(max(wait, 0.0), self.max_sleep))
                continue
            tick, folded = found
            done.append(self.run_tick(tick, folded))
            last = tick
            if once:
                break
            if not self.stopping:
                following = self.next_tick(last)
                log.info("next run at %s", following.isoformat()
                         if following.timestamp() > self.clock.now()
                         else "once (ticks passed during the run)")
        return done

    def _runner(self) -> Runner:
        if self.runner is None:
            from sync.engine import run_pipeline

            self.runner = run_pipeline
        return self.runner
