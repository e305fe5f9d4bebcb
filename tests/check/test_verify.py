"""NetworkPolicy semantics, one rule per test, through the table evaluator (``verify``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.check.report import format_report
from netpolgen.check.verify import verify
from netpolgen.errors import PolicyParseError, SchemaError
from netpolgen.generator import generate
from netpolgen.ingest import load_flows
from netpolgen.policy.from_reduction import GenerateOptions
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Endpoint, Evaluator, is_allowed
from tests.conftest import SAMPLE_FLOWS, SHARED_SAMPLES
from tests.flowkit import flows, inventory, namespace, pod, policies
from tests.policygen import NAMESPACES, PODS, PROBE_PORTS, PROTOCOLS, random_policies


def allowed(
    policy_yaml: str,
    src: str,
    dst: str,
    port: int | None = 80,
    protocol: str = "TCP",
    inv: Any = None,
    **extra: Any,
) -> bool:
    report = verify(
        flows({"src": src, "dst": dst, "dst_port": port, "protocol": protocol, **extra}),
        policies(policy_yaml),
        inv,
        over_permissive=False,
    )
    assert report.counts["edges_checked"] == 1
    return bool(report.edges["allowed"].iloc[0])


DENY_ALL_INGRESS = "metadata: {name: d, namespace: shop}\nspec: {policyTypes: [Ingress]}"
WEB_FROM_FE = """
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: fe}}}]
    ports: [{port: 80}]
"""


# --- isolation and defaults ----------------------------------------------------------------------


def test_no_policy_allows_everything() -> None:
    assert allowed("", "shop/app=fe", "shop/app=web")


def test_policy_selects_only_its_namespace() -> None:
    # Same labels in another namespace: not selected, so not isolated.
    assert allowed(WEB_FROM_FE, "other/app=x", "other/app=web")
    assert not allowed(WEB_FROM_FE, "shop/app=x", "shop/app=web")


def test_empty_pod_selector_selects_every_pod_of_the_namespace() -> None:
    deny_all = DENY_ALL_INGRESS
    assert not allowed(deny_all, "shop/app=a", "shop/app=b")
    assert not allowed(deny_all, "shop/app=a", "shop/")  # a pod without labels too
    assert allowed(deny_all, "shop/app=a", "else/app=b")


def test_ingress_isolation_leaves_egress_open() -> None:
    deny_ingress = "metadata: {name: d, namespace: shop}\nspec: {podSelector: {}, ingress: []}"
    # shop pods send anywhere (egress not isolated) ...
    assert allowed(deny_ingress, "shop/app=a", "else/app=b")
    # ... but receive nothing.
    assert not allowed(deny_ingress, "else/app=b", "shop/app=a")


def test_egress_empty_without_policy_types_isolates_ingress_only() -> None:
    # API defaulting: Egress is added only when there is at least one egress rule.
    policy = "metadata: {name: p, namespace: shop}\nspec: {podSelector: {}, egress: []}"
    (parsed,) = policies(policy)
    assert parsed.policy_types == ("Ingress",)
    assert allowed(policy, "shop/app=a", "else/app=b")
    assert not allowed(policy, "else/app=b", "shop/app=a")


def test_egress_empty_with_policy_types_denies_all_egress() -> None:
    policy = (
        "metadata: {name: p, namespace: shop}\n"
        "spec: {podSelector: {}, policyTypes: [Egress], egress: []}"
    )
    assert not allowed(policy, "shop/app=a", "else/app=b")
    assert not allowed(policy, "shop/app=a", "8.8.8.8")
    assert allowed(policy, "else/app=b", "shop/app=a")  # ingress untouched


def test_egress_rule_without_policy_types_adds_egress() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  egress: [{ports: [{port: 53, protocol: UDP}]}]
"""
    (parsed,) = policies(policy)
    assert parsed.policy_types == ("Ingress", "Egress")
    assert allowed(policy, "shop/app=a", "kube-system/k8s-app=kube-dns", 53, "UDP")
    assert not allowed(policy, "shop/app=a", "kube-system/k8s-app=kube-dns", 53, "TCP")


def test_empty_policy_types_list_is_defaulted() -> None:
    (parsed,) = policies("metadata: {name: p, namespace: s}\nspec: {policyTypes: []}")
    assert parsed.policy_types == ("Ingress",)


