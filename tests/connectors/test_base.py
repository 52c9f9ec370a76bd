"""connectors/base.py: what every connector shares."""

from __future__ import annotations

import dataclasses

from connectors.base import ApplyResult


def test_a_placed_result_keeps_every_other_field() -> None:
    """``placed`` is ``dataclasses.replace(position=...)`` built by hand: a field added to
    ApplyResult later and not copied there would be lost for every insert."""
    values = {f.name: f"value {i}" for i, f in enumerate(dataclasses.fields(ApplyResult))}
    res = ApplyResult(**values)  # type: ignore[arg-type]
    assert res.placed((7, -1)) == dataclasses.replace(res, position=(7, -1))
    assert res.placed((7, -1)).position == (7, -1) and res.position == values["position"]
