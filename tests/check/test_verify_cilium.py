"""verify and diff read CiliumNetworkPolicy (netpolgen.policy.flavors.cilium_read).

The examples are Cilium's own ("Layer 3 Examples", "Layer 4 Examples", "Policy Enforcement
Modes" at docs.cilium.io, and the CRD's field descriptions of v1.18.2 in tests/schemas); each
says which documented behaviour it encodes. The property test checks the reading three ways: on
random NetworkPolicies, the k8s evaluator on them, the Cilium evaluator (cilium_eval, which
reads the manifests) and the k8s evaluator on what cilium_read made of the manifests agree.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.errors import PolicyParseError
from netpolgen.ingest.dns import dns_map_from_rows
from netpolgen.policy.flavors.cilium import CiliumOptions, cilium_manifest
from netpolgen.policy.flavors.cilium_eval import CiliumEvaluator
from netpolgen.policy.flavors.cilium_read import CiliumContext, cilium_policies
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import EndpointKey, Evaluator
from tests.policygen import NAMESPACES, PODS, PROBE_IPS, PROBE_PORTS, PROTOCOLS, random_policies

ENTITIES = {"10.2.3.4": ("kube-apiserver",), "10.9.9.9": ("host", "remote-node")}
LEIA: EndpointKey = ("ns1", (("name", "leia"),), None)
LUKE_NS1: EndpointKey = ("ns1", (("name", "luke"),), None)
LUKE_NS2: EndpointKey = ("ns2", (("name", "luke"),), None)


def read(
    text: str, context: CiliumContext | None = None, notes: list[str] | None = None
) -> Evaluator:
    policies: list[Policy] = []
    for document in yaml.safe_load_all(text):
        policies += cilium_policies(
            document, context or CiliumContext(), notes if notes is not None else [], "test.yaml:1"
        )
    return Evaluator(policies, {"ns1": {}, "ns2": {"team": "rebels"}})


def outside(ip: str) -> EndpointKey:
    return (None, (), ip)


HEAD = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"


def test_docs_cross_namespace_needs_the_namespace_label() -> None:
    # "Layer 3 Examples", namespaces: a fromEndpoints selector with
    # k8s:io.kubernetes.pod.namespace reaches that namespace; without it only the policy's own.
    ev = read(
        HEAD
        + """
metadata: {name: k8s-expose-across-namespace, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: ns2, name: luke}
"""
    )
    assert ev.allows(LUKE_NS2, LEIA, "TCP", 80) == (True, True)
    assert ev.allows(LUKE_NS1, LEIA, "TCP", 80) == (True, False)


def test_endpoints_without_namespace_key_are_the_policy_s_namespace() -> None:
    # Cilium's getEndpointSelector adds the policy's namespace when the selector has no
    # namespace key, even when it names namespace labels (io.cilium.k8s.namespace.labels.*).
    ev = read(
        HEAD
        + """
metadata: {name: l3-rule, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  ingress:
  - fromEndpoints: [{matchLabels: {name: luke}}]
  - fromEndpoints: [{matchLabels: {k8s:io.cilium.k8s.namespace.labels.team: rebels}}]
"""
    )
    assert ev.side("Ingress", LEIA, LUKE_NS1, "TCP", 80) is True
    assert ev.side("Ingress", LEIA, LUKE_NS2, "TCP", 80) is False  # team=rebels, but ns2


def test_namespace_labels_with_the_namespace_key_span_namespaces() -> None:
    ev = read(
        HEAD
        + """
metadata: {name: rebels, namespace: ns1}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints:
    - matchLabels: {k8s:io.cilium.k8s.namespace.labels.team: rebels}
      matchExpressions: [{key: k8s:io.kubernetes.pod.namespace, operator: Exists}]
"""
    )
    assert ev.side("Ingress", LEIA, LUKE_NS2, "TCP", 80) is True
    assert ev.side("Ingress", LEIA, LUKE_NS1, "TCP", 80) is False


def test_default_deny_forms() -> None:
    # "Policy Enforcement Modes": [{}] puts the direction under enforcement and selects no
    # peer; the CRD: "If omitted or empty, this rule does not apply at ingress".
    ev = read(
        HEAD
        + """
metadata: {name: deny-all-ingress, namespace: ns1}
spec:
  endpointSelector: {}
  ingress: [{}]
  egress: []
"""
    )
    assert ev.allows(LEIA, LUKE_NS1, "TCP", 80) == (True, False)
    assert ev.policies[0].policy_types == ("Ingress",)


def test_cidr_rules_never_match_cluster_identities() -> None:
    # "Layer 3 Examples", CIDR: toCIDR and toCIDRSet with except; CIDR rules select addresses
    # outside the cluster, never a node or the API server (those have entities).
    ev = read(
        HEAD
        + """
metadata: {name: cidr-rule, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  egress:
  - toCIDR: [20.1.1.1/32]
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.96.0.0/12]}]
""",
        CiliumContext(entities=ENTITIES),
    )
    assert ev.side("Egress", LEIA, outside("20.1.1.1"), "UDP", 9) is True
    assert ev.side("Egress", LEIA, outside("10.1.2.3"), "TCP", 9) is True
    assert ev.side("Egress", LEIA, outside("10.96.0.10"), "TCP", 9) is False
    assert ev.side("Egress", LEIA, outside("10.9.9.9"), "TCP", 9) is False  # a node
    assert ev.side("Egress", LEIA, outside("10.2.3.4"), "TCP", 9) is False  # the API server
    assert ev.side("Egress", LEIA, LUKE_NS1, "TCP", 9) is False  # pods never


def test_entities_stand_for_their_addresses() -> None:
    # "Layer 3 Examples", entities: world is outside the cluster, cluster is inside,
    # remote-node the other nodes, kube-apiserver the API server, all everything.
    def egress(entity: str) -> Evaluator:
        return read(
            HEAD
            + f"""
