"""Hubble JSON lines: envelopes, bare flows, verdicts, direction, identities, duplicates."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from netpolgen.errors import InputError
from netpolgen.flows import validate_flows
from netpolgen.ingest import hubble
from tests.ingest.helpers import DATA, balanced, read, row

EDGE = DATA / "hubble-edge-cases.jsonl"


@pytest.fixture(scope="module")
def edge() -> tuple[pd.DataFrame, object]:
    return read(EDGE)


def test_accounting_is_balanced_and_names_reasons(edge) -> None:  # type: ignore[no-untyped-def]
    flows, report = edge
    validate_flows(flows)
    assert report.formats == {str(EDGE): "hubble"}
    # node_status and lost_events lines are not flow records: 25 lines, 23 records.
    assert report.records_read == 23
    assert balanced(report)
    assert report.skipped == {"line is not valid JSON": 1}
    assert report.filtered == {
        "flow without IP addresses (L2 event, socket trace, field mask)": 1,
        "Cilium health check": 1,
        "dropped by the datapath, not by policy": 2,
        "duplicate observation of a connection": 1,
    }
    assert any(":22: skipped: line is not valid JSON" in m for m in report.messages)
    assert any("7 lost event(s)" in m for m in report.messages)


def test_same_connection_at_two_observation_points_counts_once(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    request = row(flows, src_port=40000, dst_port=8080)
    assert request["count"] == 1
    assert request["time"] == pd.Timestamp("2024-05-01T10:00:00.000000001Z")


def test_direction_from_tcp_flags_is_reply_and_reply(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    assert not row(flows, src_port=40000, dst_port=8080)["is_reply"]  # SYN
    assert row(flows, src_port=8080, dst_port=40000)["is_reply"]  # SYN+ACK
    assert row(flows, src_port=8080, dst_port=40016)["is_reply"]  # deprecated "reply": true
    assert not row(flows, dst_port=53)["is_reply"]  # explicit is_reply false


def test_verdicts(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    assert row(flows, dst_port=53)["verdict"] == "allowed"  # REDIRECTED to the DNS proxy
    assert row(flows, dst_port=9090)["verdict"] == "allowed"  # AUDIT: observed passing
    assert row(flows, dst_port=5432)["verdict"] == "denied"  # DROPPED, POLICY_DENIED
    assert row(flows, src_port=40019)["verdict"] == "denied"  # ERROR
    assert not ((flows["src_port"] == 40005).fillna(False)).any()  # STALE_OR_UNROUTABLE_IP


def test_labels_lose_prefix_and_injected_labels(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    request = row(flows, src_port=40000, dst_port=8080)
    assert request["src_labels"] == "app=web"
    assert request["src_namespace"] == "shop"
    assert request["src_pod"] == "web-7d4b9c-abcde"
    assert request["src_kind"] == "pod"
    assert row(flows, dst_port=53)["dst_labels"] == "k8s-app=kube-dns"


def test_reserved_identities_become_kinds(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    assert row(flows, src_port=50000)["src_kind"] == "host"
    assert row(flows, src_port=50001)["src_kind"] == "node"
    assert row(flows, src_port=50002)["dst_kind"] == "world"
    assert row(flows, src_port=50003)["dst_kind"] == "world"  # kube-apiserver + world
    assert row(flows, src_port=50004)["dst_kind"] == "host"  # identity 1, labels masked
    imds = row(flows, src_port=50005)  # cidr: identity; IPv4 link-local is kept
    assert imds["dst_kind"] == "world" and imds["dst_ip"] == "169.254.169.254"
    assert pd.isna(row(flows, src_port=50000)["src_labels"])


def test_icmp_and_ipv6(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    icmp = flows[flows["protocol"] == "ICMP"]
    assert len(icmp) == 2
    assert icmp["dst_port"].isna().all() and icmp["src_port"].isna().all()
    assert sorted(icmp["is_reply"].tolist()) == [False, True]  # echo request / omitted type 0
    v6 = row(flows, src_ip="fd00:10:1::a")
    assert v6["dst_ip"] == "fd00:10:1::14" and v6["dst_port"] == 8080
    assert not flows["dst_ip"].isin(["ff02::2"]).any()  # router solicitation: noise


def test_cri_prefixed_line_is_read(edge) -> None:  # type: ignore[no-untyped-def]
    flows, _ = edge
    assert row(flows, src_port=40016)["dst_labels"] == "app=api"


def test_strict_makes_the_first_malformed_record_an_error() -> None:
    with pytest.raises(InputError) as error:
        read(EDGE, strict=True)
    assert error.value.line == 22
    assert str(EDGE) in str(error.value)


def test_gzip_and_explicit_format(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "flows.gz"
    path.write_bytes(gzip.compress(EDGE.read_bytes()))
    flows, report = read(path, "hubble")
    assert len(flows) == 17 and balanced(report)


def test_cri_partial_lines_are_joined(tmp_path) -> None:  # type: ignore[no-untyped-def]
    line = EDGE.read_text().splitlines()[0]
    half = len(line) // 2
    path = tmp_path / "cri.log"
    path.write_text(
        f"2024-05-01T10:00:00Z stdout P {line[:half]}\n"
        f"2024-05-01T10:00:00Z stdout F {line[half:]}\n"
    )
    flows, report = read(path)
    assert report.formats[str(path)] == "hubble"
    assert len(flows) == 1 and flows["dst_port"].iloc[0] == 8080


def test_chunks_stream(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from netpolgen.ingest.report import IngestReport
    from netpolgen.ingest.sources import open_source

    report = IngestReport()
    with open_source(EDGE) as (stream, name):
        chunks = list(hubble.read(stream, name, report, chunk_size=4))
    assert len(chunks) > 3
    assert all(len(c) <= 4 for c in chunks)


def test_sniff() -> None:
    assert hubble.sniff(EDGE.read_bytes()[:4000])
    assert hubble.sniff(b'{"node_status": {"state_change": "NODE_CONNECTED"}}\n')
    assert not hubble.sniff(b'{"jsonPayload": {"connection": {"src_ip": "1.2.3.4"}}}\n')
    assert not hubble.sniff(b"src_ip,dst_ip,dst_port\n")


def test_namespace_from_the_identity_labels_behind_a_proxy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Real shape (hubble-otel samples, Istio): identity labels but no namespace or pod_name.
    line = (
        '{"flow":{"time":"2021-11-10T10:40:56.4Z","verdict":"FORWARDED",'
        '"IP":{"source":"10.244.0.148","destination":"10.244.0.110","ipVersion":"IPv4"},'
        '"l4":{"TCP":{"source_port":46690,"destination_port":9080}},'
        '"source":{"identity":3418,"labels":["k8s:app=productpage",'
        '"k8s:io.kubernetes.pod.namespace=bookinfo","k8s:version=v1"]},'
        '"destination":{"identity":1,"labels":["reserved:host"]},"is_reply":false}}\n'
    )
    path = tmp_path / "proxy.jsonl"
    path.write_text(line)
    flows, _ = read(path)
    source = flows.iloc[0]
    assert (source["src_namespace"], source["src_labels"], source["src_kind"]) == (
        "bookinfo",
        "app=productpage,version=v1",
        "pod",
    )