def test_empty_from_list_allows_every_source() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [], ports: [{port: 80}]}]
"""
    assert allowed(policy, "any/app=x", "shop/app=web")
    assert allowed(policy, "203.0.113.9", "shop/app=web")
    assert not allowed(policy, "any/app=x", "shop/app=web", 81)


def test_ingress_rule_with_ports_but_no_peers() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{ports: [{protocol: TCP, port: 443}]}]
"""
    assert allowed(policy, "x/app=y", "shop/app=web", 443)
    assert allowed(policy, "198.51.100.1", "shop/app=web", 443)
    assert not allowed(policy, "x/app=y", "shop/app=web", 80)


def test_rule_with_neither_peers_nor_ports_allows_everything() -> None:
    policy = "metadata: {name: p, namespace: s}\nspec: {podSelector: {}, ingress: [{}]}"
    assert allowed(policy, "x/a=b", "s/c=d", 1, "UDP")
    assert allowed(policy, "x/a=b", "s/c=d", None, "ICMP")


def test_policies_are_additive() -> None:
    two = (
        WEB_FROM_FE
        + """---
metadata: {name: web-metrics, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: obs}}}], ports: [{port: 9090}]}]
"""
    )
    inv = inventory(namespace("monitoring", {"team": "obs"}))
    assert allowed(two, "shop/app=fe", "shop/app=web", 80, inv=inv)
    assert allowed(two, "monitoring/app=prom", "shop/app=web", 9090, inv=inv)
    assert not allowed(two, "monitoring/app=prom", "shop/app=web", 80, inv=inv)
    assert not allowed(two, "shop/app=fe", "shop/app=web", 9090, inv=inv)


def test_both_sides_must_allow() -> None:
    egress_only_dns = """
metadata: {name: fe-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: fe}}
  policyTypes: [Egress]
  egress: [{ports: [{port: 53, protocol: UDP}]}]
"""
    both = WEB_FROM_FE + "---\n" + egress_only_dns
    # web's ingress allows fe:80, but fe's egress allows only DNS.
    report = verify(flows({"src": "shop/app=fe", "dst": "shop/app=web", "dst_port": 80}),
                    policies(both), over_permissive=False)  # fmt: skip
    edge = report.edges.iloc[0]
    assert edge["ingress_allowed"] and not edge["egress_allowed"] and not edge["allowed"]
    assert report.denied["blocked_by"].tolist() == ["egress"]
    assert report.denied["egress_policies"].tolist() == ["shop/fe-egress"]


# --- peers ---------------------------------------------------------------------------------------


def test_pod_selector_alone_means_own_namespace() -> None:
    assert allowed(WEB_FROM_FE, "shop/app=fe", "shop/app=web")
    assert not allowed(WEB_FROM_FE, "other/app=fe", "shop/app=web")


def test_namespace_selector_alone_selects_all_pods_there() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}]}]
"""
    assert allowed(policy, "ops/app=anything", "shop/app=web")
    assert allowed(policy, "ops/", "shop/app=web")
    assert not allowed(policy, "shop/app=anything", "shop/app=web")


def test_namespace_and_pod_selector_in_one_peer_are_anded() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {env: prod}}
      podSelector: {matchLabels: {app: fe}}
"""
    inv = inventory(namespace("front", {"env": "prod"}), namespace("test", {"env": "dev"}))
    assert allowed(policy, "front/app=fe", "shop/app=web", inv=inv)
    assert not allowed(policy, "front/app=other", "shop/app=web", inv=inv)
    assert not allowed(policy, "test/app=fe", "shop/app=web", inv=inv)
    # As two separate peers they would be ORed:
    ored = policy.replace("      podSelector", "    - podSelector")
    assert allowed(ored, "front/app=other", "shop/app=web", inv=inv)
    assert allowed(ored, "shop/app=fe", "shop/app=web", inv=inv)
    assert not allowed(ored, "test/app=fe", "shop/app=web", inv=inv)  # podSelector: own ns


