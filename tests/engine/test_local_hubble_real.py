"""One process and several read the real-shaped Hubble corpus (benchmarks/hubble_real.py) to the
same bytes: policies, report and messages (issue 17). Hubble files are cut into parts, one per
byte chunk of the reader, from two chunks on (not from MIN_PARALLEL_BYTES on)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import netpolgen.engine.local as parallel
from netpolgen.generator import generate_from_files
from netpolgen.ingest import hubble
from netpolgen.policy.from_reduction import GenerateOptions

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate.write("hubble-real", 4000, tmp_path_factory.mktemp("real") / "real.jsonl")


def test_a_hubble_file_of_two_chunks_is_cut_into_parts(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = corpus.stat().st_size
    assert size < parallel.MIN_PARALLEL_BYTES
    monkeypatch.setattr(hubble, "CHUNK_BYTES", size)  # one chunk: one process
    assert parallel._plan(corpus, "auto", 2) is None
    monkeypatch.setattr(hubble, "CHUNK_BYTES", size // 2)  # two chunks: two parts
    plan = parallel._plan(corpus, "auto", 2)
    assert plan is not None and len(plan.ranges) == 2
    assert parallel._plan(corpus, "auto", 1) is None  # --workers 1


@pytest.mark.parametrize("chunk_size", [333, 250_000])
def test_one_process_and_several_give_the_same_bytes(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    monkeypatch.setattr(hubble, "CHUNK_BYTES", 700_000)  # ~13 parts of ~320 lines
    plan = parallel._plan(corpus, "auto", 2)
    assert plan is not None and len(plan.ranges) > 10
    for options in (GenerateOptions(), GenerateOptions(include_denied=True)):
        one = generate_from_files([corpus], options, workers=1, chunk_size=chunk_size)
        two = generate_from_files([corpus], options, workers=2, chunk_size=chunk_size)
        assert len(one.policies) > 50
        assert two.to_yaml() == one.to_yaml()
        assert two.report.to_dict() == one.report.to_dict()
        assert two.report.messages == one.report.messages
