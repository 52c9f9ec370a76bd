"""Operator commands: ``cdcsync schedule``, ``cdcsync dlq list|show|requeue|drop`` and
``cdcsync entity rename|forget``.

Registered on the main group at the end of :mod:`sync.cli`. Like the rest of
the CLI, a thin layer over functions the tests call directly
(:mod:`sync.schedule`, :mod:`sync.dlq`); heavy modules are imported inside
the commands, and :mod:`sync.cli`'s helpers too, since it imports this module.

Exit codes (docs/operations.md):

* ``schedule`` — 0 when stopped by SIGTERM/SIGINT; with ``--once`` the run's
  own code (0 ok, 1 failed or skipped because another run held the lock,
  3 items wait for a steward); 2 for a usage or configuration error (no
  ``schedule:`` section, an unknown ``--tz``).
* ``dlq`` — 0 done; 1 the state store failed; 2 usage error, including an
  unknown dead-letter id.
* ``entity`` — 0 done; 1 refused (still in the pipeline file, something left to
  settle, the pipeline at work), nothing changed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click


def _json_errors(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    from sync.cli import _json_mode  # (sync.cli imports this module)

    return _json_mode(ctx, param, value)

_pipeline_arg = click.argument("pipeline", type=click.Path(dir_okay=False))
_json_opt = click.option("--json", "as_json", is_flag=True,
                         callback=lambda c, p, v: _json_errors(c, p, v),
                         help="Machine-readable output (a failure too, on stdout).")
_by_opt = click.option("--by", "actor", default=None, help="Who decides (default: $USER).")


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "operator"


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- schedule ----------------------------------------------------------------------------


@click.command()
@_pipeline_arg
@click.option("--once", is_flag=True,
              help="Wait for the next due tick, run it, and exit with the run's code.")
@click.option("--tz", default=None, metavar="ZONE",
              help="IANA time zone the cron expressions are read in (default: local time).")
def schedule(pipeline: str, once: bool, tz: str | None) -> None:
    """Run the pipeline on its cron schedule, one run at a time.

    The times come from the pipeline's schedule: section. Ticks missed while
    a run lasts are folded into one run. SIGTERM or SIGINT stops after the
    current run (exit 0); a second signal interrupts it.
    """
    import logging

    from sync.cli import EXIT_OK, EXIT_USAGE, _debug, _fail, _load, _user_errors

    cfg = _load(pipeline)
    if not cfg.schedule:
        _fail(f"{pipeline}: no schedule: section (a list of {{cron, command}} entries)",
              EXIT_USAGE)
    from sync.schedule import Scheduler
    from sync.signals import stop_on_signals

    zone = None
    if tz is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            _fail(f"--tz: unknown time zone {tz!r} (an IANA name like Europe/Paris)",
                  EXIT_USAGE)
    logging.getLogger("cdcsync.schedule").setLevel(
        min(logging.INFO, logging.getLogger("cdcsync").getEffectiveLevel()))
    scheduler = Scheduler(cfg, tz=zone)
    with _user_errors(_debug()), stop_on_signals(scheduler.stop, "the current run"):
        done = scheduler.serve(once=once)
    sys.exit(done[-1].exit_code if once and done else EXIT_OK)


# --- dlq ---------------------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """Applies that failed for good: list, show, requeue, drop.

    The keys of a dead letter keep their pending apply (outbox) but are not
    tried at its target until the letter is requeued (applied again) or
    dropped (given up: the target stays behind on those keys until they
    change again).
    """


def _open(pipeline: str) -> tuple[Any, Any]:
    from sync.cli import _load
    from sync.context import open_state

    cfg = _load(pipeline)
    return cfg, open_state(cfg)


def _jsonable(letter: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in letter.items() if k != "pipeline"}


@dlq.command("list")
@_pipeline_arg
@_json_opt
def dlq_list(pipeline: str, as_json: bool) -> None:
    """Dead letters waiting for a decision, oldest first."""
    from sync import dlq as queue
    from sync.cli import _console, _debug, _user_errors

    with _user_errors(_debug()):
        cfg, store = _open(pipeline)
        try:
            letters = queue.list_letters(store, cfg.pipeline)
        finally:
            store.close()
    if as_json:
        click.echo(json.dumps([_jsonable(x) for x in letters], indent=2))
        return
    if not letters:
        click.echo("no dead letters")
        return
    from rich.table import Table

    table = Table(title=f"dead letters of {cfg.pipeline}")
    for col in ("id", "entity", "target", "keys", "attempts", "since", "error"):
        table.add_column(col, justify="right" if col in ("id", "keys", "attempts") else "left")
    for x in letters:
        first = (str(x["error"]).splitlines() or [""])[0]
        table.add_row(str(x["id"]), x["entity"], x["target"], str(len(x["keys"])),
                      str(x["attempts"]), _when(x["created_at"]),
                      first if len(first) <= 80 else first[:77] + "...")
    _console().print(table)


@dlq.command("show")
@_pipeline_arg
@click.argument("letter_id", metavar="ID", type=int)
@_json_opt
def dlq_show(pipeline: str, letter_id: int, as_json: bool) -> None:
    """One dead letter: its keys, the error, and which keys still wait to be applied."""
    from sync import dlq as queue
    from sync.cli import EXIT_USAGE, _debug, _fail, _user_errors

    with _user_errors(_debug()):
        cfg, store = _open(pipeline)
        try:
            letter = queue.get(store, cfg.pipeline, letter_id)
        finally:
            store.close()
    if letter is None:
        _fail(f"no dead letter {letter_id} in pipeline {cfg.pipeline}", EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(_jsonable(letter), indent=2))
        return
    pending = set(letter["pending"])
    click.echo(f"dead letter {letter['id']}: entity {letter['entity']} -> {letter['target']}, "
               f"{letter['attempts']} attempt(s), since {_when(letter['created_at'])}")
    click.echo(f"error: {letter['error']}")
    click.echo(f"keys ({len(letter['keys'])}; * = pending apply kept in the outbox):")
    for k in letter["keys"]:
        click.echo(f"  {'*' if k in pending else ' '} {k}")


@dlq.command("requeue")
@_pipeline_arg
@click.argument("letter_ids", metavar="ID...", nargs=-1, type=int)
@click.option("--all", "every", is_flag=True,
              help="Every dead letter (of --target) instead of the IDs named.")
@click.option("--target", default=None, help="With --all: only the letters of this endpoint.")
@_by_opt
def dlq_requeue(pipeline: str, letter_ids: tuple[int, ...], every: bool, target: str | None,
                actor: str | None) -> None:
    """Apply a dead letter's keys again (after fixing the cause at the target)."""
    from sync import dlq as queue
    from sync.cli import EXIT_USAGE, _debug, _fail, _one_of, _user_errors

    if every == bool(letter_ids) or (target is not None and not every):
        _fail("name the dead letters to requeue (ID...), or requeue every one with --all"
              " [--target ENDPOINT]", EXIT_USAGE)
    who = _actor(actor)
    with _user_errors(_debug()):
        cfg, store = _open(pipeline)
        try:
            _one_of("--target", target, cfg.endpoints, "endpoint", cfg.pipeline)
            if every:
                letter_ids = tuple(int(x["id"]) for x in queue.list_letters(store, cfg.pipeline)
                                   if target is None or x["target"] == target)
                if not letter_ids:
                    click.echo("no dead letters" + (f" of {target}" if target else ""))
            for lid in letter_ids:
                try:
                    letter = queue.requeue(store, cfg.pipeline, lid, who)
                except queue.DeadLetterNotFound as exc:
                    _fail(str(exc), EXIT_USAGE)
                click.echo(f"dead letter {lid} requeued by {who}: {len(letter['pending'])} "
                           f"key(s) of {letter['entity']} will be applied to "
                           f"{letter['target']} again by the daemon, or by the next "
                           f"`cdcsync run`")
        finally:
            store.close()