metadata: {{name: e, namespace: ns1}}
spec:
  endpointSelector: {{}}
  egress: [{{toEntities: [{entity}]}}]
""",
            CiliumContext(entities=ENTITIES),
        )

    peers = [outside("8.8.8.8"), outside("10.9.9.9"), outside("10.2.3.4"), LUKE_NS2]
    table = {
        "world": [True, False, False, False],
        "cluster": [False, True, True, True],
        "remote-node": [False, True, False, False],
        "kube-apiserver": [False, False, True, False],
        "all": [True, True, True, True],
        "host": [False, False, False, False],  # the pod's own node: never checked by verify
        "none": [False, False, False, False],
    }
    for entity, expected in table.items():
        ev = egress(entity)
        assert [ev.side("Egress", LEIA, p, "TCP", 1) for p in peers] == expected, entity


def test_ports_any_protocol_ranges_wildcard_and_names() -> None:
    # "Layer 4 Examples": protocol ANY or missing matches TCP, UDP and SCTP ("Matching on ICMP
    # is not supported"); port "0" every port; endPort the inclusive range; a name a container
    # port of the destination.
    ev = read(
        HEAD
        + """
metadata: {name: ports, namespace: ns1}
spec:
  endpointSelector: {}
  egress:
  - toEndpoints: [{}]
    toPorts:
    - ports: [{port: "80"}, {port: "6000", endPort: 6010, protocol: UDP}, {port: http}]
  - toCIDR: [8.8.8.8/32]
    toPorts: [{ports: [{port: "0", protocol: TCP}]}]
"""
    )
    named = (("http", "TCP", 8080),)
    for protocol in ("TCP", "UDP", "SCTP"):
        assert ev.side("Egress", LEIA, LUKE_NS1, protocol, 80) is True
    assert ev.side("Egress", LEIA, LUKE_NS1, "ICMP", None) is False
    assert ev.side("Egress", LEIA, LUKE_NS1, "UDP", 6010) is True
    assert ev.side("Egress", LEIA, LUKE_NS1, "TCP", 6010) is False
    assert ev.side("Egress", LEIA, LUKE_NS1, "TCP", 8080, named) is True
    assert ev.side("Egress", LEIA, LUKE_NS1, "TCP", 8080) is False
    assert ev.side("Egress", LEIA, outside("8.8.8.8"), "TCP", 12345) is True
    assert ev.side("Egress", LEIA, outside("8.8.8.8"), "UDP", 53) is False


def test_l4_only_rule_matches_every_peer() -> None:
    # "Layer 4 Examples": a rule with toPorts and no L3 member allows those ports to anyone.
    ev = read(
        HEAD
        + """
metadata: {name: l4-rule, namespace: ns1}
spec:
  endpointSelector: {matchLabels: {name: leia}}
  egress:
  - toPorts: [{ports: [{port: "80", protocol: TCP}]}]
