"""--flavor cilium: CiliumNetworkPolicy (cilium.io/v2) from the NetworkPolicy model.

The property test compares two evaluators that share no code: the k8s one
(``netpolgen.policy.semantics``, checked against network-config-analyzer elsewhere) on random
NetworkPolicies, and ``CiliumEvaluator`` on their Cilium translation; the evaluator's own reading
of Cilium is pinned by examples from Cilium's documentation below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen import GenerateOptions, generate, load_flows, read_dns_map
from netpolgen.cli import cli
from netpolgen.cluster.view import NamedPorts
from netpolgen.labels import labels_from_canonical
from netpolgen.policy.flavors import flavor_manifests, flavor_yaml
from netpolgen.policy.flavors.cilium import MAX_PORTS_PER_RULE, CiliumOptions, cilium_manifest
from netpolgen.policy.flavors.cilium_eval import CiliumEvaluator
from netpolgen.policy.model import Peer, Policy, PortSpec, Rule
from netpolgen.policy.semantics import EndpointKey, Evaluator
from netpolgen.selectors import LabelSelector
from tests.conftest import SAMPLE_FLOWS
from tests.crd import assert_valid_custom_resources
from tests.identity.test_owners import cluster  # noqa: F401 (the fixture)
from tests.policy.flavor_samples import SAMPLES, sample_id
from tests.policygen import NAMESPACES, PODS, PROBE_IPS, PROBE_PORTS, PROTOCOLS, random_policies

# Probe addresses that are cluster identities in Cilium: the API server and a node.
ENTITIES = {"10.2.3.4": ("kube-apiserver",), "10.9.9.9": ("host", "remote-node")}


def _pods() -> list[tuple[EndpointKey, NamedPorts]]:
    return [
        ((ns, tuple(sorted(labels.items())), None), tuple(sorted(named)))
        for ns, _, labels, named in PODS
    ]


def assert_same_verdicts(policies: list[Policy], entities: dict[str, tuple[str, ...]]) -> int:
    """Every (source, destination, protocol, port) over the probe cluster gets the same
    (egress, ingress) verdict from both evaluators; returns the number compared."""
    k8s = Evaluator(policies, NAMESPACES)
    manifests = [cilium_manifest(p, CiliumOptions(entities=entities)) for p in policies]
    cilium = CiliumEvaluator(manifests, NAMESPACES, entities)
    ends = [*_pods(), *(((None, (), ip), ()) for ip in PROBE_IPS)]
    compared = 0
    for src, _ in ends:
        for dst, named in ends:
            if src[0] is None and dst[0] is None:
                continue
            for protocol in PROTOCOLS:
                for port in PROBE_PORTS:
                    expected = k8s.allows(src, dst, protocol, port, named)
                    got = cilium.allows(src, dst, protocol, port, named)
                    assert got == expected, (src, dst, protocol, port, manifests)
                    compared += 1
    return compared


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 1_000_000))
def test_cilium_allows_exactly_what_kubernetes_allows(seed: int) -> None:
    # Random NetworkPolicies (matchExpressions, empty selectors, ipBlock except, named ports,
    # endPort, protocol-only ports, empty peer lists, default denies) over three namespaces.
    policies = [Policy.from_manifest(m) for m in random_policies(seed, nca_safe=False)]
    assert assert_same_verdicts(policies, ENTITIES) > 0
    for manifest in (cilium_manifest(p, CiliumOptions(entities=ENTITIES)) for p in policies):
        assert_valid_custom_resources(yaml.safe_dump(manifest))


def test_the_comparison_can_fail() -> None:
    # Guard against a vacuous property: dropping the ports of a translated rule is caught.
    policy = Policy.from_manifest(random_policies(7, nca_safe=False)[0])
    rule = Rule(peers=(Peer(pod_selector=LabelSelector()),), ports=(PortSpec("TCP", 80),))
    policy = Policy("p", "a", LabelSelector(), ("Ingress",), ingress=(rule,))
    k8s = Evaluator([policy], NAMESPACES)
    manifest = cilium_manifest(policy, CiliumOptions())
    del manifest["spec"]["ingress"][0]["toPorts"]
    cilium = CiliumEvaluator([manifest], NAMESPACES)
    src, dst = _pods()[1][0], _pods()[0][0]
    assert k8s.allows(src, dst, "TCP", 443) != cilium.allows(src, dst, "TCP", 443)


@pytest.mark.parametrize("count", [1, 40, 41, 95])
def test_port_lists_are_split_at_cilium_s_limit(count: int) -> None:
    ports = tuple(PortSpec("TCP", 1000 + i) for i in range(count))
    rule = Rule(peers=(Peer(pod_selector=LabelSelector((("app", "web"),))),), ports=ports)
    policy = Policy("web", "a", LabelSelector((("app", "db"),)), ("Ingress",), ingress=(rule,))
    manifest = cilium_manifest(policy, CiliumOptions())
    (cilium_rule,) = manifest["spec"]["ingress"]
    sizes = [len(r["ports"]) for r in cilium_rule["toPorts"]]
    assert max(sizes) <= MAX_PORTS_PER_RULE and sum(sizes) == count
    assert len(sizes) == -(-count // MAX_PORTS_PER_RULE)
    assert_valid_custom_resources(yaml.safe_dump(manifest))
    evaluator = CiliumEvaluator([manifest], NAMESPACES)
    web, db = _pods()[0][0], _pods()[1][0]
    assert evaluator.allows(web, db, "TCP", 1000 + count - 1) == (True, True)
    assert evaluator.allows(web, db, "TCP", 1000 + count) == (True, False)


def test_a_cilium_list_of_41_ports_is_refused_by_the_schema() -> None:
    # The validator knows the limit: the split above is needed, not cosmetic.
    manifest = {
        "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "x", "namespace": "a"},
        "spec": {"endpointSelector": {}, "ingress": [{"toPorts": [
            {"ports": [{"port": str(1000 + i), "protocol": "TCP"} for i in range(41)]}
        ]}]},
    }  # fmt: skip
    with pytest.raises(AssertionError, match="too long|is too long|expected at most"):
        assert_valid_custom_resources(yaml.safe_dump(manifest))


def test_golden_three_tier(golden: Any) -> None:
    policies = generate(
        load_flows(SAMPLE_FLOWS / "three-tier.csv"), GenerateOptions(default_deny=True)
    ).policies
    golden("cilium/three-tier.yaml", flavor_yaml(policies, "cilium"))


def test_golden_online_shop_with_inventory(golden: Any) -> None:
    result = CliRunner().invoke(cli, [
        "from-flows", str(SAMPLE_FLOWS / "online-shop.hubble.jsonl"),
        "-i", str(SAMPLE_FLOWS / "online-shop.inventory.json"), "--flavor", "cilium", "-q",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert_valid_custom_resources(result.stdout)
    golden("cilium/online-shop.yaml", result.stdout)


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_every_sample_validates_against_the_crd(sample: Path) -> None:
    for options in (
        GenerateOptions(),
        GenerateOptions(default_deny=True, cidr_prefix_v4=24, port_range_min=2),
    ):
        policies = generate(load_flows(sample), options).policies
        documents = assert_valid_custom_resources(flavor_yaml(policies, "cilium"))
        assert [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in documents] == sorted(
            (p.namespace, p.name) for p in policies
        )


def test_api_server_and_nodes_become_entities(cluster: tuple[Path, Path]) -> None:  # noqa: F811
    flows, inventory = cluster
    result = CliRunner().invoke(
        cli, ["from-flows", str(flows), "-i", str(inventory), "--flavor", "cilium"]
    )
    assert result.exit_code == 0, result.output
    documents = {d["metadata"]["name"]: d for d in assert_valid_custom_resources(result.stdout)}
    api = documents["cart-api-access-egress"]["spec"]["egress"]
    to_api = [rule for rule in api if rule.get("toEntities") == ["kube-apiserver"]]
    # The flow went to the Service's 443; the inventory maps it to the endpoints' 6443, which is
    # what both NetworkPolicy and Cilium see after the service translation.
    assert {"port": "6443", "protocol": "TCP"} in [
        port for rule in to_api for ports in rule["toPorts"] for port in ports["ports"]
    ]
    assert not any("10.96.0.1/32" in str(rule.get("toCIDRSet")) for rule in api)
    prometheus = documents["prometheus-access-egress"]["spec"]["egress"]
    assert any(rule.get("toEntities") == ["host", "remote-node"] for rule in prometheus)


# --- the evaluator's reading of Cilium, from the examples of Cilium's documentation ----------
# docs.cilium.io/en/stable/security/policy/language/ ("Layer 3 Examples", "Layer 4 Examples").

LEIA = (("ns1", (("name", "leia"),), None), ())
LUKE_NS2 = (("ns2", (("name", "luke"),), None), ())
LUKE_NS1 = (("ns1", (("name", "luke"),), None), ())


def _docs(text: str) -> CiliumEvaluator:
    return CiliumEvaluator([yaml.safe_load(text)])


def test_docs_across_namespaces_needs_the_namespace_label() -> None:
    evaluator = _docs("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: k8s-expose-across-namespace, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: ns2, name: luke}
""")
    assert evaluator.allows(LUKE_NS2[0], LEIA[0], "TCP", 80) == (True, True)
    assert evaluator.allows(LUKE_NS1[0], LEIA[0], "TCP", 80) == (True, False)