def test_empty_namespace_selector_selects_every_namespace() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: fe}}}]}]
"""
    assert allowed(policy, "anywhere/app=fe", "shop/app=web")
    assert not allowed(policy, "anywhere/app=be", "shop/app=web")
    assert not allowed(policy, "192.0.2.1", "shop/app=web")  # selectors never match addresses


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ("{key: tier, operator: In, values: [fe, be]}", "tier=fe", True),
        ("{key: tier, operator: In, values: [fe, be]}", "tier=db", False),
        ("{key: tier, operator: In, values: [fe, be]}", "app=x", False),
        ("{key: tier, operator: NotIn, values: [db]}", "tier=fe", True),
        ("{key: tier, operator: NotIn, values: [db]}", "tier=db", False),
        ("{key: tier, operator: NotIn, values: [db]}", "app=x", True),  # lacks the key
        ("{key: tier, operator: Exists}", "tier=", True),
        ("{key: tier, operator: Exists}", "app=x", False),
        ("{key: tier, operator: DoesNotExist}", "app=x", True),  # lacks the key
        ("{key: tier, operator: DoesNotExist}", "tier=fe", False),
    ],
)
def test_match_expressions(expression: str, labels: str, expected: bool) -> None:
    policy = f"""
metadata: {{name: p, namespace: shop}}
spec:
  podSelector: {{}}
  ingress: [{{from: [{{podSelector: {{matchExpressions: [{expression}]}}}}]}}]
"""
    assert allowed(policy, f"shop/{labels}", "shop/app=web") is expected


def test_match_labels_and_expressions_are_anded() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector:
    matchLabels: {app: web}
    matchExpressions: [{key: canary, operator: DoesNotExist}]
  ingress: []
"""
    assert not allowed(policy, "shop/app=x", "shop/app=web")
    assert allowed(policy, "shop/app=x", "shop/app=web,canary=true")  # not selected


def test_namespace_selector_exists_across_namespaces() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from: [{namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}}]
"""
    inv = inventory(namespace("a", {"team": "x"}), namespace("b", {"team": "y"}), namespace("c"))
    assert allowed(policy, "a/app=1", "shop/app=web", inv=inv)
    assert allowed(policy, "b/app=1", "shop/app=web", inv=inv)
    assert not allowed(policy, "c/app=1", "shop/app=web", inv=inv)
    assert not allowed(policy, "shop/app=1", "shop/app=web", inv=inv)  # shop has no team label


# --- ipBlock -------------------------------------------------------------------------------------

IP_EGRESS = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.4/32]}
    - ipBlock: {cidr: "2001:db8::/32", except: ["2001:db8:bad::/48"]}
"""


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.9.9.9", True),
        ("10.1.2.3", False),  # in except
        ("10.2.3.4", False),  # in the /32 except
        ("10.2.3.5", True),
        ("11.0.0.1", False),
        ("2001:db8::1", True),
        ("2001:db8:bad::1", False),
        ("2001:db9::1", False),
        ("::ffff:10.9.9.9", False),  # an IPv6 address never matches an IPv4 block
    ],
)
def test_ip_block_with_except(address: str, expected: bool) -> None:
    assert allowed(IP_EGRESS, "shop/app=a", address, 443) is expected


def test_ip_block_does_not_match_pods() -> None:
    policy = IP_EGRESS.replace("10.0.0.0/8", "0.0.0.0/0").replace(
        "except: [10.1.0.0/16, 10.2.3.4/32]", "except: []"
    )
    assert not allowed(policy, "shop/app=a", "other/app=b")


def test_ip_block_matches_node_endpoints_by_address() -> None:
    row = {"src": "shop/app=a", "dst_ip": "10.9.9.9", "dst_kind": "node", "dst_port": 10250}
    report = verify(flows(row), policies(IP_EGRESS), over_permissive=False)
    assert bool(report.edges["allowed"].iloc[0])


def test_invalid_ip_block_is_a_parse_error() -> None:
    with pytest.raises(PolicyParseError, match="not inside"):
        policies(IP_EGRESS.replace("10.1.0.0/16", "11.0.0.0/16"))
    with pytest.raises(PolicyParseError, match="not a CIDR"):
        policies(IP_EGRESS.replace("10.0.0.0/8", "10.0.0/8x"))


# --- ports ---------------------------------------------------------------------------------------


def test_protocol_must_match_and_defaults_to_tcp() -> None:
    assert allowed(WEB_FROM_FE, "shop/app=fe", "shop/app=web", 80, "TCP")
    assert not allowed(WEB_FROM_FE, "shop/app=fe", "shop/app=web", 80, "UDP")
    assert not allowed(WEB_FROM_FE, "shop/app=fe", "shop/app=web", None, "ICMP")


