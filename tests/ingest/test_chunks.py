"""Chunked reading gives the same flow table as one chunk: duplicates merge across boundaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from netpolgen.ingest import iter_flows
from netpolgen.ingest.report import IngestReport
from tests.cluster import fixtures as cluster


@pytest.mark.parametrize("fmt", ["hubble", "aws-vpc", "gcp-vpc", "azure"])
def test_chunk_size_does_not_change_the_result(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "flows"
    path.write_text(cluster.RENDERERS[fmt]())

    def read(chunk_size: int) -> tuple[pd.DataFrame, IngestReport]:
        report = IngestReport()
        chunks = list(iter_flows([str(path)], report=report, chunk_size=chunk_size))
        return pd.concat(chunks, ignore_index=True), report

    whole, whole_report = read(1_000_000)
    for size in (1, 2, 3, 5):
        chunked, report = read(size)
        columns = ["src_ip", "dst_ip", "src_port", "dst_port", "is_reply", "count"]
        assert len(chunked) == len(whole), size
        pd.testing.assert_frame_equal(
            chunked[columns].reset_index(drop=True), whole[columns].reset_index(drop=True)
        )
        assert report.records_used == whole_report.records_used
        assert report.filtered == whole_report.filtered


def test_several_files_of_different_formats_make_one_valid_table(tmp_path: Path) -> None:
    from netpolgen.flows import validate_flows
    from netpolgen.ingest import load_flows

    paths = []
    for fmt in ("hubble", "aws-vpc", "azure"):
        path = tmp_path / fmt
        path.write_text(cluster.RENDERERS[fmt]())
        paths.append(str(path))
    udp = tmp_path / "udp.csv"
    udp.write_text("src_ip,dst_ip,protocol,dst_port\n10.1.0.10,10.1.1.53,UDP,53\n")
    paths.append(str(udp))
    report = IngestReport()
    flows = load_flows(paths, report=report)
    validate_flows(flows)
    assert set(report.formats.values()) == {"hubble", "aws-vpc", "azure", "csv"}
    assert set(flows["protocol"]) == {"TCP", "UDP"}
    # Many small chunks too.
    chunks = list(iter_flows(paths, chunk_size=2))
    validate_flows(load_flows(paths))
    assert len(chunks) > 4
