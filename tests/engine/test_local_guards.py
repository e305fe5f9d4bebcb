"""Parts of a file parsed in worker processes get the same guards as a sequential read."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

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