def test_port_without_number_matches_every_port_of_its_protocol() -> None:
    policy = WEB_FROM_FE.replace("[{port: 80}]", "[{protocol: SCTP}]")
    assert allowed(policy, "shop/app=fe", "shop/app=web", 3868, "SCTP")
    assert not allowed(policy, "shop/app=fe", "shop/app=web", 3868, "TCP")


def test_end_port_range_is_inclusive() -> None:
    policy = WEB_FROM_FE.replace("[{port: 80}]", "[{port: 32000, endPort: 32010}]")
    assert allowed(policy, "shop/app=fe", "shop/app=web", 32000)
    assert allowed(policy, "shop/app=fe", "shop/app=web", 32010)
    assert not allowed(policy, "shop/app=fe", "shop/app=web", 32011)
    assert not allowed(policy, "shop/app=fe", "shop/app=web", 31999)


def test_end_port_needs_a_numeric_port() -> None:
    with pytest.raises(PolicyParseError, match="numeric"):
        policies(WEB_FROM_FE.replace("[{port: 80}]", "[{port: http, endPort: 90}]"))


NAMED_INV = inventory(
    pod("shop", "web-a", {"app": "web"}, "10.0.0.1", [{"name": "http", "containerPort": 8080}]),
    pod("shop", "web-b", {"app": "web"}, "10.0.0.2", [{"name": "http", "containerPort": 9090}]),
    pod("shop", "fe-1", {"app": "fe"}, "10.0.0.3",
        [{"name": "dns", "containerPort": 5353, "protocol": "UDP"}]),
)  # fmt: skip


def test_named_ports_resolve_per_destination_pod() -> None:
    policy = WEB_FROM_FE.replace("[{port: 80}]", "[{port: http}]")
    rows = [
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-a", "dst_port": 8080},
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-a", "dst_port": 9090},
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-b", "dst_port": 9090},
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-b", "dst_port": 8080},
        # resolved by IP when the pod name is missing
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_ip": "10.0.0.2", "dst_port": 9090},
    ]
    report = verify(flows(*rows), policies(policy), NAMED_INV, over_permissive=False)
    assert report.flow_allowed.tolist() == [True, False, True, False, True]


def test_named_port_needs_matching_protocol() -> None:
    policy = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{ports: [{port: dns, protocol: TCP}]}]
"""
    row = {"src": "shop/app=web", "dst": "shop/app=fe", "dst_pod": "fe-1", "dst_port": 5353}
    assert not verify(flows({**row, "protocol": "TCP"}), policies(policy), NAMED_INV).ok
    udp = policy.replace("protocol: TCP", "protocol: UDP")
    assert verify(flows({**row, "protocol": "UDP"}), policies(udp), NAMED_INV).ok


def test_named_port_in_egress_resolves_on_the_destination() -> None:
    policy = """
metadata: {name: fe-out, namespace: shop}
spec:
  podSelector: {matchLabels: {app: fe}}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
