"""Parallel parsing over byte ranges gives the chunks and the report of a sequential read."""

from __future__ import annotations

from pathlib import Path

import pytest

import netpolgen.engine.local as parallel
from netpolgen.errors import InputError
from netpolgen.generator import generate, generate_from_files
from netpolgen.ingest import hubble, load_flows
from netpolgen.ingest.report import IngestReport

HEADER = "src_namespace,src_labels,dst_namespace,dst_labels,dst_port,time\n"


def write_flows(path: Path, rows: int, bad_every: int = 0) -> Path:
    lines = [HEADER]
    for i in range(rows):
        port = "eighty" if bad_every and i % bad_every == 5 else str(80 + i % 7)
        lines.append(f"shop,app=web{i % 3},shop,app=db{i % 5},{port},{1767225600 + i}\n")
    path.write_text("".join(lines))
    return path


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1500)
    monkeypatch.setattr(hubble, "CHUNK_BYTES", 1500)  # Hubble's parts are its byte chunks
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)


def test_ranges_cover_the_file_at_line_ends(tmp_path: Path, small_ranges: None) -> None:
    path = write_flows(tmp_path / "f.csv", 400)
    plan = parallel._plan(path, "auto", 2, summarize=True)
    assert plan is not None and len(plan.ranges) > 5
    data = path.read_bytes()
    assert plan.header == data[: data.index(b"\n") + 1]
    assert plan.ranges[0][0] == len(plan.header) and plan.ranges[-1][1] == len(data)
    for (_, end), (start, _) in zip(plan.ranges, plan.ranges[1:], strict=False):
        assert end == start and data[end - 1 : end] == b"\n"


def test_parallel_read_equals_sequential(tmp_path: Path, small_ranges: None) -> None:
    path = write_flows(tmp_path / "f.csv", 400, bad_every=37)
    assert parallel._plan(path, "auto", 2, summarize=True) is not None
    sequential = IngestReport()
    expected = generate(load_flows(path, report=sequential), report=sequential)
    result = generate_from_files([path], workers=2, chunk_size=50)
    assert result.to_yaml() == expected.to_yaml()
    assert result.report.to_dict() == sequential.to_dict()
    # One message per part and reason (a sequential read gives one per chunk), each naming a
    # bad line of the whole file.
    assert result.report.messages[0] == sequential.messages[0]
    bad_lines = {i + 2 for i in range(400) if i % 37 == 5}
    skips = [m for m in result.report.messages if ": skipped: " in m]
    assert skips and {int(m.split(":")[-3]) for m in skips} <= bad_lines


def test_strict_error_names_the_line_in_the_whole_file(tmp_path: Path, small_ranges: None) -> None:
    path = write_flows(tmp_path / "f.csv", 400, bad_every=300)
    with pytest.raises(InputError) as sequential:
        load_flows(path, strict=True)
    with pytest.raises(InputError) as parallel_error:
        generate_from_files([path], workers=2, chunk_size=50, strict=True)
    assert parallel_error.value.line == sequential.value.line == 7


@pytest.mark.parametrize("chunk_size", [97, 1000])
def test_hubble_in_parallel_cuts_chunks_where_one_process_does(
    tmp_path: Path, small_ranges: None, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generate

    monkeypatch.setattr(hubble, "CHUNK_BYTES", 150_000)  # ~75 lines a part
    path = generate.write("hubble", 1500, tmp_path / "flows.jsonl")
    with path.open("a") as out:  # a bad line and a lost-events line in the middle of a part
        out.write('{"flow": {"time": "yesterday", "IP": {"source": "10.0.0.1"}}\n')
        out.write("not json\n")
        out.write('{"lost_events": {"num_events_lost": 3}}\n')
    path.write_text(path.read_text() + path.read_text()[:40_000].rsplit("\n", 1)[0] + "\n")
    one = generate_from_files([path], workers=1, chunk_size=chunk_size)
    two = generate_from_files([path], workers=2, chunk_size=chunk_size)
    assert parallel._plan(path, "auto", 2) is not None
    assert two.to_yaml() == one.to_yaml()
    assert two.report.to_dict() == one.report.to_dict()
    assert sorted(two.report.messages) == sorted(one.report.messages)
