"""AWS VPC text read whole by one worker process, a pipeline stage ahead of the parent: the same
chunks, policies and report as one process, errors that name the same line, and no process left
behind."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import sys
from pathlib import Path

import pytest

import netpolgen.engine.local as parallel
from netpolgen.errors import InputError, NetpolgenError
from netpolgen.generator import generate_from_files
from netpolgen.ingest import iter_flows
from netpolgen.ingest.report import IngestReport

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate  # noqa: E402


@pytest.fixture
def any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "PIPELINE_MIN_BYTES", 0)


def messy_log(path: Path, records: int = 3000) -> Path:
    generate.write("aws-vpc", records, path)
    lines = path.read_bytes().split(b"\n")
    lines[40] = b"2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6"  # too few fields
    lines[900] = lines[900].replace(b" ", b"  ", 2)  # a double space: the line-by-line path
    lines[1500] = b"\xff\xfe not utf-8"
    lines[2500] = lines[2500].replace(b" 6 ", b" 999 ", 1)  # no such protocol
    path.write_bytes(b"\n".join(lines))
    return path


def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(generate.inventory(generate.make_cluster())))
    return path


def test_a_worker_gives_what_one_process_gives(tmp_path: Path, any_size: None) -> None:
    path = messy_log(tmp_path / "flows.log")
    assert parallel._pipelined(path, "auto", 2)
    pods = inventory(tmp_path)
    alone = generate_from_files([path], inventory=[pods], workers=1, chunk_size=700)
    piped = generate_from_files([path], inventory=[pods], workers=2, chunk_size=700)
    assert piped.to_yaml() == alone.to_yaml() and len(alone.policies) > 10
    assert piped.report.to_dict() == alone.report.to_dict()
    assert piped.report.messages == alone.report.messages
    assert piped.warnings == alone.warnings
    assert multiprocessing.active_children() == []


def test_chunks_and_report_come_in_order(tmp_path: Path, any_size: None) -> None:
    path = messy_log(tmp_path / "flows.log")
    alone, piped = IngestReport(), IngestReport()
    expected = list(iter_flows([path], report=alone, chunk_size=500))
    got = list(parallel.iter_flows_parallel([path], report=piped, chunk_size=500, workers=2))
    assert len(got) == len(expected) > 3
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.equals(theirs)
    assert piped.to_dict() == alone.to_dict() and piped.messages == alone.messages


def test_strict_names_the_same_line(tmp_path: Path, any_size: None) -> None:
    path = messy_log(tmp_path / "flows.log")
    for workers in (1, 2):
        report = IngestReport(strict=True)
        with pytest.raises(InputError) as error:
            list(parallel.iter_flows_parallel([path], report=report, workers=workers))
        assert error.value.line == 41 and error.value.source == str(path)
    assert multiprocessing.active_children() == []


def test_stopping_early_leaves_no_process(tmp_path: Path, any_size: None) -> None:
    path = messy_log(tmp_path / "flows.log", 6000)
    chunks = parallel.iter_flows_parallel([path], report=IngestReport(), chunk_size=200, workers=2)
    assert len(next(chunks)) > 0
    chunks.close()  # type: ignore[attr-defined]
    assert multiprocessing.active_children() == []


def test_which_files_a_worker_reads(tmp_path: Path) -> None:
    path = generate.write("aws-vpc", 200, tmp_path / "flows.log")
    assert not parallel._pipelined(path, "auto", 2)  # under PIPELINE_MIN_BYTES
    packed = tmp_path / "flows.log.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    csv = generate.write("csv", 200, tmp_path / "flows.csv")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "PIPELINE_MIN_BYTES", 0)
        assert parallel._pipelined(path, "auto", 2)
        assert not parallel._pipelined(path, "auto", 1)  # --workers 1: off
        assert parallel._pipelined(packed, "auto", 2)  # decompressed there, as here
        assert not parallel._pipelined(csv, "auto", 2)
        assert not parallel._pipelined(csv, "hubble", 2)


def test_a_worker_that_dies_is_a_clear_error() -> None:
    class Dead:
        exitcode = -9

        def is_alive(self) -> bool:
            return False

    handover = multiprocessing.get_context("spawn").Queue()
    with pytest.raises(NetpolgenError, match="stopped unexpectedly") as error:
        parallel._next_handover(handover, Dead(), "flows.log")
    assert "--workers 1" in (error.value.hint or "")
