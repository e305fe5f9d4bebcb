from __future__ import annotations

import pandas as pd

from netpolgen import GenerateOptions, generate
from netpolgen.flows import conform_flows
from netpolgen.policy.model import IPBlock, Peer, PortSpec, Rule
from netpolgen.selectors import LabelSelector
from tests.k8s import assert_valid_policies


def _pod(side: str, namespace: str, labels: str) -> dict[str, str]:
    return {f"{side}_namespace": namespace, f"{side}_labels": labels, f"{side}_kind": "pod"}


def test_cross_namespace_peers_ip_blocks_merging_and_unexpressible_flows() -> None:
    rows: list[dict[str, object]] = [
        {**_pod("src", "shop", "app=web"), **_pod("dst", "shop", "app=api"), "dst_port": 80},
        {**_pod("src", "shop", "app=web"), **_pod("dst", "shop", "app=api"), "dst_port": 81},
        {**_pod("src", "monitoring", "app=prom"), **_pod("dst", "shop", "app=api"), "dst_port": 80},
        {**_pod("src", "monitoring", "app=prom"), **_pod("dst", "shop", "app=api"), "dst_port": 81},
        {**_pod("src", "shop", "app=cron"), **_pod("dst", "shop", "app=api"), "dst_port": 80},
        {"src_ip": "198.51.100.4", "src_kind": "unknown", **_pod("dst", "shop", "app=api"),
         "dst_port": 80},
        {**_pod("src", "shop", "app=api"), "dst_ip": "2001:db8::5", "dst_kind": "world",
         "dst_port": 443, "protocol": "TCP"},
        {**_pod("src", "shop", "app=api"), "dst_ip": "192.0.2.1", "dst_kind": "world",
         "protocol": "ICMP"},
    ]  # fmt: skip
    for row in rows:
        row.setdefault("protocol", "TCP")
    result = generate(conform_flows(pd.DataFrame(rows)), GenerateOptions(allow_dns=False))
    assert_valid_policies(result.to_yaml())
    by_name = {p.name: p for p in result.policies}
    api_in = by_name["api-access-ingress"]
    web = Peer(pod_selector=LabelSelector.of({"app": "web"}))
    prom = Peer(
        pod_selector=LabelSelector.of({"app": "prom"}),
        namespace_selector=LabelSelector.of({"kubernetes.io/metadata.name": "monitoring"}),
    )
    cron = Peer(pod_selector=LabelSelector.of({"app": "cron"}))
    outside = Peer(ip_block=IPBlock("198.51.100.4/32"))
    assert api_in.ingress == (
        Rule(peers=(cron, outside), ports=(PortSpec("TCP", 80),)),
        Rule(peers=(web, prom), ports=(PortSpec("TCP", 80), PortSpec("TCP", 81))),
    )
    api_out = by_name["api-access-egress"]
    assert api_out.egress == (
        Rule(peers=(Peer(ip_block=IPBlock("2001:db8::5/128")),), ports=(PortSpec("TCP", 443),)),
    )
    assert any("ICMP" in w and "not expressible" in w for w in result.warnings)
    assert dict(api_in.annotations)["netpolgen.io/flows"] == "6"
