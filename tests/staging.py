"""Counting what the staged snapshot stages (a direct snapshot stages nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from sync.state.store import StateStore


def count_staged(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows staged per write from now on (the list fills as the snapshot runs)."""
    staged: list[int] = []
    real = StateStore.stage_rows

    def counting(conn: Any, rows: list[dict[str, Any]]) -> None:
        staged.append(len(rows))
        real(conn, rows)

    monkeypatch.setattr(StateStore, "stage_rows", staticmethod(counting))
    return staged