"""
    )
    assert ev.side("Egress", LEIA, LUKE_NS2, "TCP", 80) is True
    assert ev.side("Egress", LEIA, outside("8.8.8.8"), "TCP", 80) is True
    assert ev.side("Egress", LEIA, outside("8.8.8.8"), "TCP", 81) is False


def test_fqdns_resolve_through_the_dns_map_of_the_logs() -> None:
    # "DNS based" policies: toFQDNs allows the addresses the DNS proxy saw answered for the
    # names (matchName exact; matchPattern "*" within one label); the DNS rule is L7 DNS.
    dns = dns_map_from_rows([
        ("203.0.113.7", "api.example.com", None, None),
        ("203.0.113.8", "cdn.example.com", None, None),
        ("203.0.113.9", "a.b.example.com", None, None),
        ("198.51.100.1", "other.test", None, None),
    ])  # fmt: skip
    text = (
        HEAD
        + """
metadata: {name: fqdn, namespace: ns1}
spec:
  endpointSelector: {}
  egress:
  - toFQDNs: [{matchName: api.example.com}, {matchPattern: "*.example.com"}]
    toPorts: [{ports: [{port: "443", protocol: TCP}]}]
  - toEndpoints:
    - matchLabels: {k8s:io.kubernetes.pod.namespace: kube-system, k8s:k8s-app: kube-dns}
    toPorts:
    - ports: [{port: "53", protocol: ANY}]
      rules: {dns: [{matchPattern: "*"}]}
"""
    )
    notes: list[str] = []
    ev = read(text, CiliumContext(dns=dns), notes)
    assert notes == []  # the DNS rule is what the cilium flavour writes: nothing to say
    assert ev.side("Egress", LEIA, outside("203.0.113.7"), "TCP", 443) is True
    assert ev.side("Egress", LEIA, outside("203.0.113.8"), "TCP", 443) is True
    assert ev.side("Egress", LEIA, outside("203.0.113.9"), "TCP", 443) is False  # two labels
    assert ev.side("Egress", LEIA, outside("198.51.100.1"), "TCP", 443) is False
    # Without DNS answers: no address, and a note says so.
    read(text, CiliumContext(), notes)
    assert any("toFQDNs names no address" in n for n in notes)


def test_fqdns_without_dns_answers_use_the_policy_s_own_annotation() -> None:
    text = (
        HEAD
        + """
metadata:
  name: fqdn
  namespace: ns1
  annotations: {netpolgen.io/fqdns: "203.0.113.10/31: api.payments.example"}
spec:
  endpointSelector: {}
  egress: [{toFQDNs: [{matchName: api.payments.example}]}]
"""
    )
    notes: list[str] = []
    ev = read(text, CiliumContext(), notes)
    assert ev.side("Egress", LEIA, outside("203.0.113.11"), "TCP", 443) is True
    assert ev.side("Egress", LEIA, outside("203.0.113.12"), "TCP", 443) is False
    assert any("netpolgen.io/fqdns annotation" in n for n in notes)


def test_l7_rules_are_read_at_l4_with_a_note() -> None:
    # "Layer 7 Examples": HTTP rules filter requests inside an allowed connection.
    notes: list[str] = []
    ev = read(
        HEAD
        + """