"""
    rows = [
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-a", "dst_port": 8080},
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-b", "dst_port": 8080},
        {"src": "shop/app=fe", "dst": "203.0.113.5", "dst_port": 8080},  # no pod: no name
    ]
    report = verify(flows(*rows), policies(policy), NAMED_INV, over_permissive=False)
    assert report.flow_allowed.tolist() == [True, False, False]


def test_named_ports_without_inventory_warn() -> None:
    policy = WEB_FROM_FE.replace("[{port: 80}]", "[{port: http}]")
    report = verify(flows({"src": "shop/app=fe", "dst": "shop/app=web", "dst_port": 8080}),
                    policies(policy))  # fmt: skip
    assert not report.ok
    assert any("named ports" in w for w in report.warnings)


# --- the table -----------------------------------------------------------------------------------


def test_replies_denied_verdicts_and_unresolved_rows_are_not_checked() -> None:
    deny_all = DENY_ALL_INGRESS
    table = flows(
        {"src": "x/app=a", "dst": "shop/app=b", "dst_port": 80, "is_reply": True},
        {"src": "x/app=a", "dst": "shop/app=b", "dst_port": 80, "verdict": "denied"},
        {"src_kind": "unknown", "dst": "shop/app=b", "dst_port": 80},
        {"src": "x/app=a", "dst": "shop/app=b", "dst_port": 80, "count": 7},
    )
    report = verify(table, policies(deny_all))
    assert report.counts["records_reply"] == 1
    assert report.counts["records_denied_verdict"] == 1
    assert report.counts["records_unresolved"] == 1
    assert report.counts["flows_checked"] == 7 and report.counts["flows_denied"] == 7
    assert report.flow_allowed.isna().tolist() == [True, True, True, False]
    assert not report.ok


def test_flows_are_evaluated_once_per_distinct_edge() -> None:
    rows = [{"src": "shop/app=fe", "dst": "shop/app=web", "dst_port": 80, "count": 2}] * 50
    rows += [{"src": "shop/app=x", "dst": "shop/app=web", "dst_port": 80}] * 30
    table = flows(*rows)
    table.index = pd.RangeIndex(100, 180)
    report = verify(table, policies(WEB_FROM_FE))
    assert report.counts["edges_checked"] == 2
    assert report.edges["flows"].tolist() == [100, 30]
    assert report.flow_allowed.index.equals(table.index)
    assert report.flow_allowed.sum() == 50
    assert report.denied[["src", "dst", "flows", "edges"]].values.tolist() == [
        ["shop/app=x", "shop/app=web", 30, 1]
    ]
    assert report.isolation.to_dict("records") == [
        {"endpoint": "shop/app=web", "direction": "ingress", "policies": "shop/web"}
    ]


def test_verify_checks_its_input() -> None:
    with pytest.raises(SchemaError):
        verify(pd.DataFrame({"a": [1]}), [])


def test_over_permissiveness_from_flows() -> None:
    table = flows(
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_port": 80},
        {"src": "shop/app=web", "dst": "shop/app=db", "dst_port": 5432},
    )
    loose = """
metadata: {name: open-web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 80}]}]
"""
    report = verify(table, policies(loose))
    over = report.over_permissive
    # web:80 is open to every workload, but only fe used it; db:5432 is open to all (no policy).
    assert ("shop", "app=db", "shop", "app=web", "TCP", 80) in set(over.itertuples(index=False))
    assert ("shop", "app=fe", "shop", "app=web", "TCP", 80) not in set(over.itertuples(index=False))
    assert report.counts["workloads"] == 3
    assert report.counts["combinations_unused"] == len(over)


def test_over_permissiveness_uses_inventory_workloads_and_declared_ports() -> None:
    inv = inventory(
        pod("shop", "web-1", {"app": "web", "pod-template-hash": "abc"}, "10.0.0.1",
            [{"containerPort": 80}, {"containerPort": 9100, "name": "metrics"}]),
        pod("shop", "fe-1", {"app": "fe"}, "10.0.0.2"),
    )  # fmt: skip
    table = flows({"src": "shop/app=fe", "dst": "shop/app=web,pod-template-hash=abc",
                   "dst_port": 80})  # fmt: skip
    report = verify(table, policies(WEB_FROM_FE), inv)
    rows = set(report.over_permissive.itertuples(index=False))
    assert rows == {("shop", "app=web", "shop", "app=fe", "TCP", 80)} or rows == set()
    assert report.counts["workloads"] == 2
    # web is isolated: 9100 is not allowed to anyone, 80 only from fe (used).
    assert ("shop", "app=fe", "shop", "app=web", "TCP", 9100) not in rows


def test_report_formats() -> None:
    report = verify(flows({"src": "shop/app=x", "dst": "shop/app=web", "dst_port": 80}),
                    policies(WEB_FROM_FE))  # fmt: skip
    data = json.loads(format_report(report, "json"))
    assert data["ok"] is False and data["denied"][0]["dst"] == "shop/app=web"
    assert data["denied"][0]["dst_port"] == 80
    assert "| src | dst |" in format_report(report, "markdown")
    text = format_report(report, "table")
    assert "Denied flows" in text and "shop/web" in text


# --- the per-connection API (used by the synthesis soundness property) ----------------------------


def test_per_connection_api() -> None:
    pols = policies(WEB_FROM_FE)
    fe = Endpoint("shop", {"app": "fe"})
    web = Endpoint("shop", {"app": "web"})
    assert is_allowed(pols, fe, web, "TCP", 80)
    assert not is_allowed(pols, web, web, "TCP", 80)
    assert is_allowed(pols, web, Endpoint(ip="1.1.1.1"), "TCP", 80)
    named = policies(WEB_FROM_FE.replace("[{port: 80}]", "[{port: http}]"))
    web_named = Endpoint("shop", {"app": "web"}, named_ports={("http", "TCP"): 8080})
    assert is_allowed(named, fe, web_named, "TCP", 8080)
    assert not is_allowed(named, fe, web, "TCP", 8080)


def test_evaluator_caches_per_policy_set() -> None:
    ev = Evaluator(policies(WEB_FROM_FE))
    web = ("shop", (("app", "web"),), None)
    fe = ("shop", (("app", "fe"),), None)
    assert ev.allows(fe, web, "TCP", 80) == (True, True)
    assert ev.allows(fe, web, "TCP", 81) == (True, False)
    assert len(ev._grants) == 1


# --- loading policies ----------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


NP = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"


def test_load_policies_from_a_directory_tree(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "one.yaml", NP + "metadata: {name: one, namespace: x}\nspec: {}\n")
    _write(
        tmp_path / "b" / "two.yml",
        "---\n" + NP + "metadata: {name: two, namespace: x}\nspec: {}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\n",
    )
    items = {"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "NetworkPolicy", "metadata": {"name": "three", "namespace": "y"}, "spec": {}},
        {"kind": "Service", "metadata": {"name": "s"}},
    ]}  # fmt: skip
    _write(tmp_path / "c.json", json.dumps(items))
    _write(tmp_path / "notes.txt", "not a policy")
    notes: list[str] = []
    loaded = load_policies(tmp_path, notes=notes)
    assert [(p.namespace, p.name) for p in loaded] == [("x", "one"), ("x", "two"), ("y", "three")]
    assert len(notes) == 2
    assert any("two.yml:7" in n and "Deployment" in n for n in notes)
    assert any("c.json" in n and "item 1" in n and "Service" in n for n in notes)


def test_load_policies_networkpolicylist_and_duplicates(tmp_path: Path) -> None:
    text = """kind: NetworkPolicyList
