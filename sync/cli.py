"""``cdcsync``: the command line, a thin layer over functions the tests call directly.

Exit codes (also in the README):

* 0 — success;
* 1 — failure (a server unreachable after retries, a permanent connector error),
  or drift found by ``verify``;
* 2 — usage or configuration error;
* 3 — success, but items wait for a data steward (open conflicts).

Heavy modules (SQLAlchemy, drivers, rich) are imported inside the commands, so
that ``cdcsync --help`` answers at once.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_ATTENTION = 0, 1, 2, 3


#: set by ``--json``: a command that fails then also prints what failed to stdout, as
#: JSON, where its caller reads (it printed nothing there, only stderr had the error)
_JSON_OUTPUT: list[bool] = [False]


def _json_mode(_ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    _JSON_OUTPUT[0] = bool(value)
    return value


def _exit(message: str, code: int, *, prefix: str = "error: ") -> NoReturn:
    """Say ``message`` (masked) on stderr, and with --json as ``{"status": "failed",
    "exit": code, "error": message}`` on stdout; exit with ``code``."""
    from sync.logs import mask_secrets

    # Messages carry drivers' texts, which may echo a DSN: masked as the logs are
    # (URL passwords, password=..., the pipeline's secrets registered by _load).
    text = mask_secrets(message)
    if prefix:
        click.secho(f"{prefix}{text}", fg="red", err=True)
    else:
        click.echo(text, err=True)
    if _JSON_OUTPUT[0]:
        click.echo(json.dumps({"status": "failed", "exit": code, "error": text}, indent=2))
    sys.exit(code)


def _fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    _exit(message, code)


def _steward(actor: str | None) -> str:
    """Who decides: ``--by``, else the login name."""
    return actor or os.environ.get("USER") or "steward"


def _one_of(option: str, value: str | None, names: Iterable[str], what: str,
            pipeline: str) -> None:
    """A usage error unless ``value`` (of ``option``; None: not given) is one of ``names``
    (the pipeline's entities or endpoints: ``what``)."""
    known = list(names)
    if value is not None and value not in known:
        _fail(f"{option} {value!r} is no {what} of pipeline {pipeline!r} (its {what}s:"
              f" {', '.join(known)})", EXIT_USAGE)


def _load(path: str) -> Any:
    from config import ConfigError, load_pipeline
    from sync.checks import check_pipeline
    from sync.logs import register_secrets

    try:
        cfg = load_pipeline(path)
    except ConfigError as exc:
        _exit(str(exc), EXIT_USAGE, prefix="")  # (masked by the loader)
    register_secrets(cfg.secrets)  # masked in every log line and error of this process
    problems = check_pipeline(cfg)
    if problems:
        _exit("\n".join(problems), EXIT_USAGE, prefix="")
    return cfg


@contextmanager
def _user_errors(debug: bool) -> Iterator[None]:
    """Report known failures as one clear line; a traceback only with --debug."""
    from connectors.base import ConnectorError
    from sync.runlock import RunLocked, RunLockLost
    from sync.signals import Interrupted
    from sync.steward import StewardError

    try:
        yield
    except (StewardError, click.UsageError) as exc:
        _fail(str(exc), EXIT_USAGE)
    except (RunLocked, RunLockLost) as exc:
        _fail(str(exc))
    except ConnectorError as exc:
        if debug:
            raise
        _fail(str(exc))
    except Interrupted as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted; the next run resumes from the last committed batch")
    except Exception as exc:
        # A bad suite or an expectation that cannot run is the user's to fix
        # (exit 2); matched by name so that GX is never imported to catch it.
        if type(exc).__name__ in ("SuiteError", "QualityError"):
            _fail(str(exc), EXIT_USAGE)
        if debug:
            raise
        _fail(f"{type(exc).__name__}: {exc} (run with --debug for the traceback)")


def _console() -> Any:
    from rich.console import Console

    # Piped output keeps whole values (e-mails, keys) rather than wrapping at 80 columns.
    # No markup: the tables hold users' data, where "[b]" or "[/k]" is text (as markup
    # it vanished, or stopped the listing with a MarkupError); styles are Text's.
    return Console(markup=False) if sys.stdout.isatty() else Console(width=200, markup=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("--log-json", is_flag=True, help="Logs as JSON lines.")
@click.version_option(package_name="cdcsync")
@click.pass_context
def main(ctx: click.Context, debug: bool, log_json: bool) -> None:
    """cdcsync keeps the same records in several databases in step, both ways."""
    ctx.obj = {"debug": debug}
    from sync.gctune import tune
    from sync.logs import configure

    tune()

    configure(json=log_json, level=logging.DEBUG if debug else logging.WARNING)


def _debug() -> bool:
    return bool(click.get_current_context().obj.get("debug"))


pipeline_arg = click.argument("pipeline", type=click.Path(dir_okay=False))
json_opt = click.option("--json", "as_json", is_flag=True, callback=_json_mode,
                        help="Machine-readable output (a failure too, on stdout).")


# --- run -------------------------------------------------------------------------------


@main.command()
@pipeline_arg
@json_opt
@click.option("--entity", "entities", multiple=True, help="Only these entities.")
def run(pipeline: str, as_json: bool, entities: tuple[str, ...]) -> None:
    """One batch sync: snapshot on the first run, then catch up from the checkpoints."""
    from sync.engine import run_pipeline
    from sync.render import progress_bar, summary_table
    from sync.signals import stop_on_signals

    cfg = _load(pipeline)
    unknown = [e for e in entities if e not in cfg.entities]
    if unknown:
        _fail(f"unknown entity {unknown[0]!r}; the pipeline has: {', '.join(cfg.entities)}",
              EXIT_USAGE)
    stop = threading.Event()
    with (_user_errors(_debug()), stop_on_signals(stop.set, "the current batch"),
          progress_bar(enabled=not as_json) as progress):
        summary = run_pipeline(cfg, entities=list(entities) or None, progress=progress,
                               stop=stop)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
    else:
        _console().print(summary_table(summary, cfg))
    sys.exit(EXIT_ATTENTION if summary.status == "attention" else EXIT_OK)


# --- setup / teardown --------------------------------------------------------------------


def _each_endpoint(cfg: Any, verb: str) -> None:
    from sync.setup import setup_pipeline

    for line in setup_pipeline(cfg, verb):
        click.echo(line)


@main.command()
@pipeline_arg
def setup(pipeline: str) -> None:
    """Create the capture objects (triggers, publications, slots) at every endpoint."""
    from sync.setup import PipelineBusy

    cfg = _load(pipeline)
    with _user_errors(_debug()):
        try:
            _each_endpoint(cfg, "setup")
        except PipelineBusy as exc:
            _fail(str(exc))
    click.echo("setup complete")


@main.command()
@pipeline_arg
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Tear down even if a run, daemon or worker of the pipeline holds a lease "
                   "in the state store (or the state store cannot be read).")
def teardown(pipeline: str, yes: bool, force: bool) -> None:
    """Remove the capture objects from every endpoint (the state store is kept).

    Refused while a batch run, a daemon or a worker of the pipeline is alive."""
    from sync.setup import PipelineBusy, teardown_pipeline

    cfg = _load(pipeline)
    if not yes and sys.stdin.isatty():
        click.confirm("Remove triggers, slots and publications of this pipeline?", abort=True)
    with _user_errors(_debug()):
        try:
            lines = teardown_pipeline(cfg, force=force)
        except PipelineBusy as exc:
            _fail(str(exc))
        for line in lines:
            click.echo(line)
    click.echo("teardown complete")


@main.command()
@pipeline_arg
@click.argument("entities", nargs=-1, required=True)
@click.option("--reset-stream", is_flag=True,
              help="Read the entities' source logs from their current end (a purged binlog, "
                   "a lost slot); every entity reading those logs is resynced too.")
@click.option("--forget", "forget", multiple=True, metavar="ENDPOINT",
              help="Forget an endpoint the entities no longer name (gone for good), whose "
                   "checkpoints make a new endpoint look like it renamed.")
@click.option("--restored", "restored", multiple=True, metavar="ENDPOINT",
              help="ENDPOINT was restored from an older copy (a backup, a standby that "
                   "lagged): its log is read from its current end, and where it holds "
                   "another copy of a key than the one known, the known one is written over "
                   "it instead of being taken for its edit.")
def resync(pipeline: str, entities: tuple[str, ...], reset_stream: bool,
           forget: tuple[str, ...], restored: tuple[str, ...]) -> None:
    """Snapshot ENTITIES again at the next run, reconciling with what is known."""
    from sync.setup import PipelineBusy
    from sync.setup import resync as do_resync

    cfg = _load(pipeline)
    unknown = [e for e in entities if e not in cfg.entities]
    if unknown:
        _fail(f"unknown entity {unknown[0]!r}; the pipeline has: {', '.join(cfg.entities)}",
              EXIT_USAGE)
    strange = [e for e in restored if e not in cfg.endpoints]
    if strange:
        _fail(f"unknown endpoint {strange[0]!r} for --restored; the pipeline has:"
              f" {', '.join(cfg.endpoints)}", EXIT_USAGE)
    with _user_errors(_debug()):
        try:
            lines = do_resync(cfg, list(entities), reset_stream=reset_stream,
                              forget=list(forget), restored=list(restored))
        except PipelineBusy as exc:
            _fail(str(exc))
        for line in lines:
            click.echo(line)
    click.echo("run `cdcsync run PIPELINE` (or restart the daemon) to resync")


# --- status / verify ---------------------------------------------------------------------


@main.command()
@pipeline_arg
@json_opt
def status(pipeline: str, as_json: bool) -> None:
    """Checkpoints, last runs, pending applies; exit 3 if anything waits for a steward."""
    from sync.render import status_view
    from sync.status import collect_status

    cfg = _load(pipeline)
    with _user_errors(_debug()):
        info = collect_status(cfg)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        _console().print(status_view(info))
    waiting = (info["open_conflicts"] or info["open_quarantine"] or info["dead_letters"]
               or info["warnings"])
    sys.exit(EXIT_ATTENTION if waiting else EXIT_OK)


@main.command()
@pipeline_arg
@json_opt
@click.option("--entity", "entities", multiple=True, help="Only these entities.")
def verify(pipeline: str, as_json: bool, entities: tuple[str, ...]) -> None:
    """Compare every entity across its endpoints; exit 1 on any drift."""
    from sync.context import open_pipeline
    from sync.render import drift_view
    from sync.verify import verify as run_verify

    cfg = _load(pipeline)
    with _user_errors(_debug()), open_pipeline(cfg) as ctx:
        drifts = run_verify(ctx, list(entities) or None)
    if as_json:
        click.echo(json.dumps([d.to_json() for d in drifts], indent=2))
    else:
        _console().print(drift_view(drifts))
    sys.exit(EXIT_OK if all(d.in_sync for d in drifts) else EXIT_FAILURE)


# --- conflicts ---------------------------------------------------------------------------


@main.group()
def conflicts() -> None:
    """Review the conflict report and decide parked conflicts."""


@conflicts.command("list")
@pipeline_arg
@json_opt
@click.option("--all", "show_all", is_flag=True, help="Include conflicts resolved by policy.")
@click.option("--entity", default=None)
@click.option("--limit", default=200, show_default=True, type=click.IntRange(0),
              help="The oldest so many (0: every one).")
def conflicts_list(pipeline: str, as_json: bool, show_all: bool, entity: str | None,
                   limit: int) -> None:
    """Open conflicts (with --all: every conflict, however it was decided)."""
    from conflict.store import ConflictStore
    from sync.context import open_state
    from sync.render import conflicts_table

    cfg = _load(pipeline)
    status = None if show_all else "open"
    with _user_errors(_debug()):
        store = open_state(cfg)
        found = ConflictStore(store.engine)
        rows = found.list(cfg.pipeline, status=status, entity=entity, limit=limit or None)
        total = found.count(cfg.pipeline, status, entity) if limit and len(rows) == limit \
            else len(rows)
        store.close()
    more = (f"the oldest {len(rows)} of {total} conflicts shown: --limit 0 lists every one"
            if total > len(rows) else None)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        if more:
            click.echo(more, err=True)
    else:
        _console().print(conflicts_table(rows, show_all, more))


@conflicts.command("show")
@pipeline_arg
@click.argument("conflict_id")
@json_opt
def conflicts_show(pipeline: str, conflict_id: str, as_json: bool) -> None:
    """Both versions of one conflict, column by column, and how it was decided."""
    from conflict.store import ConflictStore
    from sync.context import open_state
    from sync.render import conflict_detail

    cfg = _load(pipeline)
    with _user_errors(_debug()):
        store = open_state(cfg)
        rec = ConflictStore(store.engine).get(cfg.pipeline, conflict_id)
        store.close()
    if rec is None:
        _fail(f"no conflict {conflict_id!r} (ids may be shortened to a unique prefix)",
              EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(rec, indent=2, default=str))
    else:
        _console().print(conflict_detail(rec))


@conflicts.command("resolve")
@pipeline_arg
@click.argument("conflict_id", required=False)
@click.option("--pick", default=None, help="The endpoint whose version wins whole.")
@click.option("--field", "fields", multiple=True, metavar="COLUMN=ENDPOINT",
              help="Take one column from an endpoint's version (repeatable).")
@click.option("--all", "every", is_flag=True,
              help="Every open conflict (of --entity) instead of one: needs --pick.")
@click.option("--entity", default=None, help="With --all: only this entity's conflicts.")
@click.option("--by", "actor", default=None, help="Who decides (default: $USER).")
@click.option("--note", default="", help="Why: kept in the conflict report and audit log.")
def conflicts_resolve(pipeline: str, conflict_id: str | None, pick: str | None,
                      fields: tuple[str, ...], every: bool, entity: str | None,
                      actor: str | None, note: str) -> None:
    """Decide a parked conflict (or, with --all, every open one) and apply the decision
    everywhere."""
    from sync.context import open_pipeline
    from sync.steward import decide

    if every or entity:
        _resolve_all(pipeline, conflict_id, pick, fields, every, entity, actor, note)
        return
    if conflict_id is None:
        _fail("name the conflict to decide (its id, or a unique prefix), or decide every"
              " open one with --all --pick ENDPOINT", EXIT_USAGE)
    by_field: dict[str, str] = {}
    for f in fields:
        col, sep, ep = f.rpartition("=")  # (a column may hold "=", an endpoint not)
        if not sep or not col or not ep:
            _fail(f"--field takes COLUMN=ENDPOINT, not {f!r}", EXIT_USAGE)
        by_field[col] = ep
    cfg = _load(pipeline)
    who = _steward(actor)
    with _user_errors(_debug()), open_pipeline(cfg) as ctx:
        result = decide(ctx, conflict_id, pick=pick, fields=by_field or None, actor=who,
                        note=note)
    click.echo(f"conflict {result['conflict']} resolved by {who}: applied to "
               f"{result['applied']} endpoint(s)"
               + (f", {result['skipped']} moved meanwhile (their edit will be read next run)"
                  if result["skipped"] else ""))
    if result["refused"]:  # the decision stands; an operator sees to the target
        click.echo(f"{result['refused']} endpoint(s) refused the decided version: kept as a"
                   f" dead letter (cdcsync dlq list {cfg.pipeline})", err=True)
        sys.exit(EXIT_ATTENTION)


def _resolve_all(pipeline: str, conflict_id: str | None, pick: str | None,
                 fields: tuple[str, ...], every: bool, entity: str | None,
                 actor: str | None, note: str) -> None:
    """``conflicts resolve --all --pick ENDPOINT [--entity NAME]``."""
    from sync.context import open_pipeline
    from sync.steward import decide_all

    if not every:
        _fail("--entity goes with --all (one conflict is named by its id)", EXIT_USAGE)
    if conflict_id is not None:
        _fail("--all decides every open conflict: name no conflict id with it", EXIT_USAGE)
    if pick is None or fields:
        _fail("--all takes one side whole for every conflict: --pick ENDPOINT (decide"
              " field by field one conflict at a time)", EXIT_USAGE)
    cfg = _load(pipeline)
    _one_of("--pick", pick, cfg.endpoints, "endpoint", cfg.pipeline)
    _one_of("--entity", entity, cfg.entities, "entity", cfg.pipeline)
    who = _steward(actor)
    with _user_errors(_debug()), open_pipeline(cfg) as ctx:
        result = decide_all(ctx, pick=pick, entity=entity, actor=who, note=note)
    click.echo(f"{result['decided']} conflict(s) resolved by {who}, taking {pick}'s side:"
               f" {result['applied']} write(s) applied"
               + (f", {result['skipped']} moved meanwhile (their edit will be read next run)"
                  if result["skipped"] else ""))
    for cid, why in result["left"].items():
        click.echo(f"not decided: {cid[:12]}: {why}")
    if result["left"]:
        sys.exit(EXIT_ATTENTION)


# --- daemon / worker ---------------------------------------------------------------------


def _serve(pipeline: str, *, readers: bool, workers: bool = True,
           metrics_port: int | None = None, worker_processes: int | None = None) -> NoReturn:
    import signal

    from sync.arenas import limit
    from sync.daemon import run_daemon
    from sync.daemon.main import MetricsAddressTaken, SharedBrokerNeeded
    from sync.signals import from_handler

    limit()  # before the daemon's threads start (sync/arenas.py)
    cfg = _load(pipeline)
    overrides = {k: v for k, v in (("metrics_port", metrics_port),
                                   ("worker_processes", worker_processes)) if v is not None}
    if overrides:  # the options' ranges are the config's (click.IntRange)
        cfg = cfg.model_copy(update={"daemon": cfg.daemon.model_copy(update=overrides)})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: from_handler(stop.set))

    def ready(info: dict[str, Any]) -> None:
        port = f" on http://{cfg.daemon.metrics_host}:{info['port']}" if info["port"] else ""
        click.echo(f"cdcsync {'daemon' if readers else 'worker'} ready{port} "
                   f"(holder {info['holder']})", err=True)

    with _user_errors(_debug()):
        try:
            code = run_daemon(cfg, readers=readers, workers=workers, stop=stop, on_ready=ready,
                              options=_global_options())
        except (SharedBrokerNeeded, MetricsAddressTaken) as exc:
            _fail(f"{pipeline}: {exc}", EXIT_USAGE)
    sys.exit(code)