def test_docs_endpoints_without_namespace_label_are_the_policy_s_namespace() -> None:
    evaluator = _docs("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l3-rule, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  ingress:
  - fromEndpoints:
    - matchLabels: {name: luke}
""")
    assert evaluator.allows(LUKE_NS1[0], LEIA[0], "TCP", 80) == (True, True)
    assert evaluator.allows(LUKE_NS2[0], LEIA[0], "TCP", 80) == (True, False)


def test_docs_cidr_rule_with_except_and_l4_only_rule() -> None:
    evaluator = _docs("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cidr-rule, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  egress:
  - toCIDR: [20.1.1.1/32]
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except: [10.96.0.0/12]
  - toPorts:
    - ports: [{port: "80", protocol: TCP}]
""")
    leia = LEIA[0]
    assert evaluator.side("egress", leia, (None, (), "20.1.1.1"), "UDP", 9) is True
    assert evaluator.side("egress", leia, (None, (), "10.1.2.3"), "TCP", 9) is True
    assert evaluator.side("egress", leia, (None, (), "10.96.0.10"), "TCP", 9) is False
    # toPorts without an L3 member: port 80 to any destination, pods included.
    assert evaluator.side("egress", leia, LUKE_NS2[0], "TCP", 80) is True
    assert evaluator.side("egress", leia, LUKE_NS2[0], "TCP", 81) is False