apiVersion: networking.k8s.io/v1
items:
- metadata: {name: a, namespace: n}
  kind: NetworkPolicy
  spec: {podSelector: {}}
---
kind: NetworkPolicy
metadata: {name: a, namespace: n}
spec: {podSelector: {}, policyTypes: [Egress]}
"""
    notes: list[str] = []
    loaded = load_policies(_write(tmp_path / "p.yaml", text), notes=notes)
    assert len(loaded) == 1 and loaded[0].policy_types == ("Egress",)
    assert any("defined again" in n for n in notes)


def test_load_policies_error_names_file_document_and_line(tmp_path: Path) -> None:
    bad = "metadata: {name: bad, namespace: x}\nspec:\n  ingress: [{ports: [{port: [1]}]}]\n"
    text = NP + "metadata: {name: ok, namespace: x}\nspec: {}\n---\n" + NP + bad
    path = _write(tmp_path / "p.yaml", text)
    with pytest.raises(PolicyParseError) as caught:
        load_policies(path)
    error = caught.value
    assert error.source == str(path) and error.line == 6
    assert "document 1 (bad)" in str(error) and "port must be" in str(error)


def test_load_policies_yaml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.yaml", NP + "metadata: {name: x\n  spec: [\n")
    with pytest.raises(PolicyParseError, match="not valid YAML") as caught:
        load_policies(path)
    assert caught.value.line is not None


def test_load_policies_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PolicyParseError, match="no such file"):
        load_policies(tmp_path / "nope")


def test_round_trip_through_manifest() -> None:
    for policy in policies(IP_EGRESS + "---\n" + WEB_FROM_FE):
        assert Policy.from_manifest(policy.to_manifest()) == policy


# --- against the generator ------------------------------------------------------------------------


@pytest.mark.parametrize("sample", sorted(SAMPLE_FLOWS.glob("*.csv")), ids=lambda p: p.name)
@pytest.mark.parametrize(
    "options",
    [
        GenerateOptions(),
        GenerateOptions(egress=False),
        GenerateOptions(ingress=False),
        GenerateOptions(default_deny=True, cidr_prefix_v4=24, port_range_min=2, group_ips=True),
    ],
    ids=["both", "ingress-only", "egress-only", "default-deny-and-widening"],
)
def test_generated_policies_allow_every_observed_flow(sample: Path, options: Any) -> None:
    table = load_flows(sample)
    result = generate(table, options)
    report = verify(table, result.policies)
    assert report.ok, format_report(report)
    assert report.counts["flows_checked"] > 0


# --- the table path agrees with the per-connection path --------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    picks=st.lists(
        st.tuples(
            st.integers(0, len(PODS)),  # len(PODS) = an outside address
            st.integers(0, len(PODS)),
            st.sampled_from(PROTOCOLS),
            st.sampled_from(PROBE_PORTS),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_table_verdicts_match_per_connection_verdicts(seed: int, picks: list[Any]) -> None:
    manifests = random_policies(seed, nca_safe=False)
    pols = [Policy.from_manifest(m) for m in manifests]
    inv = inventory(
        *(namespace(ns, labels) for ns, labels in NAMESPACES.items()),
        *(
            pod(ns, name, labels, f"10.0.0.{i + 1}",
                [{"name": n, "protocol": p, "containerPort": c} for n, p, c in ports])
            for i, (ns, name, labels, ports) in enumerate(PODS)
        ),
    )  # fmt: skip

    def side(index: int) -> tuple[dict[str, Any], Endpoint]:
        if index == len(PODS):
            return {"ip": "203.0.113.7", "kind": "world"}, Endpoint(ip="203.0.113.7")
        ns, name, labels, ports = PODS[index]
        text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        endpoint = Endpoint(ns, labels, namespace_labels=NAMESPACES[ns],
                            named_ports={(n, p): c for n, p, c in ports})  # fmt: skip
        return {"namespace": ns, "labels": text, "pod": name, "kind": "pod"}, endpoint

    rows, expected = [], []
    for s, d, protocol, port in picks:
        (src_row, src), (dst_row, dst) = side(s), side(d)
        row = {f"src_{k}": v for k, v in src_row.items()}
        row.update({f"dst_{k}": v for k, v in dst_row.items()})
        rows.append({**row, "protocol": protocol, "dst_port": port})
        expected.append(is_allowed(pols, src, dst, protocol, port))
    report = verify(flows(*rows), pols, inv)
    assert report.flow_allowed.tolist() == expected


def test_warnings_for_missing_namespace_labels_and_service_addresses() -> None:
    by_env = """
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}}}]}]
"""
    row = {"src": "front/app=a", "dst": "shop/app=b", "dst_port": 80}
    report = verify(flows(row), policies(by_env))
    assert any("no namespace labels are known" in w for w in report.warnings)
    front = inventory(namespace("front", {"env": "prod"}))
    with_labels = verify(flows(row), policies(by_env), front)
    assert with_labels.ok and not with_labels.warnings
    service = {"src": "shop/app=a", "dst_ip": "10.96.0.10", "dst_kind": "service", "dst_port": 53}
    assert any("Service addresses" in w for w in verify(flows(service), []).warnings)


def test_denied_rows_group_revisions_of_one_workload() -> None:
    table = flows(
        {"src": "shop/app=x,pod-template-hash=a1", "dst": "shop/app=web", "dst_port": 80},
        {"src": "shop/app=x,pod-template-hash=b2", "dst": "shop/app=web", "dst_port": 80},
    )
    report = verify(table, policies(WEB_FROM_FE), over_permissive=False)
    assert report.counts["edges_denied"] == 2
    assert report.denied[["src", "flows", "edges"]].values.tolist() == [["shop/app=x", 2, 2]]


def test_load_policies_skips_other_api_groups(tmp_path: Path) -> None:
    calico = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: c}\n"
    notes: list[str] = []
    assert load_policies(_write(tmp_path / "c.yaml", calico), notes=notes) == []
    assert "projectcalico.org/v3" in notes[0]


def test_traffic_with_the_pods_own_node_is_always_allowed() -> None:
    probe = {"src_ip": "192.168.1.5", "src_kind": "host", "dst": "shop/app=b", "dst_port": 8080}
    report = verify(flows(probe), policies(DENY_ALL_INGRESS))
    assert report.ok and report.counts["records_host"] == 1
    remote = {**probe, "src_kind": "node"}
    assert not verify(flows(remote), policies(DENY_ALL_INGRESS)).ok


def test_rule_usage_credits_every_admitting_rule() -> None:
    two_rules = (
        WEB_FROM_FE
        + """  - from: [{podSelector: {matchLabels: {app: admin}}}]
    ports: [{port: 22}]
  - ports: [{port: 80}]