metrics_port_opt = click.option(
    "--metrics-port", type=click.IntRange(0, 65535), default=None,
    help="Serve /metrics, /healthz and /readyz on this port (0: any free one) instead "
         "of daemon.metrics_port: for several processes on one machine.")


@main.command()
@pipeline_arg
@click.option("--workers/--no-workers", default=True, show_default=True,
              help="Apply in this process too; --no-workers leaves applying to "
                   "`cdcsync worker` processes (needs a redis:// or amqp:// broker).")
@click.option("--worker-processes", type=click.IntRange(0, 64), default=None,
              help="Start this many `cdcsync worker` processes beside the daemon and leave "
                   "applying to them (instead of daemon.worker_processes; needs a redis:// "
                   "or amqp:// broker).")
@metrics_port_opt
def daemon(pipeline: str, workers: bool, worker_processes: int | None,
           metrics_port: int | None) -> None:
    """Tail every source and apply continuously until SIGTERM (metrics, /healthz, /readyz)."""
    _serve(pipeline, readers=True, workers=workers, metrics_port=metrics_port,
           worker_processes=worker_processes)


@main.command()
@pipeline_arg
@metrics_port_opt
def worker(pipeline: str, metrics_port: int | None) -> None:
    """Run apply workers only (needs a shared broker: redis:// or amqp://)."""
    _serve(pipeline, readers=False, metrics_port=metrics_port)


