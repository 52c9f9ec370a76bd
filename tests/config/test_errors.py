from __future__ import annotations

import pytest

from config import ConfigError, Problem


@pytest.mark.parametrize(
    ("problem", "text"),
    [
        (Problem("p.yaml", 3, 7, "batch.size", "too small"), "p.yaml:3:7: batch.size: too small"),
        (Problem("p.yaml", 3, None, "batch", "bad"), "p.yaml:3: batch: bad"),
        (Problem("p.yaml", 3, 7, "", "YAML syntax error: x"), "p.yaml:3:7: YAML syntax error: x"),
        (Problem("p.yaml", None, None, "", "file not found"), "p.yaml: file not found"),
        (Problem("p.yaml", None, None, "pipeline", "missing"), "p.yaml: pipeline: missing"),
    ],
)
def test_problem_text(problem: Problem, text: str) -> None:
    assert str(problem) == text


def test_config_error_lists_problems_in_file_order_without_duplicates() -> None:
    late = Problem("p.yaml", 9, 1, "entities", "late")
    early = Problem("p.yaml", 2, 5, "batch", "early")
    error = ConfigError([late, early, late])
    assert error.problems == [early, late]
    assert str(error) == "p.yaml:2:5: batch: early\np.yaml:9:1: entities: late"
    assert error.args == (str(error),)


def test_config_error_needs_a_problem() -> None:
    with pytest.raises(ValueError):
        ConfigError([])
