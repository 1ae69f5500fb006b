"""Every figure hubfit prints is unchanged: the current code's report documents equal the recorded ones.

tests/golden/reports.json.gz holds ``Report.to_dict()`` of every analysable fixture repo for three questions
(tests/golden/record.py, which regenerates it: ``python -m tests.golden.record``). It was recorded from the code
before the performance work (one sizing engine, per-tensor inventory); any change to a figure, a row or a key
fails here, repo and question named.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from typing import Any

import pytest

from fixtures.catalog import TOKEN_GRANTED
from tests.golden.record import OUT, QUESTIONS, analysable, documents


@cache
def _recorded() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(gzip.decompress(OUT.read_bytes()))
    return loaded


@cache
def _current() -> dict[str, Any]:
    return json.loads(json.dumps(documents(TOKEN_GRANTED)))


def test_the_recording_covers_every_fixture_and_question() -> None:
    assert set(_recorded()) == {f"{repo} {q}" for repo in analysable() for q in QUESTIONS}


@pytest.mark.usefixtures("fake_hub")
@pytest.mark.parametrize("repo", analysable())
def test_documents_are_unchanged(repo: str) -> None:
    for question in QUESTIONS:
        key = f"{repo} {question}"
        assert _current()[key] == _recorded()[key], key
