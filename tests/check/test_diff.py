"""Semantic diff: behaviour, not text."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from netpolgen.check.diff import PolicyDiff, diff_policies, format_diff
from tests.flowkit import flows, inventory, namespace, pod, policies

INV = inventory(
    namespace("shop", {"env": "prod"}),
    namespace("ops"),
    pod("shop", "web-1", {"app": "web", "pod-template-hash": "1"}, "10.0.0.1",
        [{"name": "http", "containerPort": 8080}]),
    pod("shop", "fe-1", {"app": "fe"}, "10.0.0.2"),
    pod("ops", "prom-1", {"app": "prom"}, "10.0.0.3"),
)  # fmt: skip

WEB_80 = """
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: fe}}}]
    ports: [{port: 80}]
"""


def rows(diff: PolicyDiff) -> list[tuple[Any, ...]]:
    """Workload-to-workload changes as (change, src ns, src labels, dst ns, dst labels, ...)."""
    pods = diff.changes[diff.changes["src_addresses"].isna() & diff.changes["dst_addresses"].isna()]
    columns = ["change", "src_namespace", "src_labels", "dst_namespace", "dst_labels",
               "protocol", "port_from", "port_to"]  # fmt: skip
    return [tuple(r) for r in pods[columns].itertuples(index=False)]


def outside(diff: PolicyDiff) -> list[tuple[Any, ...]]:
    frame = diff.changes
    changes = frame[frame["src_addresses"].notna() | frame["dst_addresses"].notna()]
    columns = ["change", "src_labels", "src_addresses", "dst_labels", "dst_addresses", "protocol",
               "port_from", "port_to"]  # fmt: skip
    return [
        tuple(None if pd.isna(v) else v for v in r)
        for r in changes[columns].itertuples(index=False)
    ]


def test_identical_behaviour_written_differently_is_no_change() -> None:
    rewritten = """
metadata: {name: web-v2, namespace: shop}
spec:
  podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: fe}}, namespaceSelector:
             {matchLabels: {kubernetes.io/metadata.name: shop}}}]
    ports: [{port: 80, protocol: TCP}]
"""
    diff = diff_policies(policies(WEB_80), policies(rewritten), INV)
    assert diff.same
    assert diff.policies_added == ["shop/web-v2"] and diff.policies_removed == ["shop/web"]
    assert diff.workloads == 3 and diff.workload_source == "inventory"


def test_port_change_is_reported_as_exact_ranges() -> None:
    wider = WEB_80.replace("[{port: 80}]", "[{port: 80, endPort: 90}]")
    diff = diff_policies(policies(WEB_80), policies(wider), INV)
    assert rows(diff) == [("added", "shop", "app=fe", "shop", "app=web", "TCP", 81, 90)]
    assert diff.policies_changed == ["shop/web"]


def test_removing_a_policy_opens_everything_to_the_pod() -> None:
    diff = diff_policies(policies(WEB_80), [], INV)
    changes = rows(diff)
    assert ("added", "ops", "app=prom", "shop", "app=web", "UDP", 1, 65535) in changes
    assert ("added", "shop", "app=fe", "shop", "app=web", "TCP", 1, 79) in changes
    assert ("added", "shop", "app=fe", "shop", "app=web", "TCP", 81, 65535) in changes
    assert all(r[0] == "added" and r[4] == "app=web" for r in changes)


def test_named_port_resolved_on_the_workload() -> None:
    named = WEB_80.replace("[{port: 80}]", "[{port: http}]")
    diff = diff_policies(policies(WEB_80), policies(named), INV)
    assert rows(diff) == [
        ("removed", "shop", "app=fe", "shop", "app=web", "TCP", 80, 80),
        ("added", "shop", "app=fe", "shop", "app=web", "TCP", 8080, 8080),
    ]


def test_namespace_labels_matter() -> None:
    by_env = """
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}}}], ports: [{port: 80}]}]
"""
    diff = diff_policies(policies(WEB_80), policies(by_env), INV)
    # shop is env=prod: fe keeps access; web itself gains it; ops (no env) gains nothing.
    assert rows(diff) == [("added", "shop", "app=web", "shop", "app=web", "TCP", 80, 80)]


def test_workloads_from_flows_then_from_selectors() -> None:
    table = flows({"src": "shop/app=fe", "dst": "shop/app=web,pod-template-hash=9", "dst_port": 80})
    diff = diff_policies(policies(WEB_80), [], flows=table)
    assert diff.workload_source == "flows" and diff.workloads == 2
    guessed = diff_policies(policies(WEB_80), [])
    assert guessed.workload_source == "policy selectors" and guessed.workloads == 2
    assert guessed.warnings


def test_format_diff() -> None:
    diff = diff_policies(policies(WEB_80), [], INV)
    data = json.loads(format_diff(diff, "json"))
    assert data["same"] is False and data["changes"][0]["port_from"] >= 1
    assert "| change | src | dst | protocol | ports |" in format_diff(diff, "markdown")
    assert "Policies removed:" in format_diff(diff)


def test_outside_addresses_are_compared_by_ip_block_classes() -> None:
    old = """
metadata: {name: web-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: 443}]}]
"""
    new = old.replace(", except: [10.1.0.0/16]", "")
    diff = diff_policies(policies(old), policies(new), INV)
    assert rows(diff) == []
    assert outside(diff) == [("added", "app=web", None, None, "10.1.0.0/16", "TCP", 443, 443)]


def test_ingress_from_outside_ranges() -> None:
    old = """
metadata: {name: web-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}], ports: [{port: 80}]}]
"""
    new = old.replace("0.0.0.0/0", "203.0.113.0/24")
    changes = outside(diff_policies(policies(old), policies(new), INV))
    assert changes == [
        ("removed", None, "0.0.0.0-203.0.112.255", "app=web", None, "TCP", 80, 80),
        ("removed", None, "203.0.114.0-255.255.255.255", "app=web", None, "TCP", 80, 80),
    ]


def test_ipv6_blocks_add_ipv6_classes() -> None:
    old = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: fe}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: "2001:db8::/32"}}]}]
"""
    diff = diff_policies(policies(old), [], INV)
    opened = {r[4] for r in outside(diff) if r[0] == "added"}
    # fe's egress opens everywhere outside the block, IPv4 and IPv6 alike.
    assert "0.0.0.0/0" in opened and "::-2001:db7:ffff:ffff:ffff:ffff:ffff:ffff" in opened
    assert "2001:db8::/32" not in opened
