"""GCP VPC flow logs: LogEntry lines, bare jsonPayloads, GKE details, reporter duplicates."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from netpolgen.errors import InputError
from netpolgen.flows import validate_flows
from netpolgen.ingest import gcp_vpc
from tests.ingest.helpers import DATA, balanced, read, row

FLOWS = DATA / "gcp-vpc-flows.jsonl"


def test_accounting() -> None:
    flows, report = read(FLOWS)
    validate_flows(flows)
    assert report.formats[str(FLOWS)] == "gcp-vpc"
    assert report.records_read == 10 and report.records_used == 6 and balanced(report)
    assert report.skipped == {
        "line is not valid JSON": 1,
        "no jsonPayload.connection (not a VPC flow record)": 1,
        "connection.dest_port is not an integer 0-65535": 1,
    }
    assert report.filtered == {"duplicate observation of a connection": 1}


def test_reported_by_both_ends_counts_once_with_gke_pods() -> None:
    flows, _ = read(FLOWS)
    flow = row(flows, src_port=40000)
    assert flow["count"] == 1
    assert (flow["src_namespace"], flow["src_pod"]) == ("shop", "web-7d4b9c-abcde")
    assert (flow["dst_namespace"], flow["dst_pod"]) == ("shop", "api-5f6d7-xyz12")
    assert flow["src_kind"] == flow["dst_kind"] == "unknown"  # named, but no labels yet
    assert pd.isna(flow["src_labels"])  # GKE details carry no labels: the inventory does
    assert flow["bytes"] == 1776 and flow["packets"] == 12  # int64 as strings; not doubled
    assert flow["verdict"] == "allowed"  # no disposition: observed traffic
    assert flow["time"] == pd.Timestamp("2024-05-01T10:00:00Z")  # start_time


def test_bare_payload_location_node_details() -> None:
    flows, _ = read(FLOWS)
    assert row(flows, dst_port=443)["dst_kind"] == "world"  # dest_location: outside
    node = row(flows, src_port=50000)
    assert node["src_kind"] == "node" and node["src_ip"] == "192.168.0.1"  # cluster only


def test_icmp_ipv6_disposition_and_timestamp_fallback() -> None:
    flows, _ = read(FLOWS)
    icmp = row(flows, protocol="ICMP")
    assert pd.isna(icmp["src_port"]) and pd.isna(icmp["dst_port"])
    assert row(flows, src_ip="fd00:10:1::a")["verdict"] == "denied"
    late = row(flows, dst_port=9090)
    assert late["time"] == pd.Timestamp("2024-05-01T10:01:00Z") and late["bytes"] == 99


def test_strict() -> None:
    with pytest.raises(InputError) as error:
        read(FLOWS, strict=True)
    assert error.value.line == 7


def test_json_array_export(tmp_path) -> None:  # type: ignore[no-untyped-def]
    entries = [json.loads(line) for line in FLOWS.read_text().splitlines()[:2]]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(entries, indent=2))
    flows, report = read(path)
    assert report.formats[str(path)] == "gcp-vpc"
    assert len(flows) == 1 and report.records_read == 2


def test_sniff() -> None:
    assert gcp_vpc.sniff(FLOWS.read_bytes())
    bare = b'{"connection": {"src_ip": "10.0.0.1", "dest_ip": "10.0.0.2", "protocol": 6}}\n'
    assert gcp_vpc.sniff(bare)
    assert not gcp_vpc.sniff(b'{"flow": {"verdict": "FORWARDED"}}\n')


def test_gke_dataplane_v2_policy_action_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = [
        {
            "connection": {"src_ip": "10.1.0.10", "dest_ip": "10.1.1.20", "src_port": 41000,
                           "dest_port": 8080, "protocol": "tcp", "direction": "ingress"},
            "disposition": "allow",
            "policies": [{"kind": "NetworkPolicy", "name": "api", "namespace": "shop"}],
            "src": {"pod_name": "web-1", "pod_namespace": "shop", "workload_kind": "Deployment",
                    "workload_name": "web"},
            "dest": {"pod_name": "api-1", "pod_namespace": "shop"},
            "count": 3,
            "timestamp": "2024-05-01T10:00:00.5Z",
        },
        {
            "connection": {"src_ip": "10.1.0.10", "dest_ip": "10.1.1.30", "src_port": 41001,
                           "dest_port": 5432, "protocol": "tcp", "direction": "egress"},
            "disposition": "deny",
            "src": {"pod_name": "web-1", "pod_namespace": "shop"},
            "dest": {"node_name": "node-2"},
            "count": 1,
            "timestamp": "2024-05-01T10:00:01Z",
        },
    ]  # fmt: skip
    path = tmp_path / "policy_action.log"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    flows, report = read(path)
    assert report.formats[str(path)] == "gcp-vpc" and balanced(report)
    allowed = row(flows, dst_port=8080)
    assert allowed["verdict"] == "allowed" and allowed["count"] == 3
    assert (allowed["src_namespace"], allowed["src_pod"], allowed["dst_pod"]) == (
        "shop",
        "web-1",
        "api-1",
    )
    assert allowed["time"] == pd.Timestamp("2024-05-01T10:00:00.5Z")
    denied = row(flows, dst_port=5432)
    assert denied["verdict"] == "denied" and denied["dst_kind"] == "node"
