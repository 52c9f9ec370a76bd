"""GX Data Docs of the quarantine: ``cdcsync quality docs PIPELINE``.

The gate keeps no validation results (a batch's passing rows are applied and
gone; what failed is in the quarantine table with its failed expectations and
observed values). What a steward can usefully browse as GX Data Docs is the rows
that wait in quarantine, judged by the entity's suite as it is now: for each
entity with a suite, the changes with status ``quarantined`` are validated again
(COMPLETE results, failing rows named by their quarantine item id) through a GX
checkpoint whose ``UpdateDataDocsAction`` writes a static HTML site: an index,
one validation page per entity, one page per suite.

Imported only by that command (GX and pandas are heavy).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sync.context import PipelineContext
from sync.quality.gate import gx_context
from sync.quality.hook import gate_for
from sync.quality.store import QuarantineStore, change_from_json

ITEM = "quarantine_item"  # the column that names each row of a validation page
_sites = itertools.count(1)


@dataclass
class EntityDocs:
    entity: str
    rows: int  # quarantined rows validated
    failed: int  # expectations with failing rows
    page: Path | None  # the entity's validation page (None: nothing in quarantine)


def write_docs(ctx: PipelineContext, out: Path, entities: Sequence[str] | None = None,
               *, limit: int = 100_000) -> tuple[Path, list[EntityDocs]]:
    """Write the Data Docs site for ``entities`` (default: every entity with a suite) into
    ``out``; its index page and what each entity's page holds."""
    import pandas as pd

    from sync.quality.gximport import import_gx

    gx = import_gx()
    from great_expectations.checkpoint.actions import UpdateDataDocsAction

    gx_ctx = gx_context()
    out = out.resolve()
    site = f"cdcsync-docs-{next(_sites)}"
    gx_ctx.add_data_docs_site(site_name=site, site_config={
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(out)}})
    store = QuarantineStore(ctx.store.engine)
    source = gx_ctx.data_sources.add_pandas(f"{site}-{ctx.pipeline}")
    report: list[EntityDocs] = []
    names = [n for n, e in ctx.entities.items()
             if e.cfg.quality.suite is not None and (not entities or n in entities)]
    for name in names:
        ent = ctx.entities[name]
        gate = gate_for(ent)
        items = store.items(ctx.pipeline, statuses=["quarantined"], entity=name, limit=limit)
        rows = []
        for item in items:
            ch = change_from_json(item["change"])
            row = dict(ch.content or {})
            if ch.before is not None:
                row = {**ch.before, **row}  # columns a log leaves out
            rows.append(row)
        if not rows:
            report.append(EntityDocs(name, 0, 0, None))
            continue
        data, _ = gate.frame_data(rows)
        data[ITEM] = [int(i["id"]) for i in items]
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(
            "quarantined rows")
        definition = gx_ctx.validation_definitions.add(gx.ValidationDefinition(
            name=f"{site}-{name}", data=batch, suite=gate.gx_suite))
        checkpoint = gx_ctx.checkpoints.add(gx.Checkpoint(
            name=f"{site}-{name}", validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data docs", site_names=[site])],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ITEM]}))
        result: Any = checkpoint.run(batch_parameters={"dataframe": pd.DataFrame(data)})
        [run] = result.run_results.values()
        failed = sum(1 for r in run.results if not r.success)
        pages = sorted((out / "validations").rglob(f"*{name}*.html"),
                       key=lambda p: p.stat().st_mtime)
        report.append(EntityDocs(name, len(rows), failed, pages[-1] if pages else None))
    gx_ctx.build_data_docs(site_names=[site])
    return out / "index.html", report
