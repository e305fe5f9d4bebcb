from __future__ import annotations

import ipaddress

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from netpolgen import GenerateOptions, generate
from netpolgen.flows import conform_flows
from netpolgen.policy.model import IPBlock, PortSpec
from netpolgen.policy.peers import merge_addresses
from netpolgen.policy.synthesize import collapse_port_runs
from tests.k8s import assert_valid_policies


def test_adjacent_addresses_merge_exactly_and_nothing_wider_by_default() -> None:
    blocks = merge_addresses(["192.0.2.0", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.9"])
    assert blocks == [IPBlock("192.0.2.0/30"), IPBlock("192.0.2.9/32")]


@given(st.sets(st.integers(0, 255), min_size=1, max_size=40))
def test_exact_merging_covers_exactly_the_addresses(last_octets: set[int]) -> None:
    addresses = {f"198.51.100.{i}" for i in last_octets}
    blocks = merge_addresses(sorted(addresses))
    covered = {str(a) for b in blocks for a in ipaddress.ip_network(b.cidr)}
    assert covered == addresses


def test_widening_keeps_cluster_addresses_out_with_except() -> None:
    blocks = merge_addresses(
        ["10.20.0.7", "10.20.0.99"], prefix_v4=24, protected=["10.20.0.50", "10.99.0.1"]
    )
    assert blocks == [IPBlock("10.20.0.0/24", ("10.20.0.50/32",))]


def test_ipv6_widening() -> None:
    blocks = merge_addresses(["2001:db8::1", "2001:db8::ff"], prefix_v6=120)
    assert blocks == [IPBlock("2001:db8::/120")]


def test_port_runs_collapse_into_end_port_above_the_threshold() -> None:
    ports = [PortSpec("TCP", p) for p in (8000, 8001, 8002, 8003, 9000)] + [PortSpec("UDP", 8004)]
    assert collapse_port_runs(ports, 3) == (
        PortSpec("TCP", 8000, 8003),
        PortSpec("TCP", 9000),
        PortSpec("UDP", 8004),
    )
    assert collapse_port_runs(ports, 0) == tuple(sorted(ports, key=lambda s: s.sort_key()))
    assert collapse_port_runs(ports, 5) == tuple(sorted(ports, key=lambda s: s.sort_key()))


def test_outside_peers_and_well_known_addresses_in_policies() -> None:
    rows = [
        {"src_namespace": "a", "src_labels": "app=x", "src_kind": "pod", "src_ip": "10.1.0.5",
         "dst_ip": ip, "dst_kind": "world", "dst_port": port, "protocol": proto}
        for ip, port, proto in [
            ("203.0.113.10", 443, "TCP"), ("203.0.113.11", 443, "TCP"),
            ("169.254.20.10", 53, "UDP"), ("169.254.169.254", 80, "TCP"),
        ]
    ]  # fmt: skip
    result = generate(conform_flows(pd.DataFrame(rows)), GenerateOptions(allow_dns=False))
    text = result.to_yaml()
    assert_valid_policies(text)
    assert "203.0.113.10/31" in text
    notes = dict(result.policies[0].annotations)["netpolgen.io/ip-blocks"]
    assert "169.254.20.10/32: NodeLocal DNSCache" in notes
    assert "169.254.169.254/32: cloud instance metadata service" in notes
    wide = generate(
        conform_flows(pd.DataFrame(rows)), GenerateOptions(allow_dns=False, cidr_prefix_v4=16)
    ).to_yaml()
    assert "203.0.0.0/16" in wide
