"""Parts of a file parsed in worker processes get the same guards as a sequential read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import netpolgen.engine.local as parallel
from netpolgen.ingest import hubble, load_flows
from netpolgen.ingest.report import IngestReport
from tests.cli.test_bad_input import hubble_line


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1500)
    monkeypatch.setattr(hubble, "CHUNK_BYTES", 1500)  # Hubble's parts are its byte chunks
    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)


def test_parallel_hubble_has_the_line_limit_and_the_name_checks(
    tmp_path: Path, small_ranges: None
) -> None:
    lines = []
    for i in range(120):
        changes: dict[str, object] = {
            "time": f"2024-05-01T10:{i // 60:02d}:{i % 60:02d}Z",
            "IP": {"source": f"10.1.0.{i % 200}", "destination": "10.1.0.250"},
        }
        if i % 17 == 3:
            changes["source"] = {"namespace": "../../etc"}
        if i % 23 == 4:
            changes["destination"] = {"labels": ["k8s:app=api", "k8s:bad key=1"]}
        lines.append(hubble_line(**changes))
        if i % 31 == 7:
            lines.append(json.dumps({"flow": {"IP": "x" * 3000}}) + "\n")
    path = tmp_path / "flows.jsonl"
    path.write_text("".join(lines))

    sequential = IngestReport(max_line_bytes=1000)
    expected = load_flows(path, report=sequential)
    report = IngestReport(max_line_bytes=1000)
    chunks = list(parallel.iter_flows_parallel([path], report=report, chunk_size=50, workers=2))
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), expected)
    assert report.skipped == sequential.skipped and report.filtered == sequential.filtered
    assert report.notes == sequential.notes
    assert report.skipped["line is longer than 1000 bytes (--max-line-bytes)"] == 4
    assert report.skipped["src namespace is not a valid namespace name"] > 0
    assert report.notes["invalid labels left out of selectors"] > 0
    long_lines = {n for n, line in enumerate(lines, 1) if len(line) > 1000}
    located = [m for m in report.messages if "longer than" in m]
    assert located and {int(m.split(":")[-3]) for m in located} <= long_lines


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.integers(0, 300), max_size=40),
    last_ending=st.booleans(),
    limit=st.sampled_from([1, 4, 16, 64, 100, 299, 300, 301]),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_a_part_is_checked_for_long_lines_as_a_whole_read_would_be(
    lines: list[int], last_ending: bool, limit: int, cut: tuple[float, float],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    """A worker finds a line longer than --max-line-bytes in its part by reading only the end of
    each window (engine.parts._long_line_in), and has_long_line does the same on bytes: both say
    what splitting the part at its line ends says, for lines of every length around the limit
    and parts that start and end anywhere."""
    from netpolgen.engine.parts import _long_line_in
    from netpolgen.ingest.limits import has_long_line

    data = b"\n".join(b"x" * n for n in lines) + (b"\n" if last_ending else b"")
    start = int(len(data) * min(cut))
    end = int(len(data) * max(cut))
    path = tmp_path_factory.mktemp("part") / "flows.jsonl"
    path.write_bytes(data)
    with path.open("rb", buffering=0) as handle:
        found = _long_line_in(handle, start, end, limit)
    part = data[start:end]
    expected = any(len(line) > limit for line in part.split(b"\n"))
    assert found == expected
    assert has_long_line(part, limit) == expected


def test_the_window_tail_is_not_all_a_long_line_check_reads() -> None:
    """A window whose last 64 KiB hold no line end is read whole (the line may end before)."""
    import tempfile

    from netpolgen.engine.parts import _long_line_in

    limit = 200_000
    data = b"x" * 100_000 + b"\n" + b"y" * 150_000 + b"\n" + b"z" * 10
    with tempfile.TemporaryFile() as handle:
        handle.write(data)
        handle.flush()
        assert not _long_line_in(handle, 0, len(data), limit)
        assert _long_line_in(handle, 0, len(data), 120_000)
