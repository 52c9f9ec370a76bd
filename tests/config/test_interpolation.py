from __future__ import annotations

import pytest

from config.interpolation import interpolate

ENV = {"USER": "ann", "EMPTY": "", "DOLLAR": "$X"}


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("plain", "plain"),
        ("${USER}", "ann"),
        ("a-${USER}-b-${USER}", "a-ann-b-ann"),
        ("${MISSING:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY}", ""),
        ("${USER:-dflt}", "ann"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a:b}c", "a:bc"),
        ("$$", "$"),
        ("$${USER}", "${USER}"),
        ("$$$${USER}", "$${USER}"),
        ("$$${USER}", "$ann"),
        ("costs $5", "costs $5"),
        ("ends with $", "ends with $"),
        ("${DOLLAR}", "$X"),  # a value is not interpolated again
    ],
)
def test_interpolate(template: str, text: str) -> None:
    done = interpolate(template, ENV)
    assert done.errors == []
    assert done.text == text


def test_substitutions_record_where_values_landed() -> None:
    done = interpolate("u:${USER}@h/${MISSING:-db}", ENV)
    assert [(s.name, s.value, done.text[s.start : s.end]) for s in done.substitutions] == [
        ("USER", "ann", "ann"),
        ("MISSING", "db", "db"),
    ]


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("${NOPE}", "environment variable NOPE is not set"),
        (
            "${bad-name}",
            "invalid variable reference '${bad-name}': write ${NAME} or ${NAME:-default}",
        ),
        ("${}", "invalid variable reference '${}': write ${NAME} or ${NAME:-default}"),
        (
            "${X:default}",
            "invalid variable reference '${X:default}': write ${NAME} or ${NAME:-default}",
        ),
        ("a ${OPEN", "unterminated '${OPEN': write ${NAME}, or '$$' for a literal '$'"),
    ],
)
def test_interpolation_errors(template: str, error: str) -> None:
    assert interpolate(template, ENV).errors == [error]
