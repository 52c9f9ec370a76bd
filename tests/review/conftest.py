"""The review UI's fixtures: the quickstart pipeline run up to a parked conflict, and helpers.

The pipeline is real (examples/quickstart copied to a temporary directory,
two SQLite files with capture triggers, a SQLite state store), run in-process
the way ``cdcsync setup`` and ``cdcsync run`` do; the app is driven with
Flask's test client, as a browser would (cookies, forms, redirects).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLE = ROOT / "examples" / "quickstart"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def setup_endpoints(cfg: Any) -> None:
    """What ``cdcsync setup`` does: capture objects at every endpoint."""
    from connectors.registry import open_endpoint
    from sync.context import bindings_for

    for name, settings in cfg.endpoints.items():
        ep = open_endpoint(name, settings, pipeline=cfg.pipeline)
        try:
            ep.setup([bindings_for(cfg, e)[name] for e in cfg.entities], cfg.pipeline)
        finally:
            ep.close()


@dataclass
class Quickstart:
    dir: Path

    @property
    def pipeline(self) -> Path:
        return self.dir / "pipeline.yaml"

    def cfg(self) -> Any:
        from config import load_pipeline

        return load_pipeline(self.pipeline)

    def seed(self, step: str) -> None:
        subprocess.run([sys.executable, str(self.dir / "seed.py"), step], check=True,
                       capture_output=True)

    def run(self) -> Any:
        from sync.engine import run_pipeline

        return run_pipeline(self.cfg())

    def sql(self, db: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.dir / "data" / f"{db}.db", isolation_level=None)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def conflicts(self, status: str | None = None) -> list[dict[str, Any]]:
        from conflict.store import ConflictStore
        from sync.state import open_store

        store = open_store(self.cfg().state.url)
        try:
            return ConflictStore(store.engine).list("quickstart", status=status)
        finally:
            store.close()

    def conflict(self, conflict_id: str) -> dict[str, Any]:
        found = [c for c in self.conflicts() if c["id"] == conflict_id]
        assert len(found) == 1
        return found[0]


@pytest.fixture
def quickstart(tmp_path: Path) -> Quickstart:
    """The quickstart after its second run: customer 2's e-mail parked for a steward."""
    for name in ("pipeline.yaml", "seed.py"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    qs = Quickstart(tmp_path)
    qs.seed("init")
    setup_endpoints(qs.cfg())
    qs.run()
    qs.seed("edit")
    summary = qs.run()
    assert summary.open_conflicts == 1
    return qs


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


class Rows(HTMLParser):
    """Every table row of a page: (its class attribute, the texts of its cells)."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self.rows.append((dict(attrs).get("class") or "", []))
        elif tag in ("td", "th") and self.rows:
            self._cell = []
        elif tag == "input" and self._cell is not None:
            a = dict(attrs)
            if a.get("type") == "radio":
                self._cell.append(f"[{'x' if 'checked' in a else ' '}]")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1][1].append(" ".join(" ".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str) -> list[tuple[str, list[str]]]:
    parser = Rows()
    parser.feed(html)
    return parser.rows
