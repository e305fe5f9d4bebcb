"""Line numbers are exact after a byte-order mark, CRLF line ends, blank lines and (CSV) quoted
cells that span lines, in every line-based reader (issue 21).

What this encodes: a UTF-8 BOM is written by Windows tools and is part of no format; CRLF ends
come from the same; RFC 4180 (2.6) lets a quoted cell hold line breaks; the Hubble, GCP and
AWS VPC text readers and the CSV reader skip blank lines. A malformed record is named by the
physical line it starts on, which an editor shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from netpolgen.errors import InputError
from netpolgen.ingest import load_flows
from netpolgen.ingest.report import IngestReport
from tests.conftest import SAMPLE_FLOWS

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"
BOM = b"\xef\xbb\xbf"


def crlf(lines: list[bytes]) -> bytes:
    return b"".join(line.rstrip(b"\r\n") + b"\r\n" for line in lines)


def strict_error_line(path: Path) -> int | None:
    with pytest.raises(InputError) as caught:
        load_flows(path, strict=True)
    return caught.value.line


def test_csv_after_bom_crlf_blank_lines_and_quoted_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "flows.csv"
    path.write_bytes(BOM + crlf([
        b"src_namespace,src_labels,dst_namespace,dst_labels,dst_port",  # 1
        b'shop,"app=web,tier=a",shop,app=api,8080',                     # 2
        b"",                                                             # 3
        b'shop,"app=web,',                                               # 4 (a cell spans 4-6)
        b"",                                                             # 5 (inside the cell)
        b'tier=a",shop,app=api,8080',                                    # 6
        b"   ",                                                          # 7
        b"shop,app=web,shop,app=api,not-a-port",                         # 8
    ]))  # fmt: skip
    assert strict_error_line(path) == 8


def test_csv_quoted_line_breaks_across_read_blocks(tmp_path: Path) -> None:
    """Quote parity is carried from one read block to the next (blocks are 1 MiB)."""
    row = b'shop,"app=web,\ntier=a",shop,app=api,8080\n'
    count = (3 << 20) // len(row)
    path = tmp_path / "flows.csv"
    header = b"src_namespace,src_labels,dst_namespace,dst_labels,dst_port\n"
    path.write_bytes(header + row * count + b"shop,app=web,shop,app=api,x\n")
    assert strict_error_line(path) == 2 + 2 * count
    # Without --strict the bad cell, in a later read block than the first, skips its row only
    # (Arrow once inferred dst_port as int64 from the first block and failed the whole file).
    report = IngestReport()
    assert len(load_flows(path, report=report)) == count
    assert sum(report.skipped.values()) == 1


def test_hubble_after_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    flows = (SAMPLE_FLOWS / "online-shop.hubble.jsonl").read_bytes().splitlines()[:3]
    path = tmp_path / "flows.jsonl"
    path.write_bytes(BOM + crlf([*flows, b"", b"  ", b'{"flow": {"IP": ', flows[0]]))
    assert strict_error_line(path) == 6


def test_gcp_after_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    lines = (DATA / "gcp-vpc-flows.jsonl").read_bytes().splitlines()
    good = [line for line in lines if b'"reporter"' in line][:2]
    path = tmp_path / "gcp.jsonl"
    path.write_bytes(BOM + crlf([good[0], b"", good[1], b"", b"", b"{not json"]))
    assert strict_error_line(path) == 6


def test_aws_after_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    lines = (DATA / "aws-v5-custom.log").read_bytes().splitlines()
    bad = lines[1].replace(b"10.1.0.10", b"not-an-ip", 1)  # pkt-srcaddr, which v5 uses
    path = tmp_path / "vpc.log"
    path.write_bytes(BOM + crlf([lines[0], lines[1], b"", lines[2], b"", bad]))
    assert strict_error_line(path) == 6


def test_azure_document_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "PT1H.json"
    path.write_bytes(BOM + (DATA / "azure-vnet-v4.json").read_bytes())
    assert len(load_flows(path)) == len(load_flows(DATA / "azure-vnet-v4.json"))


def _flows_case(name: str) -> tuple[str, list[bytes], int]:
    """(file name, lines, the line the error must name): each reader's own records with a
    blank line first and one in the middle, and a broken record last."""
    if name == "csv":
        header = b"src_namespace,src_labels,dst_namespace,dst_labels,dst_port"
        spanning = b'shop,"app=web,\ntier=a",shop,app=api,8080'  # a quoted cell over two lines
        lines = [header, b"", spanning, b"", b"shop,app=web,shop,app=api,x"]
        return "flows.csv", lines, 6
    if name == "hubble":
        good = (SAMPLE_FLOWS / "online-shop.hubble.jsonl").read_bytes().splitlines()[:2]
        return "flows.jsonl", [b"", good[0], b"", good[1], b'{"flow": {'], 5
    if name == "gcp":
        lines = (DATA / "gcp-vpc-flows.jsonl").read_bytes().splitlines()
        good = [line for line in lines if b'"reporter"' in line][:2]
        return "gcp.jsonl", [b"", good[0], b"  ", good[1], b"{not json"], 5
    if name == "aws":
        lines = (DATA / "aws-v5-custom.log").read_bytes().splitlines()
        bad = lines[1].replace(b"10.1.0.10", b"not-an-ip", 1)
        return "vpc.log", [lines[0], b"", lines[1], b"", bad], 5
    assert name == "azure"  # one JSON document: the line of its syntax error
    lines = (DATA / "azure-vnet-v4.json").read_bytes().splitlines()
    lines[5] += b" }}"  # line 6 of the original, 7 after the blank line in front
    return "PT1H.json", [b"", *lines], 7


@pytest.mark.parametrize("reader", ["csv", "hubble", "gcp", "aws", "azure"])
def test_every_flow_reader_names_the_line_after_a_bom_crlf_and_blank_lines(
    tmp_path: Path, reader: str
) -> None:
    name, lines, expected = _flows_case(reader)
    path = tmp_path / name
    path.write_bytes(BOM + crlf(lines))
    assert strict_error_line(path) == expected


@pytest.mark.parametrize("syntax", ["json", "yaml"])
def test_inventory_errors_name_the_line_after_a_bom_crlf_and_blank_lines(
    tmp_path: Path, syntax: str
) -> None:
    from netpolgen.cluster.inventory import load_inventory
    from netpolgen.errors import InventoryError

    if syntax == "json":
        lines = (SAMPLE_FLOWS / "online-shop.inventory.json").read_bytes().splitlines()
        lines[9] += b" oops"  # line 10 of the original
    else:
        lines = [b"apiVersion: v1", b"kind: List", b"items:", b"  - kind: Pod", b"    metadata:"]
        lines.append(b"      name: a: b")  # line 6 of the original: a mapping in a value
    path = tmp_path / f"inventory.{syntax}"
    path.write_bytes(BOM + crlf([b"", *lines]))
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert caught.value.line == (11 if syntax == "json" else 7), str(caught.value)
