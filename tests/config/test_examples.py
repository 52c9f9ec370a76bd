"""The pipeline files shipped under examples/ load (with the test's environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import load_pipeline, render_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(REPO.glob("examples/**/pipeline.yaml"))

# Used only while no example exists, so that this test always checks something.
STAND_IN = """\
pipeline: stand_in
endpoints:
  crm: {kind: sqlite, path: data/crm.db}
  billing: {kind: sqlite, path: data/billing.db}
entities:
  customers:
    key: [id]
    endpoints: {crm: customers, billing: customers}
    conflict: {policy: field_merge, fallback: manual}
"""


@pytest.mark.parametrize("name", [str(p.relative_to(REPO)) for p in EXAMPLES] or ["stand-in"])
def test_example_pipeline_loads(name: str, tmp_path: Path) -> None:
    if EXAMPLES:
        path = REPO / name
    else:
        path = tmp_path / "pipeline.yaml"
        path.write_text(STAND_IN, encoding="utf-8")
    cfg = load_pipeline(path)
    assert cfg.path == path
    assert cfg.entities, "an example pipeline should define entities"
    for entity in cfg.entities.values():
        assert set(entity.sources()) <= set(cfg.endpoints)
        assert set(entity.sinks()) <= set(cfg.endpoints)
    assert f"pipeline: {cfg.pipeline}" in render_config(cfg)