def test_docs_default_deny_empty_rule_selects_nothing() -> None:
    evaluator = _docs("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: deny-all-ingress, namespace: ns1}
spec:
  endpointSelector: {}
  ingress:
  - {}
""")
    assert evaluator.allows(LUKE_NS1[0], LEIA[0], "TCP", 80) == (True, False)
    assert evaluator.allows(LEIA[0], (None, (), "8.8.8.8"), "UDP", 53) == (True, True)


def test_docs_entities_and_port_ranges() -> None:
    evaluator = CiliumEvaluator(
        [
            yaml.safe_load("""
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: to-api, namespace: ns1}
spec:
  endpointSelector: {}
  egress:
  - toEntities: [kube-apiserver]
    toPorts:
    - ports: [{port: "6443", endPort: 6445, protocol: TCP}]
""")
        ],
        entities={"172.18.0.2": ["kube-apiserver"]},
    )
    leia = LEIA[0]
    assert evaluator.side("egress", leia, (None, (), "172.18.0.2"), "TCP", 6445) is True
    assert evaluator.side("egress", leia, (None, (), "172.18.0.2"), "TCP", 6446) is False
    assert evaluator.side("egress", leia, (None, (), "172.18.0.3"), "TCP", 6443) is False


def _key(endpoint: str) -> EndpointKey:
    kind, _, rest = endpoint.partition(":")
    if kind == "pod":
        namespace, _, labels = rest.partition("/")
        return (namespace, tuple(sorted(labels_from_canonical(labels))), None)
    return (None, (), rest)


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_every_observed_edge_of_every_sample_is_allowed_by_the_cilium_output(sample: Path) -> None:
    # Each sample's edges (what verify checks) through the Cilium evaluator, which reads the
    # manifests themselves, DNS names included, next to the k8s one (verify itself reads the
    # cilium output in tests/check/test_verify_flavors.py).
    result = generate(load_flows(sample), GenerateOptions(default_deny=True))
    dns = read_dns_map([sample])
    manifests = [m for _, m in flavor_manifests(result.policies, "cilium", dns=dns)]
    cilium = CiliumEvaluator(manifests, names_of=dns.names)
    k8s = Evaluator(result.policies)
    checked = 0
    for src, dst, protocol, port in zip(
        result.edges["src"], result.edges["dst"], result.edges["protocol"],
        result.edges["dst_port"], strict=True,
    ):  # fmt: skip
        s, d = _key(src), _key(dst)
        number = None if pd.isna(port) else int(port)
        expected = k8s.allows(s, d, protocol, number)
        assert expected == (True, True), (src, dst, protocol, port)
        assert cilium.allows(s, d, protocol, number) == expected, (src, dst, protocol, port)
        checked += 1
    assert checked == len(result.edges)  # one shared sample has only a denied flow