metadata: {name: l7, namespace: ns1}
spec:
  endpointSelector: {}
  ingress:
  - fromEndpoints: [{}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules: {http: [{method: GET, path: /public}]}
""",
        notes=notes,
    )
    assert ev.side("Ingress", LEIA, LUKE_NS1, "TCP", 80) is True
    assert len(notes) == 1 and "L7 http read at L3/L4" in notes[0] and "ns1/l7" in notes[0]


@pytest.mark.parametrize(
    ("spec", "construct"),
    [
        ("endpointSelector: {}\n  ingressDeny: [{fromEntities: [world]}]", "spec.ingressDeny"),
        ("endpointSelector: {}\n  egressDeny: [{toEntities: [world]}]", "spec.egressDeny"),
        ("nodeSelector: {}\n  ingress: [{}]", "spec.nodeSelector"),
        (
            "endpointSelector: {}\n  egress: [{toServices: [{k8sService: {serviceName: a}}]}]",
            "egress[0].toServices",
        ),
        (
            "endpointSelector: {}\n  egress: [{toGroups: [{aws: {securityGroupsIds: [sg-1]}}]}]",
            "egress[0].toGroups",
        ),
        ("endpointSelector: {}\n  egress: [{toRequires: [{}]}]", "egress[0].toRequires"),
        ("endpointSelector: {}\n  egress: [{icmps: [{fields: [{type: 8}]}]}]", "egress[0].icmps"),
        (
            "endpointSelector: {}\n  enableDefaultDeny: {egress: false}\n"
            "  egress: [{toEntities: [world]}]",
            "enableDefaultDeny.egress: false",
        ),
        ("endpointSelector: {}\n  egress: [{toCIDRSet: [{cidrGroupRef: office}]}]", "cidrGroupRef"),
        ("endpointSelector: {matchLabels: {reserved:host: ''}}\n  ingress: [{}]", "label source"),
    ],  # fmt: skip
)
def test_constructs_outside_the_subset_are_errors_naming_them(
    tmp_path: Any, spec: str, construct: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + f"metadata: {{name: x, namespace: ns1}}\nspec:\n  {spec}\n")
    with pytest.raises(PolicyParseError) as error:
        load_policies(path)
    message = str(error.value)
    assert construct in message and "ns1/x" in message and "p.yaml" in message
    assert "outside what verify and diff read" in message


def test_clusterwide_policies_are_read_per_namespace_with_the_inventory(tmp_path: Any) -> None:
    # A CiliumClusterwideNetworkPolicy selects endpoints of every namespace, and its peer
    # selectors without a namespace label match every namespace (Cilium adds the namespace only
    # to namespaced policies' selectors).
    path = tmp_path / "ccnp.yaml"
    path.write_text(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\n"
        "metadata: {name: luke-only}\nspec:\n  endpointSelector: {matchLabels: {name: leia}}\n"
        "  ingress: [{fromEndpoints: [{matchLabels: {name: luke}}]}]\n"
    )
    with pytest.raises(PolicyParseError, match="needs the cluster's namespaces"):
        load_policies(path)
    context = CiliumContext(namespace_labels={"ns1": {}, "ns2": {"team": "rebels"}})
    loaded = load_policies(path, cilium=context)
    assert sorted((p.namespace, p.name) for p in loaded) == [
        ("ns1", "clusterwide:luke-only"), ("ns2", "clusterwide:luke-only"),
    ]  # fmt: skip
    ev = Evaluator(loaded, context.namespace_labels)
    leia_ns2 = ("ns2", (("name", "leia"),), None)
    assert ev.side("Ingress", LEIA, LUKE_NS2, "TCP", 80) is True
    assert ev.side("Ingress", leia_ns2, LUKE_NS1, "TCP", 80) is True
    assert ev.side("Ingress", LEIA, ("ns2", (("name", "han"),), None), "TCP", 80) is False


def test_a_directory_mixes_kinds_and_lists(tmp_path: Any) -> None:
    (tmp_path / "a.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n- "
        + yaml.safe_dump(
            yaml.safe_load(
                HEAD
                + "metadata: {name: c, namespace: ns1}\nspec: {endpointSelector: {}, ingress: [{}]}"
            )
        ).replace("\n", "\n  ")
        + "\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: k, namespace: ns2}\nspec: {podSelector: {}}\n"
    )
    loaded = load_policies(tmp_path)
    assert sorted(f"{p.namespace}/{p.name}" for p in loaded) == ["ns1/c", "ns2/k"]


# --- the translation against both evaluators ----------------------------------------------------


def _ends() -> list[tuple[EndpointKey, tuple[tuple[str, str, int], ...]]]:
    pods = [
        ((ns, tuple(sorted(labels.items())), None), tuple(sorted(named)))
        for ns, _, labels, named in PODS
    ]
    return [*pods, *(((None, (), ip), ()) for ip in PROBE_IPS)]


def assert_read_back_agrees(policies: list[Policy]) -> int:
    manifests = [cilium_manifest(p, CiliumOptions(entities=ENTITIES)) for p in policies]
    notes: list[str] = []
    read_back = [
        p
        for m in manifests
        for p in cilium_policies(m, CiliumContext(entities=ENTITIES), notes, "m")
    ]
    k8s = Evaluator(policies, NAMESPACES)
    cilium = CiliumEvaluator(manifests, NAMESPACES, ENTITIES)
    ours = Evaluator(read_back, NAMESPACES)
    compared = 0
    ends = _ends()
    for src, _ in ends:
        for dst, named in ends:
            if src[0] is None and dst[0] is None:
                continue
            for protocol in PROTOCOLS:
                for port in PROBE_PORTS:
                    expected = k8s.allows(src, dst, protocol, port, named)
                    assert cilium.allows(src, dst, protocol, port, named) == expected
                    got = ours.allows(src, dst, protocol, port, named)
                    assert got == expected, (src, dst, protocol, port, manifests, read_back)
                    compared += 1
    return compared


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 1_000_000))
def test_reading_the_cilium_flavour_back_allows_exactly_what_kubernetes_allows(seed: int) -> None:
    policies = [Policy.from_manifest(m) for m in random_policies(seed, nca_safe=False)]
    assert assert_read_back_agrees(policies) > 0


def test_the_read_back_comparison_can_fail() -> None:
    # A reading that let CIDR rules match the API server would disagree: the check bites.
    policies = [Policy.from_manifest(yaml.safe_load("""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: a}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]