def _global_options() -> tuple[str, ...]:
    """The global options this command was given, for the processes it starts."""
    root = click.get_current_context().find_root()
    flags = {"debug": "--debug", "log_json": "--log-json"}
    return tuple(flag for name, flag in flags.items() if root.params.get(name))


# --- config ------------------------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Check or show a pipeline file."""


@config_group.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Report every problem with file, line and field; exit 2 if there is any."""
    cfg = _load(file)
    if any(e.quality.suite is not None for e in cfg.entities.values()):
        from sync.quality.check import check_pipeline_suites

        problems = [f"{cfg.path}: {p}" for p in check_pipeline_suites(cfg)]
        if problems:
            click.echo("\n".join(problems), err=True)
            sys.exit(EXIT_USAGE)
    click.echo(f"{file}: ok (pipeline {cfg.pipeline!r}, {len(cfg.endpoints)} endpoints, "
               f"{len(cfg.entities)} entities)")


@config_group.command("show")
@click.argument("file", type=click.Path(dir_okay=False))
def config_show(file: str) -> None:
    """Print the resolved configuration with secrets masked."""
    from config import render_config

    click.echo(render_config(_load(file)))


Command = Callable[..., Any]

from sync.cli_quality import quality, quarantine  # noqa: E402 - the data-quality gate's commands

main.add_command(quarantine)
main.add_command(quality)

from sync.cli_ops import dlq, entity_group, schedule  # noqa: E402 - operator commands

main.add_command(schedule)
main.add_command(dlq)
main.add_command(entity_group)

from sync.cli_review import review  # noqa: E402 - the review UI for data stewards

main.add_command(review)

if __name__ == "__main__":  # pragma: no cover
    main()
