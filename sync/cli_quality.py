"""``cdcsync quarantine ...`` and ``cdcsync quality init``: the data-quality gate's commands.

Registered on the main group by ``sync.cli``. Like the rest of the CLI, a thin
layer over functions the tests call directly (``sync.quality.release.decide``,
``sync.quality.starter.propose_suite``); nothing heavy is imported until a
command runs.

Exit codes: 0 done; 1 a replay refused because the row still fails the suite
(the item stays quarantined, with what was observed now); 2 usage errors
(unknown item, an item that is held or already decided, a missing reason).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


def _json_errors(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    from sync.cli import _json_mode  # (sync.cli imports this module)

    return _json_mode(ctx, param, value)

pipeline_arg = click.argument("pipeline", type=click.Path(dir_okay=False))
json_opt = click.option("--json", "as_json", is_flag=True,
                        callback=lambda c, p, v: _json_errors(c, p, v),
                        help="Machine-readable output (a failure too, on stdout).")
actor_opt = click.option("--by", "actor", default=None, help="Who decides (default: $USER).")


def _cli() -> Any:
    from sync import cli

    return cli


def _store(cfg: Any) -> Any:
    from sync.context import open_state

    return open_state(cfg)


@click.group()
def quarantine() -> None:
    """Changes stopped by the data-quality gate: list, show, replay, accept, discard."""


@quarantine.command("list")
@pipeline_arg
@json_opt
@click.option("--all", "show_all", is_flag=True, help="Include decided items.")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["quarantined", "held", "replayed", "accepted", "discarded"]),
              help="Only items with this status (repeatable).")
@click.option("--entity", default=None)
def quarantine_list(pipeline: str, as_json: bool, show_all: bool, statuses: tuple[str, ...],
                    entity: str | None) -> None:
    """Quarantined and held changes (with --all: decided ones too), oldest first."""
    from sync.quality.store import UNRESOLVED, QuarantineStore

    cli = _cli()
    cfg = cli._load(pipeline)
    with cli._user_errors(cli._debug()):
        store = _store(cfg)
        try:
            wanted = list(statuses) or (None if show_all else list(UNRESOLVED))
            items = QuarantineStore(store.engine).items(cfg.pipeline, statuses=wanted,
                                                        entity=entity, limit=10_000)
        finally:
            store.close()
    if as_json:
        from sync.quality.render import item_json

        click.echo(json.dumps([item_json(i) for i in items], indent=2, default=str))
    else:
        from sync.quality.render import items_table

        cli._console().print(items_table(items, f"quarantine: {cfg.pipeline}"))


@quarantine.command("show")
@pipeline_arg
@click.argument("item_id", type=int)
@json_opt
def quarantine_show(pipeline: str, item_id: int, as_json: bool) -> None:
    """One item in full: the change, each failed expectation and the value it saw."""
    from sync.quality.store import QuarantineStore

    cli = _cli()
    cfg = cli._load(pipeline)
    with cli._user_errors(cli._debug()):
        store = _store(cfg)
        try:
            qs = QuarantineStore(store.engine)
            item = qs.get(cfg.pipeline, item_id)
            held = [] if item is None else [
                h for h in qs.unresolved(cfg.pipeline, item["entity"], item["key"])
                if h["id"] != item_id]
        finally:
            store.close()
    if item is None:
        cli._fail(f"no quarantine item #{item_id} in pipeline {cfg.pipeline!r}", cli.EXIT_USAGE)
        return
    if as_json:
        from sync.quality.render import item_json

        click.echo(json.dumps({**item_json(item), "held": [h["id"] for h in held]}, indent=2,
                              default=str))
    else:
        from sync.quality.render import item_detail

        cli._console().print(item_detail(item, held))


def _decide(pipeline: str, item_id: int, action: str, actor: str | None, reason: str,
            as_json: bool) -> None:
    from sync.context import open_pipeline
    from sync.quality.release import QuarantineError, decide
    from sync.quality.suite import SuiteError

    cli = _cli()
    cfg = cli._load(pipeline)
    who = cli._steward(actor)
    with cli._user_errors(cli._debug()), open_pipeline(cfg) as ctx:
        try:
            out = decide(ctx, item_id, action, actor=who, reason=reason)
        except (QuarantineError, SuiteError) as exc:
            cli._fail(str(exc), cli.EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(out.to_json(), indent=2, default=str))
    elif out.refused:
        from sync.quality.render import failure_text

        click.echo(f"#{item_id} still fails the suite; it stays quarantined:", err=True)
        for ep, fails in out.refused.items():
            for f in fails:
                click.echo(f"  {ep}: {failure_text(f)}", err=True)
    else:
        o = out.to_json()
        line = (f"#{item_id} {out.status} by {who}: applied to {o['applied']} endpoint row(s)"
                + (f", {out.released} held change(s) released" if out.released else "")
                + (f", {out.superseded} superseded by the row read back" if out.superseded
                   else ""))
        if out.requarantined is not None:
            line += f"; held change #{out.requarantined} fails too and is quarantined now"
        click.echo(line)
    sys.exit(cli.EXIT_FAILURE if out.refused else cli.EXIT_OK)


@quarantine.command("replay")
@pipeline_arg
@click.argument("item_id", type=int, required=False)
@click.option("--accept", is_flag=True,
              help="Apply the change as it was captured, without validating it again.")
@click.option("--all", "every", is_flag=True,
              help="Every quarantined item (of --entity), validated again: those that pass"
                   " flow, the others stay.")
@click.option("--entity", default=None, help="With --all: only this entity's items.")
@click.option("--reason", default="", help="Why (required with --accept): kept in the audit log.")
@actor_opt
@json_opt
def quarantine_replay(pipeline: str, item_id: int | None, accept: bool, every: bool,
                      entity: str | None, reason: str, actor: str | None,
                      as_json: bool) -> None:
    """Re-read the row at its source, validate it and let it flow (--accept: as captured;
    --all: every quarantined item)."""
    cli = _cli()
    if every or entity:
        if not every:
            cli._fail("--entity goes with --all (one item is named by its id)", cli.EXIT_USAGE)
        if item_id is not None or accept:
            cli._fail("--all validates every quarantined item again: name no item, and"
                      " accept unvalidated changes one at a time (--accept ITEM)",
                      cli.EXIT_USAGE)
        _replay_all(pipeline, entity, actor, reason, as_json)
        return
    if item_id is None:
        cli._fail("name the item to replay (its number in `cdcsync quarantine list`), or"
                  " replay every quarantined item with --all", cli.EXIT_USAGE)
    else:
        _decide(pipeline, item_id, "accept" if accept else "replay", actor, reason, as_json)


def _replay_all(pipeline: str, entity: str | None, actor: str | None, reason: str,
                as_json: bool) -> None:
    from sync.context import open_pipeline
    from sync.quality.release import replay_all
    from sync.quality.suite import SuiteError

    cli = _cli()
    cfg = cli._load(pipeline)
    cli._one_of("--entity", entity, cfg.entities, "entity", cfg.pipeline)
    who = cli._steward(actor)
    with cli._user_errors(cli._debug()), open_pipeline(cfg) as ctx:
        try:
            out = replay_all(ctx, entity=entity, actor=who, reason=reason)
        except SuiteError as exc:
            cli._fail(str(exc), cli.EXIT_USAGE)
    waiting = out["failing"] or out["requarantined"] or out["left"]
    if as_json:
        click.echo(json.dumps(out, indent=2, default=str))
    else:
        _replay_report(out, who)
    sys.exit(cli.EXIT_ATTENTION if waiting else cli.EXIT_OK)


def _replay_report(out: dict[str, Any], who: str) -> None:
    click.echo(f"{out['replayed']} item(s) replayed by {who}: applied to {out['applied']}"
               f" endpoint row(s)"
               + (f", {out['released']} held change(s) released" if out["released"] else "")
               + (f", {out['superseded']} superseded by the rows read back"
                  if out["superseded"] else ""))
    if out["failing"]:
        click.echo(f"{len(out['failing'])} still fail the suite and stay quarantined: "
                   + ", ".join(f"#{i}" for i in out["failing"][:20])
                   + (" ..." if len(out["failing"]) > 20 else ""))
    if out["requarantined"]:
        click.echo(f"{len(out['requarantined'])} held change(s) fail in their turn, now"
                   " quarantined: " + ", ".join(f"#{i}" for i in out["requarantined"][:20]))
    for item, why in out["left"].items():
        click.echo(f"not replayed: #{item}: {why}")


@quarantine.command("discard")
@pipeline_arg
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Why: kept in the audit log.")
@actor_opt
@json_opt
def quarantine_discard(pipeline: str, item_id: int, reason: str, actor: str | None,
                       as_json: bool) -> None:
    """Drop the change (applied nowhere; its source keeps the row); release what it held."""
    _decide(pipeline, item_id, "discard", actor, reason, as_json)


# --- quality init ----------------------------------------------------------------------------


@click.group("quality")
def quality() -> None:
    """Data-quality suites (Great Expectations)."""


@quality.command("init")
@pipeline_arg
@click.argument("entity")
@click.option("--endpoint", default=None, help="Sample this endpoint (default: the first "
              "source of the entity).")
@click.option("--sample", "limit", default=1000, show_default=True, type=click.IntRange(1),
              help="Rows to sample.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="Where to write the suite (default: the entity's configured suite, or "
                   "quality/ENTITY.json next to the pipeline file).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def quality_init(pipeline: str, entity: str, endpoint: str | None, limit: int,
                 output: str | None, force: bool) -> None:
    """Propose a starter suite for ENTITY from a sample of its real rows."""
    from sync.context import open_pipeline
    from sync.quality.starter import propose_suite, sample_rows

    cli = _cli()
    cfg = cli._load(pipeline)
    if entity not in cfg.entities:
        cli._fail(f"unknown entity {entity!r}; the pipeline has: {', '.join(cfg.entities)}",
                  cli.EXIT_USAGE)
    configured = cfg.entities[entity].quality.suite
    path = Path(output) if output else (Path(configured) if configured else
                                        cfg.base_dir / "quality" / f"{entity}.json")
    if path.exists() and not force:
        cli._fail(f"{path} exists; --force overwrites it, --output writes elsewhere",
                  cli.EXIT_USAGE)
    with cli._user_errors(cli._debug()), open_pipeline(cfg) as ctx:
        ent = ctx.entities[entity]
        ep = endpoint or ent.sources[0]
        if ep not in ent.bindings:
            cli._fail(f"entity {entity!r} has no endpoint {ep!r}", cli.EXIT_USAGE)
        rows = sample_rows(ctx, ent, ep, limit)
        from sync.quality.hook import synced_columns

        cols = synced_columns(ent)
        types = {c: t for c, t in ent.types.items() if cols is None or c in cols}
        suite = propose_suite(entity, rows, types, list(ent.cfg.key), source=ep)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite, indent=2, default=str) + "\n", encoding="utf-8")
    from sync.quality.suite import check_suite

    problems = check_suite(path, cols, types)
    if problems:  # pragma: no cover - a proposal this module wrote should always load
        cli._fail("the proposed suite does not load:\n" + "\n".join(problems))
    click.echo(f"wrote {len(suite['expectations'])} expectations from {len(rows)} rows of "
               f"{ep} to {path}")
    if configured is None or Path(configured) != path.resolve():
        click.echo(f"use it: add `quality: {{suite: {os.path.relpath(path, cfg.base_dir)}}}` "
                   f"to entity {entity!r} in {cfg.path}")


@quality.command("docs")
@pipeline_arg
@click.option("--entity", "entities", multiple=True, help="Only these entities.")
@click.option("--output", "-o", type=click.Path(file_okay=False), default=None,
              help="The site's directory (default: quality/docs next to the pipeline file).")
def quality_docs(pipeline: str, entities: tuple[str, ...], output: str | None) -> None:
    """Write GX Data Docs (HTML) of the rows waiting in quarantine, judged by each suite."""
    from sync.context import open_pipeline

    cli = _cli()
    cfg = cli._load(pipeline)
    with_suite = [n for n, e in cfg.entities.items() if e.quality.suite is not None]
    if not with_suite:
        cli._fail(f"no entity of {cfg.path} has a quality suite", cli.EXIT_USAGE)
    unknown = [e for e in entities if e not in with_suite]
    if unknown:
        cli._fail(f"entity {unknown[0]!r} has no quality suite; those with one: "
                  f"{', '.join(with_suite)}", cli.EXIT_USAGE)
    out = Path(output) if output else cfg.base_dir / "quality" / "docs"
    with cli._user_errors(cli._debug()), open_pipeline(cfg) as ctx:
        from sync.quality.docs import write_docs

        index, report = write_docs(ctx, out, list(entities) or None)
    for r in report:
        if r.page is None:
            click.echo(f"{r.entity}: nothing in quarantine")
        else:
            click.echo(f"{r.entity}: {r.rows} quarantined row(s), {r.failed} expectation(s) "
                       f"failing: {r.page}")
    click.echo(f"Data Docs: {index}")
