"""AWS VPC flow logs: default v2, custom formats with a header, Parquet."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from netpolgen.errors import InputError
from netpolgen.flows import validate_flows
from netpolgen.ingest import aws_vpc
from tests.ingest.helpers import DATA, balanced, read, row

V2 = DATA / "aws-v2-default.log"
V5 = DATA / "aws-v5-custom.log"


def test_default_v2_without_header() -> None:
    flows, report = read(V2)
    validate_flows(flows)
    assert report.formats[str(V2)] == "aws-vpc"
    assert report.records_read == 9 and balanced(report)
    assert report.records_used == 4
    accepted = row(flows, src_port=40000)
    assert (accepted["src_ip"], accepted["dst_ip"], accepted["dst_port"]) == (
        "10.1.0.10",
        "10.1.0.20",
        8080,
    )
    assert accepted["verdict"] == "allowed" and accepted["protocol"] == "TCP"
    assert accepted["bytes"] == 840 and accepted["packets"] == 10
    assert accepted["time"] == pd.Timestamp("2024-05-01T10:00:00Z")
    assert pd.isna(accepted["is_reply"])  # v2 has no tcp-flags
    assert accepted["src_kind"] == "unknown"  # IP only: the inventory resolves it
    assert row(flows, src_port=40001)["verdict"] == "denied"  # REJECT


def test_nodata_skipdata_and_malformed_lines_are_counted() -> None:
    _, report = read(V2)
    assert report.skipped == {
        "NODATA record (no traffic in the interval)": 1,
        "SKIPDATA record (records lost during the interval)": 1,
        "expected 14 fields, found 11": 1,
        "dst address is not an IP address": 1,
        "dstport is not an integer 0-65535": 1,
    }
    assert any(m.endswith("the data is incomplete") for m in report.messages)
    assert any(":7: skipped: expected 14 fields" in m for m in report.messages)


def test_strict_errors_on_malformed_but_not_on_nodata(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as error:
        read(V2, strict=True)
    assert error.value.line == 7
    lines = V2.read_text().splitlines()
    clean = tmp_path / "clean.log"
    clean.write_text("\n".join(lines[:6]) + "\n")
    flows, report = read(clean, strict=True)  # NODATA/SKIPDATA are not malformed
    assert len(flows) == 4 and report.records_skipped == 2


def test_icmp_has_no_ports_and_ipv6_is_kept() -> None:
    flows, _ = read(V2)
    icmp = row(flows, protocol="ICMP")
    assert pd.isna(icmp["src_port"]) and pd.isna(icmp["dst_port"])
    assert row(flows, src_ip="fd00:10:1::a")["dst_ip"] == "fd00:10:1::14"


def test_custom_format_prefers_packet_addresses_and_merges_both_enis() -> None:
    flows, report = read(V5)
    assert balanced(report)
    assert report.filtered == {"duplicate observation of a connection": 1}
    request = row(flows, src_port=40000)
    # srcaddr/dstaddr are the nodes' ENI addresses; pkt-* are the pods'.
    assert (request["src_ip"], request["dst_ip"]) == ("10.1.0.10", "10.1.1.20")
    assert not request["is_reply"]  # SYN
    assert request["bytes"] == 840  # both ENIs count the same packets: not summed
    assert row(flows, src_port=8080)["is_reply"]  # SYN+ACK (18)


def test_custom_format_edge_cases() -> None:
    flows, _ = read(V5)
    s3 = row(flows, dst_port=443)  # double space in the record; pkt-dst-aws-service S3
    assert s3["dst_ip"] == "52.95.128.179" and s3["dst_kind"] == "world"
    assert not s3["is_reply"]  # flags 3 = SYN+FIN
    fallback = row(flows, src_port=40200)  # pkt-* are '-': srcaddr/dstaddr are used
    assert fallback["dst_ip"] == "10.1.1.20"
    assert fallback["time"] == pd.Timestamp("2024-05-01T10:00:00Z")  # milliseconds epoch
    assert pd.isna(fallback["is_reply"])  # flags 0: a bare ACK says nothing
    udp = row(flows, src_port=40300)
    assert udp["protocol"] == "UDP" and pd.isna(udp["is_reply"])  # tcp-flags '-'


def test_header_without_addresses_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.log"
    path.write_text("version srcport dstport srcaddr-x\n2 1 2 3\n")
    with pytest.raises(InputError) as error:
        read(path, "aws-vpc")
    assert error.value.line == 1 and "address" in str(error.value)


def test_gzip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "123_vpcflowlogs_eu-west-1_fl-1_20240501T1000Z_abc.log.gz"
    path.write_bytes(gzip.compress(V5.read_bytes()))
    flows, _ = read(path)
    assert len(flows) == 5


def test_parquet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame(
        {
            "version": [5, 5, 2],
            "srcaddr": ["192.168.0.1", "192.168.0.2", None],
            "dstaddr": ["192.168.0.2", "192.168.0.1", None],
            "pkt_srcaddr": ["10.1.0.10", "10.1.1.20", None],
            "pkt_dstaddr": ["10.1.1.20", "10.1.0.10", None],
            "srcport": [40000, 8080, None],
            "dstport": [8080, 40000, None],
            "protocol": [6, 6, None],
            "packets": [10, 8, None],
            "bytes": [840, 640, None],
            "start": [1714557600, 1714557600, 1714557600],
            "end": [1714557660, 1714557660, 1714557660],
            "action": ["ACCEPT", "ACCEPT", None],
            "tcp_flags": [2, 18, None],
            "log_status": ["OK", "OK", "NODATA"],
        }
    )
    path = tmp_path / "flows.parquet"
    frame.to_parquet(path)
    flows, report = read(path)
    assert report.formats[str(path)] == "aws-vpc"
    assert report.records_read == 3 and report.records_used == 2 and balanced(report)
    request = row(flows, dst_port=8080)
    assert (request["src_ip"], request["dst_ip"]) == ("10.1.0.10", "10.1.1.20")
    assert not request["is_reply"]
    # Parquet read from a non-seekable stream (gzip) works too.
    gz = tmp_path / "flows.parquet.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert len(read(gz)[0]) == 2


def test_sniff() -> None:
    assert aws_vpc.sniff(V2.read_bytes())
    assert aws_vpc.sniff(V5.read_bytes())
    assert aws_vpc.sniff(b"PAR1\x00\x00")
    assert not aws_vpc.sniff(b"src_ip,dst_ip,dst_port\n1,2,3\n")
    assert not aws_vpc.sniff(b"hello world\n")


def test_a_bad_start_or_end_time_skips_the_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # "end" is only checked when every record has its start: it must still be checked.
    good = (
        "2 123456789012 eni-1 10.1.0.10 10.1.0.20 40000 8080 6 10 840 1714557600 1714557660 "
        "ACCEPT OK"
    )
    bad_end, bad_start = good.replace("1714557660", "soon"), good.replace("1714557600", "x1")
    for lines, skipped in (
        ([good, bad_end], {"end is not a Unix time": 1}),
        ([good, bad_end, bad_start], {"end is not a Unix time": 1, "start is not a Unix time": 1}),
    ):
        path = tmp_path / "times.log"
        path.write_text("\n".join(lines) + "\n")
        flows, report = read(path)
        assert report.skipped == skipped
        assert len(flows) == 1 and balanced(report)
        assert f"{path}:2: skipped: end is not a Unix time" in report.messages


def test_noise_addresses_are_filtered_and_counted_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A record to a multicast group, another from an IPv6 link-local address (NDP), a bad one
    # to a multicast group (skipped, not filtered: it is counted once), and two real ones.
    path = tmp_path / "noise.log"
    path.write_text(
        "2 123 eni-1 10.0.0.1 10.0.0.2 40000 80 6 5 500 1714557600 1714557660 ACCEPT OK\n"
        "2 123 eni-1 10.0.0.1 224.0.0.251 5353 5353 17 1 90 1714557600 1714557660 ACCEPT OK\n"
        "2 123 eni-1 fe80::1 fd00::2 0 0 58 1 90 1714557600 1714557660 ACCEPT OK\n"
        "2 123 eni-1 10.0.0.1 224.0.0.251 x 5353 17 1 90 1714557600 1714557660 ACCEPT OK\n"
        "2 123 eni-1 10.0.0.3 10.0.0.2 40001 80 6 5 500 1714557600 1714557660 ACCEPT OK\n"
    )
    flows, report = read(path)
    assert sorted(flows["src_ip"]) == ["10.0.0.1", "10.0.0.3"]
    assert report.records_read == 5 and report.records_used == 2 and balanced(report)
    assert report.filtered == {"IPv6 link-local, multicast or broadcast address": 2}
    assert report.skipped == {"srcport is not an integer 0-65535": 1}