"""))]  # fmt: skip
    manifest = cilium_manifest(policies[0], CiliumOptions(entities={}))
    (wrong,) = cilium_policies(
        manifest, CiliumContext(entities={"10.2.3.4": ("kube-apiserver",)}), [], "m"
    )
    k8s = Evaluator(policies, NAMESPACES)
    api = (None, (), "10.2.3.4")
    pod = ("a", (("app", "db"),), None)
    assert k8s.side("Egress", pod, api, "TCP", 443) != Evaluator([wrong]).side(
        "Egress", pod, api, "TCP", 443
    )


# --- the commands --------------------------------------------------------------------------------


def test_cli_verify_and_diff_of_the_cilium_output(tmp_path: Any) -> None:
    # The README's sample, both outputs from from-flows -o DIR: verify is clean on the cilium
    # one and diff finds it the same as the k8s one (exit 0).
    from click.testing import CliRunner

    from netpolgen.cli import cli
    from tests.conftest import SAMPLE_FLOWS

    sample = str(SAMPLE_FLOWS / "online-shop.hubble.jsonl")
    inventory = str(SAMPLE_FLOWS / "online-shop.inventory.json")
    runner = CliRunner()
    for flavor in ("k8s", "cilium"):
        args = ["from-flows", sample, "-i", inventory, "--flavor", flavor, "-o"]
        result = runner.invoke(cli, [*args, str(tmp_path / flavor), "-q"])
        assert result.exit_code == 0, result.output
    verify = runner.invoke(
        cli, ["verify", sample, "--policies", str(tmp_path / "cilium"), "-i", inventory, "-q"]
    )
    assert verify.exit_code == 0, verify.output
    assert "denied:  0 flows" in verify.stdout
    diff = runner.invoke(
        cli, ["diff", str(tmp_path / "k8s"), str(tmp_path / "cilium"), "-i", inventory, "-q"]
    )
    assert diff.exit_code == 0, diff.output
    assert "0 connection ranges newly allowed, 0 no longer allowed" in diff.stdout


def test_cli_names_the_file_of_an_unsupported_construct(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "deny.yaml").write_text(
        HEAD + "metadata: {name: x, namespace: ns1}\n"
        "spec: {endpointSelector: {}, egressDeny: [{toEntities: [world]}]}\n"
    )
    flows = tmp_path / "f.csv"
    flows.write_text(
        "src_namespace,src_labels,dst_ip,dst_port,protocol\nns1,app=a,8.8.8.8,53,UDP\n"
    )
    result = CliRunner().invoke(cli, ["verify", str(flows), "--policies", str(tmp_path / "p")])
    assert result.exit_code == 1
    assert "deny.yaml" in result.stderr and "spec.egressDeny" in result.stderr
    assert "Traceback" not in result.output


def test_a_rule_that_matches_nothing_keeps_its_place() -> None:
    # Reports number rules as written: egress[1] stays rule 1 after a rule that matches nothing
    # (entity none: "matches nothing" in Cilium's entity list).
    ev = read(
        HEAD
        + """
metadata: {name: numbered, namespace: ns1}
spec:
  endpointSelector: {}
  egress:
  - toEntities: [none]
  - toCIDR: [8.8.8.8/32]
"""
    )
    (policy,) = ev.policies
    assert len(policy.egress) == 2 and policy.egress[1].peers[0].ip_block is not None
    assert ev.side("Egress", LEIA, outside("8.8.8.8"), "TCP", 1) is True
    assert ev.side("Egress", LEIA, LUKE_NS1, "TCP", 1) is False
    assert ev.side("Egress", LEIA, outside("8.8.4.4"), "TCP", 1) is False