@dlq.command("drop")
@_pipeline_arg
@click.argument("letter_ids", metavar="ID...", nargs=-1, required=True, type=int)
@_by_opt
@click.option("--reason", required=True, help="Why: kept in the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def dlq_drop(pipeline: str, letter_ids: tuple[int, ...], actor: str | None, reason: str,
             yes: bool) -> None:
    """Give up on a dead letter: its keys are not applied to its target.

    The target stays behind on those keys (`cdcsync verify` shows the drift)
    until the records change again at a source.
    """
    from sync import dlq as queue
    from sync.cli import EXIT_USAGE, _debug, _fail, _user_errors

    who = _actor(actor)
    if not yes and sys.stdin.isatty():
        click.confirm(f"Give up on dead letter(s) {', '.join(map(str, letter_ids))}? Their target "
                      "stays behind until the records change again", abort=True)
    with _user_errors(_debug()):
        cfg, store = _open(pipeline)
        try:
            for lid in letter_ids:
                try:
                    letter = queue.drop(store, cfg.pipeline, lid, who, reason)
                except queue.DeadLetterNotFound as exc:
                    _fail(str(exc), EXIT_USAGE)
                click.echo(f"dead letter {lid} dropped by {who}: {len(letter['dropped'])} "
                           f"pending apply(s) of {letter['entity']} to {letter['target']} "
                           f"discarded; {letter['target']} stays behind on those keys until "
                           f"they change again")
        finally:
            store.close()


# --- entity ------------------------------------------------------------------------------


@click.group("entity")
def entity_group() -> None:
    """What the state store knows of an entity renamed or gone: rename, forget.

    A run stops when an entity new to the state store looks like one it knows
    under another name (sync/renamed.py): these are the two ways on.
    """


def _entity_change(pipeline: str, change: Callable[[Any, Any], str]) -> None:
    from sync.cli import _debug, _fail, _user_errors
    from sync.setup import busy_with

    with _user_errors(_debug()):
        cfg, store = _open(pipeline)
        try:
            who = busy_with(store, cfg.pipeline)
            if who is not None:
                _fail(f"pipeline {cfg.pipeline} is being worked on by {who}: stop it first"
                      " (nothing was changed)")
            click.echo(change(cfg, store))
        finally:
            store.close()


@entity_group.command("rename")
@_pipeline_arg
@click.argument("old")
@click.argument("new")
def entity_rename(pipeline: str, old: str, new: str) -> None:
    """Carry what is known of entity OLD (states, checkpoints, history) over to NEW, its
    name in the pipeline file now."""
    from sync.renamed import rename_entity

    _entity_change(pipeline, lambda cfg, store: rename_entity(
        store, cfg.pipeline, old, new, cfg.entities))


@entity_group.command("forget")
@_pipeline_arg
@click.argument("entity")
def entity_forget(pipeline: str, entity: str) -> None:
    """Drop the states and checkpoints of ENTITY, gone from the pipeline file for good
    (its history of runs, conflicts and decisions stays)."""
    from sync.renamed import forget_entity

    _entity_change(pipeline, lambda cfg, store: forget_entity(
        store, cfg.pipeline, entity, cfg.entities))
