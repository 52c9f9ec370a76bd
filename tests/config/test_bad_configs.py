"""Every malformed pipeline file under bad/ fails with exactly the problems in its .expected.

Each ``bad/<case>.expected`` holds the full text of ``str(ConfigError)`` for
``bad/<case>.yaml`` loaded by its bare file name, with an empty environment:
file, line, column, field and message are all checked. A case without a YAML
file is the file-not-found case.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_pipeline

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.stem for p in BAD.glob("*.expected"))


@pytest.mark.parametrize("case", CASES)
def test_bad_config_reports_exact_problems(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BAD)
    expected = (BAD / f"{case}.expected").read_text(encoding="utf-8").rstrip("\n")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(f"{case}.yaml", env={})
    assert str(caught.value) == expected
    assert len(caught.value.problems) == len(expected.splitlines())
    assert all(p.file == f"{case}.yaml" for p in caught.value.problems)


def test_every_bad_yaml_has_an_expectation() -> None:
    yamls = {p.stem for p in BAD.glob("*.yaml")}
    assert yamls <= set(CASES)
    assert len(CASES) >= 12


def test_problems_are_reported_with_the_path_as_given(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "pipeline.yaml"
    path.parent.mkdir()
    path.write_text("pipeline: demo\nendpoints: {}\nentities: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, env={})
    assert str(caught.value).splitlines() == [
        f"{path}:2:12: endpoints: should not be empty",
        f"{path}:3:11: entities: should not be empty",
    ]


def test_a_directory_is_not_a_pipeline_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_pipeline(tmp_path, env={})
    assert str(caught.value) == f"{tmp_path}: is a directory, not a file"


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("pipeline: d\xe9mo\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, env={})
    assert str(caught.value) == f"{path}:1:12: not UTF-8 text (byte 0xe9)"


def test_a_missing_variable_does_not_also_report_the_resulting_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "pipeline: demo\n"
        "batch: {size: '${SIZE}'}\n"
        "endpoints: {a: {kind: sqlite, path: a.db}, b: {kind: sqlite, path: b.db}}\n"
        "entities: {c: {key: '${KEY}', endpoints: {a: t, b: t}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, env={})
    assert [(p.line, p.field, p.message) for p in caught.value.problems] == [
        (2, "batch.size", "environment variable SIZE is not set"),
        (4, "entities.c.key", "environment variable KEY is not set"),
    ]
