"""The Arrow fast path of the AWS text reader gives what the line-by-line path gives."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest

import netpolgen.ingest.aws_vpc as aws_vpc
from netpolgen.ingest import load_flows
from netpolgen.ingest.report import IngestReport

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate  # noqa: E402


def read(data: bytes, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple:  # type: ignore[type-arg]
    with monkeypatch.context() as patch:
        patch.setattr(aws_vpc, "_BLOCK", 2000)  # many blocks, fast and slow ones mixed
        if not fast:
            patch.setattr(aws_vpc, "_arrow_block", lambda *args: None)
        report = IngestReport()
        flows = load_flows(io.BytesIO(data), "aws-vpc", report=report, chunk_size=37)
    return flows, report


def messy(records: bytes) -> bytes:
    lines = records.split(b"\n")
    lines[40] = lines[40].replace(b" ", b"  ", 2)  # a double space (AWS docs have one)
    lines[90] = lines[90].replace(b" ", b"\t", 1)
    lines[130] = b"2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6"  # too few fields
    lines[170] = b"\xff\xfe not utf-8"
    lines[200] = b""
    lines[260] = lines[260] + b"\r"
    # Cells of regular lines: Arrow parses integer fields as integers, "-" as no value, and
    # splits a block with anything else in them again as text; both must read as lines do.
    # (Fields: version account-id interface-id srcaddr dstaddr srcport dstport protocol
    # packets bytes start end action log-status.)
    for number, field, value in [
        (300, 5, b"-"), (320, 6, b"1e3"), (340, 9, b"None"), (360, 8, b"-5"), (380, 5, b"70000"),
        (400, 10, b"-"), (420, 9, b"99999999999999999999"), (440, 10, b"1700000000000"),
        (460, 6, b"+443"), (480, 11, b"x"), (500, 10, b"-"), (501, 11, b"-"),
    ]:  # fmt: skip
        cells = lines[number].split(b" ")
        cells[field] = value
        lines[number] = b" ".join(cells)
    return b"\n".join(lines)


@pytest.mark.parametrize("header", [True, False])
def test_fast_and_line_paths_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, header: bool
) -> None:
    path = generate.write("aws-vpc", 600, tmp_path / "flows.log")
    data = path.read_bytes()
    if not header:
        data = data.split(b"\n", 1)[1]
    for variant in (data, messy(data)):
        fast, fast_report = read(variant, fast=True, monkeypatch=monkeypatch)
        slow, slow_report = read(variant, fast=False, monkeypatch=monkeypatch)
        pd.testing.assert_frame_equal(fast, slow)
        assert fast_report.to_dict() == slow_report.to_dict()
        assert fast_report.messages == slow_report.messages


def test_messages_keep_file_order_while_blocks_are_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Blocks are split on a thread of their own, ahead of the conversion: bad lines it finds
    # (and long lines the limiter finds) must still be reported in file order, every time.
    path = generate.write("aws-vpc", 600, tmp_path / "flows.log")
    lines = path.read_bytes().split(b"\n")
    lines[30] = b"2 123 eni-1 10.0.0.1 10.0.0.2 1 2 6"  # too few fields
    lines[300] = b"x" * 500  # over --max-line-bytes below
    lines[550] = b"\xff\xfe not utf-8"
    data = b"\n".join(lines)
    expected = [
        "<stream>:31: skipped: expected 14 fields, found 8",
        "<stream>:301: skipped: line is longer than 200 bytes (--max-line-bytes)",
        "<stream>:551: skipped: line is not UTF-8 text",
    ]
    for _ in range(3):
        with monkeypatch.context() as patch:
            patch.setattr(aws_vpc, "_BLOCK", 2000)
            report = IngestReport()
            load_flows(io.BytesIO(data), "aws-vpc", report=report, max_line_bytes=200)
        assert [m for m in report.messages if "skipped" in m] == expected
        assert report.records_read == 600 and sum(report.skipped.values()) == 3


def test_integer_fields_parsed_by_arrow_read_as_lines_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One block, all of it parsed as integers (no text fallback mixes in): range checks, "-"
    # and millisecond times must come out as the line-by-line path has them.
    path = generate.write("aws-vpc", 200, tmp_path / "flows.log")
    header, *lines = path.read_bytes().split(b"\n")
    for number, field, value in [
        (10, 5, b"-"), (20, 8, b"-5"), (30, 5, b"70000"), (40, 10, b"-"), (50, 10, b"-"),
        (50, 11, b"-"), (60, 10, b"1700000000000"), (70, 6, b"-0"), (80, 9, b"-"),
        (90, 11, b"99999999999"), (100, 6, b"0"),
    ]:  # fmt: skip
        cells = lines[number].split(b" ")
        cells[field] = value
        lines[number] = b" ".join(cells)
    data = b"\n".join(lines)
    fields = tuple(header.decode().replace("_", "-").split())
    parsed = aws_vpc._arrow_block(data, fields, 2)
    assert parsed is not None and str(parsed[0]["srcport"].dtype) == "Int64"  # typed, not text
    fast, fast_report = read(header + b"\n" + data, fast=True, monkeypatch=monkeypatch)
    slow, slow_report = read(header + b"\n" + data, fast=False, monkeypatch=monkeypatch)
    pd.testing.assert_frame_equal(fast, slow)
    assert fast_report.to_dict() == slow_report.to_dict()
    assert fast_report.messages == slow_report.messages
    assert sum(fast_report.skipped.values()) == 3  # -5 packets, port 70000, end before 2262
