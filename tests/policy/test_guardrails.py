"""--guardrails: the file format, the Admin-tier ClusterNetworkPolicy objects, and generation that
never allows what a deny entry forbids.

The property test generates random flows and random deny entries over the small cluster of
``tests.policygen`` and checks, with the k8s evaluator (``netpolgen.policy.semantics``), that no
generated rule lets a denied (source, destination, protocol, port) through, on either side.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen import GenerateOptions, generate, load_flows
from netpolgen.cli import cli
from netpolgen.errors import PolicyParseError
from netpolgen.ingest.accounting import is_balanced
from netpolgen.policy.default_deny import default_deny_policies
from netpolgen.policy.flavors.cluster_policy import MAX_RULES, guardrail_manifests
from netpolgen.policy.guardrail_enforce import GUARDRAILS_ANNOTATION, subtract_ports
from netpolgen.policy.guardrails import Guardrails, PortRange, load_guardrails, parse_guardrails
from netpolgen.policy.model import PortSpec
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator
from netpolgen.selectors import NAMESPACE_NAME_LABEL
from tests import flowkit
from tests.conftest import SAMPLE_FLOWS
from tests.crd import assert_valid_custom_resources
from tests.policygen import NAMESPACES, PODS

DATA = Path(__file__).resolve().parents[1] / "data"
SHOP_GUARDRAILS = DATA / "guardrails-online-shop.yaml"
ONLINE_SHOP = SAMPLE_FLOWS / "online-shop.csv"
THREE_TIER = SAMPLE_FLOWS / "three-tier.csv"

# --- the file format ---------------------------------------------------------------------------


def test_the_documented_example_parses() -> None:
    guardrails = load_guardrails(SHOP_GUARDRAILS)
    assert [g.name for g in guardrails.deny] == ["no-loadgen-in-shop", "no-metadata-service"]
    assert [g.name for g in guardrails.allow] == ["prometheus-scrapes", "allow-dns"]
    scrape = guardrails.allow[0]
    assert scrape.ports == (PortRange("TCP", 9090, 9090), PortRange("TCP", 9100, 9102))
    assert scrape.target.pods.is_empty and scrape.target.namespaces.is_empty
    assert guardrails.deny[1].target.networks == ("169.254.169.254/32",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"deny": [{"to": {"namespace": "prod"}}]}, r"deny\[0\]\.from: is missing"),
        ({"deny": [{"from": {}, "to": {"namespace": "b"}}]}, r"deny\[0\]\.from: is empty"),
        (
            {"allow": [{"from": {"networks": ["10.0.0.0/8"]}, "to": {"pods": "all"}}]},
            r"allow\[0\]\.from: networks is only for to",
        ),  # fmt: skip
        (
            {"deny": [{"from": {"pods": "all"}, "to": {"networks": ["10.0.0.300/8"]}}]},
            r"deny\[0\]\.to\.networks: '10\.0\.0\.300/8' is not a CIDR",
        ),  # fmt: skip
        (
            {"deny": [{"from": {"pods": "all"}, "to": {"pods": "all"}, "ports": [53]}]},
            r"deny\[0\]\.ports: 53: write PORT/PROTOCOL",
        ),  # fmt: skip
        (
            {"deny": [{"from": {"pods": "all"}, "to": {"pods": "all"}, "ports": ["90-80/TCP"]}]},
            r"first <= last",
        ),  # fmt: skip
        (
            {"deny": [{"from": {"pods": "all"}, "to": {"pods": "all"}, "ports": ["80/ICMP"]}]},
            r"protocol must be TCP, UDP or SCTP",
        ),  # fmt: skip
        (
            {"deny": [{"from": {"namespace": "a", "namespaces": ["b"]}, "to": {"pods": "all"}}]},
            r"give one of namespace, namespaces",
        ),  # fmt: skip
        (
            {"deny": [{"from": {"pods": "all"}, "to": {"pod": "all"}}]},
            r"deny\[0\]\.to: unknown key pod",
        ),  # fmt: skip
        (
            {
                "deny": [
                    {
                        "from": {
                            "namespaceSelector": {
                                "matchExpressions": [{"key": "env", "operator": "In"}]
                            }
                        },
                        "to": {"pods": "all"},
                    }
                ]
            },
            r"deny\[0\]\.from\.namespaceSelector\.matchExpressions\[0\]: operator In needs values",
        ),
        (
            {"deny": [{"name": "Bad_Name", "from": {"pods": "all"}, "to": {"pods": "all"}}]},
            r"deny\[0\]\.name: 'Bad_Name' is not a lower-case DNS label",
        ),  # fmt: skip
        (
            {
                "deny": [
                    {"name": "x", "from": {"pods": "all"}, "to": {"pods": "all"}},
                    {"name": "x", "from": {"pods": "all"}, "to": {"pods": "all"}},
                ]
            },
            r"x used more than once",
        ),  # fmt: skip
        ({"allow-dns": "yes"}, r"allow-dns: must be true or false"),
        ({"denied": []}, r"file: unknown key denied"),
        (["deny"], r"file: must be a mapping"),
    ],
)
def test_bad_input_names_the_file_and_the_entry(document: Any, message: str) -> None:
    with pytest.raises(PolicyParseError, match=message) as raised:
        parse_guardrails(document, "guards.yaml")
    assert str(raised.value).startswith("guards.yaml: guardrails ")


def test_a_file_that_is_not_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("deny: [\n", encoding="utf-8")
    with pytest.raises(PolicyParseError, match="not valid YAML") as raised:
        load_guardrails(path)
    assert raised.value.source == str(path)


def test_the_cli_reports_a_bad_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("deny: [{from: {namespace: dev}}]\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["from-flows", str(THREE_TIER), "--guardrails", str(path)])
    assert result.exit_code == 1
    assert f"{path}: guardrails deny[0].to: is missing" in result.stderr
    assert "Traceback" not in result.output


# --- the ClusterNetworkPolicy objects ----------------------------------------------------------


def test_objects_validate_and_deny_comes_before_accept() -> None:
    manifests = guardrail_manifests(load_guardrails(SHOP_GUARDRAILS))
    assert_valid_custom_resources(yaml.safe_dump_all(manifests))
    denies = [m["spec"]["priority"] for m in manifests if "-deny-" in m["metadata"]["name"]]
    accepts = [m["spec"]["priority"] for m in manifests if "-accept-" in m["metadata"]["name"]]
    assert denies and accepts and max(denies) < min(accepts)
    priorities = denies + accepts
    assert len(set(priorities)) == len(priorities)  # never two objects at one priority
    assert all(m["spec"]["tier"] == "Admin" for m in manifests)
    # A deny to networks is an egress rule on the from side only (no ingress networks peer).
    metadata = next(
        m
        for m in manifests
        for r in m["spec"].get("egress", [])
        if r["name"] == "no-metadata-service"
    )
    assert {"networks": ["169.254.169.254/32"]} in metadata["spec"]["egress"][-1]["to"]
    assert not any(
        r["name"] == "no-metadata-service" for m in manifests for r in m["spec"].get("ingress", [])
    )


def test_an_accept_is_written_at_both_ends() -> None:
    # Each direction is decided on its own: an Accept on the ingress side only would leave the
    # source's egress NetworkPolicies to deny it.
    guardrails = parse_guardrails({"allow-dns": True})
    by_side = {
        ("ingress" if "ingress" in m["spec"] else "egress"): m["spec"]["subject"]
        for m in guardrail_manifests(guardrails)
    }
    assert by_side["egress"] == {"namespaces": {}}
    assert by_side["ingress"]["pods"]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


def test_more_than_25_rules_are_split_into_objects() -> None:
    entries = [{"from": {"namespace": f"team-{i}"}, "to": {"namespace": "prod"}} for i in range(60)]
    manifests = guardrail_manifests(parse_guardrails({"deny": entries}))
    assert_valid_custom_resources(yaml.safe_dump_all(manifests))
    prod = [m for m in manifests if "ingress" in m["spec"]]
    assert [len(m["spec"]["ingress"]) for m in prod] == [MAX_RULES, MAX_RULES, 10]
    assert len({m["metadata"]["name"] for m in manifests}) == len(manifests) == 3 + 60


# --- generation respects them ------------------------------------------------------------------


def _options(document: dict[str, Any], **kwargs: Any) -> GenerateOptions:
    return GenerateOptions(guardrails=parse_guardrails(document), **kwargs)


def test_denied_edges_are_filtered_counted_and_warned() -> None:
    table = load_flows(ONLINE_SHOP)
    plain = generate(table)
    guarded = generate(table, GenerateOptions(guardrails=load_guardrails(SHOP_GUARDRAILS)))
    report = guarded.report
    assert report.filtered["denied by a guardrail"] == 10  # the loadgenerator -> frontend records
    assert is_balanced(report)
    assert report.records_used == plain.report.records_used - 10
    assert any(
        "no-loadgen-in-shop" in m and "e.g. shop/app=loadgenerator" in m for m in report.messages
    )
    edges = guarded.edges
    assert not (
        edges["src"].str.contains("loadgenerator") & edges["dst"].str.startswith("pod:shop/")
    ).any()
    frontend = next(p for p in guarded.policies if p.name == "frontend-access-ingress")
    assert "loadgenerator" not in yaml.safe_dump(frontend.to_manifest())


def test_the_dns_rule_is_cut_when_a_guardrail_denies_it() -> None:
    table = load_flows(THREE_TIER)
    options = _options(
        {
            "deny": [
                {
                    "name": "no-dns",
                    "from": {"pods": {"role": "backend"}},
                    "to": {"namespace": "kube-system"},
                    "ports": ["53/UDP"],
                }
            ]
        }  # fmt: skip
    )
    backend = next(
        p for p in generate(table, options).policies if p.name == "backend-access-egress"
    )
    notes = dict(backend.annotations)
    assert "no-dns" in notes[GUARDRAILS_ANNOTATION]
    assert "denied by a guardrail" in notes["netpolgen.io/dns"]
    dns_rules = [
        r for r in backend.egress if any(p.namespace_selector is not None for p in r.peers)
    ]
    assert [r.ports for r in dns_rules] == [(PortSpec("TCP", 53),)]  # UDP 53 cut, TCP kept


def test_widened_blocks_except_denied_networks() -> None:
    table = flowkit.flows(
        {"src": "shop/app=web", "dst": "203.0.113.7", "dst_port": 443},
        {"src": "shop/app=web", "dst": "203.0.113.9", "dst_port": 443},
    )
    options = _options(
        {"deny": [{"from": {"namespace": "shop"}, "to": {"networks": ["203.0.113.128/25"]}}]},
        cidr_prefix_v4=24,
    )
    (policy,) = [p for p in generate(table, options).policies if p.policy_types == ("Egress",)]
    blocks = [p.ip_block for r in policy.egress for p in r.peers if p.ip_block is not None]
    assert blocks and all("203.0.113.128/25" in b.except_ for b in blocks if b.cidr.endswith("/24"))


def test_port_subtraction() -> None:
    tcp80 = (PortRange("TCP", 80, 80),)
    assert subtract_ports((PortSpec("TCP", 80),), tcp80) is None
    assert subtract_ports((PortSpec("TCP", 79, 81),), tcp80) == (
        PortSpec("TCP", 79),
        PortSpec("TCP", 81),
    )
    assert subtract_ports((PortSpec("TCP"),), tcp80) == (
        PortSpec("TCP", 1, 79),
        PortSpec("TCP", 81, 65535),
    )
    assert subtract_ports((), None) is None
    assert subtract_ports((PortSpec("UDP", 53),), tcp80) == (PortSpec("UDP", 53),)
    assert subtract_ports((PortSpec("TCP", "http"),), tcp80) is None  # its number is unknown
    every = subtract_ports((), (PortRange("TCP", 1, 65535),))
    assert every == (PortSpec("SCTP"), PortSpec("UDP"))


def test_allow_entries_leave_the_policies_as_they_are() -> None:
    table = load_flows(ONLINE_SHOP)
    document = {"allow": [{"from": {"namespace": "monitoring"}, "to": {"pods": "all"}}],
                "allow-dns": True}  # fmt: skip
    assert generate(table, _options(document)).policies == generate(table).policies


# --- the property ------------------------------------------------------------------------------

NS_LABELS = {
    **{ns: {**labels, NAMESPACE_NAME_LABEL: ns} for ns, labels in NAMESPACES.items()},
    "kube-system": {NAMESPACE_NAME_LABEL: "kube-system"},
}
CLUSTER = [(ns, labels) for ns, _, labels, _ in PODS] + [("kube-system", {"k8s-app": "kube-dns"})]
OUTSIDE = ("203.0.113.5", "8.8.8.8", "10.9.9.9")
PORTS = (53, 80, 443, 5432, 8080, 9090)


def _side(rng: random.Random, *, target: bool) -> dict[str, Any]:
    choice = rng.random()
    if target and choice < 0.15:
        return {"networks": [rng.choice(["203.0.113.0/24", "8.8.8.8/32", "10.0.0.0/8"])]}
    side: dict[str, Any] = {}
    kind = rng.random()
    if kind < 0.35:
        side["namespace"] = rng.choice([*NAMESPACES, "kube-system"])
    elif kind < 0.5:
        side["namespaces"] = rng.sample(sorted(NAMESPACES), 2)
    elif kind < 0.65:
        side["namespaceSelector"] = {"matchLabels": {"env": rng.choice(["prod", "dev"])}}
    if rng.random() < 0.5:
        side["pods"] = rng.choice([{"app": "web"}, {"tier": "front"}, {"app": "db"}])
    return side or {"pods": "all"}


def _scenario(seed: int) -> tuple[pd.DataFrame, Guardrails]:
    rng = random.Random(seed)
    ends = [f"{ns}/{','.join(f'{k}={v}' for k, v in sorted(lb.items()))}" for ns, lb in CLUSTER]
    rows = [
        {
            "src": rng.choice(ends[:-1]),
            "dst": rng.choice([*ends, *OUTSIDE]),
            "dst_port": rng.choice(PORTS),
            "protocol": rng.choice(["TCP", "UDP"]),
        }  # fmt: skip
        for _ in range(rng.randint(5, 30))
    ]
    # Every pod appears in the flows (generation knows the pods it writes selectors for).
    rows += [{"src": end, "dst": "198.51.100.1", "dst_port": 443} for end in ends[:-1]]
    deny = []
    for _ in range(rng.randint(1, 3)):
        entry: dict[str, Any] = {
            "from": _side(rng, target=False),
            "to": _side(rng, target=True),
        }
        if rng.random() < 0.5:
            entry["ports"] = rng.sample(["53/UDP", "80/TCP", "5432/TCP", "8000-9000/TCP"], 2)
        deny.append(entry)
    guardrails = parse_guardrails({"deny": deny}).with_namespace_labels(NS_LABELS)
    return flowkit.flows(*rows), guardrails


def _leaks(guardrails: Guardrails, policies: list[Any]) -> list[tuple[Any, ...]]:
    # Every namespace default-denied: what is allowed is what some generated rule allows.
    closed = policies + default_deny_policies([*NS_LABELS], ingress=True, egress=True)
    evaluator = Evaluator(closed, NS_LABELS)
    pods: list[tuple[EndpointKey, dict[str, str]]] = [
        ((ns, tuple(sorted(labels.items())), None), labels) for ns, labels in CLUSTER
    ]
    leaks = []
    for guardrail in guardrails.deny:
        for src, src_labels in pods:
            if not guardrail.source.matches_pod(str(src[0]), src_labels, NS_LABELS[str(src[0])]):
                continue
            targets: list[EndpointKey] = [
                key
                for key, labels in pods
                if guardrail.target.matches_pod(str(key[0]), labels, NS_LABELS[str(key[0])])
            ] + [(None, (), ip) for ip in OUTSIDE if guardrail.target.matches_address(ip)]
            for dst in targets:
                for protocol in ("TCP", "UDP"):
                    for port in PORTS:
                        if not guardrail.covers_port(protocol, port):
                            continue
                        egress = evaluator.side(EGRESS, src, dst, protocol, port, ())
                        ingress = dst[0] is not None and evaluator.side(
                            INGRESS, dst, src, protocol, port, ()
                        )
                        if egress or ingress:
                            leaks.append((guardrail.name, src, dst, protocol, port))
    return leaks


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 1_000_000))
def test_guardrails_never_let_a_denied_pair_through(seed: int) -> None:
    table, guardrails = _scenario(seed)
    for widen in (32, 8):
        result = generate(table, GenerateOptions(guardrails=guardrails, cidr_prefix_v4=widen))
        assert _leaks(guardrails, result.policies) == []
        assert is_balanced(result.report)


def test_the_property_can_fail() -> None:
    # Without --guardrails the same flows do give denied pairs rules: the check is not vacuous.
    found = 0
    for seed in range(40):
        table, guardrails = _scenario(seed)
        found += bool(_leaks(guardrails, generate(table).policies))
    assert found > 10


# --- the command -------------------------------------------------------------------------------


def test_cli_output_golden(golden: Any) -> None:
    args = ["from-flows", str(ONLINE_SHOP), "-q", "--guardrails", str(SHOP_GUARDRAILS)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.stdout))
    cluster = [d for d in documents if d["kind"] == "ClusterNetworkPolicy"]
    assert cluster and documents[-len(cluster) :] == cluster  # after the policies
    assert_valid_custom_resources(yaml.safe_dump_all(cluster))
    # The path in the purpose annotation is the one given: golden with a stable one.
    golden("guardrails/online-shop.yaml", result.stdout.replace(str(SHOP_GUARDRAILS), "GUARDRAILS"))


def test_cli_directory_and_file_outputs(tmp_path: Path) -> None:
    args = ["from-flows", str(THREE_TIER), "-q", "--guardrails", str(SHOP_GUARDRAILS)]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "out" / "_cluster").iterdir())
    assert written[0] == "kustomization.yaml"
    assert written[1:] and all(n.startswith("netpolgen-guardrail-") for n in written[1:])
    # kubectl apply -k DIR applies the policies and the guardrails, as without --guardrails.
    top = yaml.safe_load((tmp_path / "out" / "kustomization.yaml").read_text())
    assert top["resources"] == ["_cluster", "default"]
    result = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "one.yaml")])
    assert result.exit_code == 2 and "--guardrails writes to a directory" in result.output


def test_migrate_writes_the_guardrails_first_and_respects_them(tmp_path: Path) -> None:
    out = tmp_path / "plan"
    args = ["migrate", str(ONLINE_SHOP), "-o", str(out), "--guardrails", str(SHOP_GUARDRAILS)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "warning: guardrail no-loadgen-in-shop" in result.stderr
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders[0] == "00-guardrails" and len(folders) > 1
    objects = sorted((out / "00-guardrails").glob("netpolgen-guardrail-*.yaml"))
    assert_valid_custom_resources("".join("---\n" + p.read_text() for p in objects))
    kustomization = yaml.safe_load((out / "00-guardrails" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [p.name for p in objects]
    assert "00-guardrails/" in (out / "README.md").read_text()
    staged = "".join(p.read_text() for p in out.glob("*-shop-ingress/frontend-access-ingress.yaml"))
    assert staged and "loadgenerator" not in staged


def test_a_rule_on_other_ports_than_the_denied_ones_is_left_as_it_is() -> None:
    table = flowkit.flows({"src": "shop/app=web", "dst": "shop/app=db", "dst_port": 5432})
    document = {"deny": [{"from": {"pods": {"app": "web"}}, "to": {"pods": {"app": "db"}},
                          "ports": ["80/TCP"]}]}  # fmt: skip
    guarded = generate(table, _options(document))
    assert guarded.policies == generate(table).policies
    assert not any(GUARDRAILS_ANNOTATION in dict(p.annotations) for p in guarded.policies)
    assert guarded.report.filtered["denied by a guardrail"] == 0