"""
    )
    table = flows(
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_port": 80, "count": 5},
        {"src": "shop/app=x", "dst": "shop/app=web", "dst_port": 80, "count": 2},
    )
    report = verify(table, policies(two_rules))
    usage = report.rules.set_index("rule")
    assert usage.loc[0, "flows"] == 5  # fe on 80
    assert usage.loc[1, "flows"] == 0  # admin on 22: never used
    assert usage.loc[2, "flows"] == 7 and usage.loc[2, "edges"] == 2  # anyone on 80
    assert report.counts["rules_unused"] == 1
    assert "admitted no observed flow" in format_report(report)
    assert json.loads(format_report(report, "json"))["unused_rules"][0]["rule"] == 1


SHARED_FLOW_SAMPLES = sorted(
    p
    for folder in ("aws", "azure", "hubble")
    for p in (SHARED_SAMPLES / folder).glob("*")
    if p.is_file()
)


@pytest.mark.skipif(not SHARED_FLOW_SAMPLES, reason="../shared/samples is not beside the repo")
@pytest.mark.parametrize("sample", SHARED_FLOW_SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_generated_policies_allow_every_flow_of_the_shared_samples(sample: Path) -> None:
    table = load_flows(sample)
    for options in (GenerateOptions(), GenerateOptions(default_deny=True, cidr_prefix_v4=24)):
        report = verify(table, generate(table, options).policies, over_permissive=False)
        assert report.ok, format_report(report)


def test_one_pod_parser_path_and_parsed_json_agree(tmp_path: Path) -> None:
    """The same inventory gives the same report whether passed as a path or as parsed JSON.

    Issue 16: the two forms once went through two pod parsers that disagreed on unnamed
    container ports and init-container ports (0 against 4 over-permissive rows). Kubernetes
    semantics encoded: an unnamed ``containerPort`` is still a declared port; a sidecar
    (``initContainers`` entry with ``restartPolicy: Always``, KEP-753) serves beside the app
    containers; a plain init container has finished before the pod serves, so its port is not
    declared; a named port resolves per destination pod (``ports: [{port: metrics}]``).
    """
    web = pod("shop", "web-1", {"app": "web"}, "10.0.0.1", [{"containerPort": 80}])
    web["spec"]["initContainers"] = [
        {"name": "setup", "ports": [{"containerPort": 7000}]},
        {"name": "proxy", "restartPolicy": "Always",
         "ports": [{"containerPort": 15090, "name": "metrics"}]},
    ]  # fmt: skip
    document = inventory(
        web,
        pod("shop", "fe-1", {"app": "fe"}, "10.0.0.2"),
        pod("shop", "mon-1", {"app": "mon"}, "10.0.0.3"),
    )
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(document))
    table = flows(
        {"src": "shop/app=fe", "dst": "shop/app=web", "dst_pod": "web-1", "dst_port": 80},
        {"src": "shop/app=mon", "dst": "shop/app=web", "dst_pod": "web-1", "dst_port": 15090},
    )
    scrape = """
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: 80}, {port: metrics}]}]
"""
    reports = [verify(table, policies(scrape), form) for form in (path, document, [document])]
    for report in reports[1:]:
        assert report.ok == reports[0].ok
        assert report.counts == reports[0].counts
        pd.testing.assert_frame_equal(report.over_permissive, reports[0].over_permissive)
        pd.testing.assert_frame_equal(report.denied, reports[0].denied)
    over = set(reports[0].over_permissive.itertuples(index=False))
    # Every workload may reach web on 80 and 15090 (the sidecar's named port), declared ports
    # both; the finished init container's 7000 is no port of web's.
    assert ("shop", "app=mon", "shop", "app=web", "TCP", 80) in over
    assert ("shop", "app=fe", "shop", "app=web", "TCP", 15090) in over
    assert not any(row[-1] == 7000 for row in over)
    assert reports[0].ok
