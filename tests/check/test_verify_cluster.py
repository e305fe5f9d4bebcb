"""verify and diff with ClusterNetworkPolicy tiers (netpolgen.policy.cluster_eval).

The behaviours are those the v1alpha2 CRD of kubernetes-sigs/network-policy-api v0.2.0
(tests/schemas) describes: ``spec.tier`` (Admin, then the NetworkPolicy tier, then Baseline;
"v1.NetworkPolicy always makes a final decision for selected pods"), ``spec.priority`` ("lower
priority values have higher precedence"), rule order within a policy ("a rule that appears at
the top ... would take the highest precedence"), the actions (Accept and Deny decide; Pass
"skips all further ClusterNetworkPolicy rules in the current tier"), ``networks`` ("cluster-
internal traffic will be checked against the rule as well") and "fail closed" for a peer of no
known kind. Each test names the sentence it encodes.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.check.diff import diff_files, diff_policies
from netpolgen.check.verify import verify, verify_files
from netpolgen.errors import PolicyParseError
from netpolgen.policy.cluster_eval import TieredEvaluator
from netpolgen.policy.cluster_model import ClusterPolicy, cluster_policy_from_manifest
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Evaluator
from tests.flowkit import flows, inventory, namespace, pod, policies
from tests.policygen import NAMESPACES, PODS, random_policies

HEAD = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"


def cnp(text: str) -> ClusterPolicy:
    return cluster_policy_from_manifest(yaml.safe_load(HEAD + text))


INV = inventory(
    namespace("shop", {"env": "prod"}),
    namespace("dev", {"env": "dev"}),
    pod("shop", "web-1", {"app": "web"}, "10.244.0.10", [{"name": "http", "containerPort": 8080}]),
    pod("shop", "db-1", {"app": "db"}, "10.244.0.11"),
    pod("dev", "tool-1", {"app": "tool"}, "10.244.1.10"),
)
WEB_FROM_TOOL = """
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {}}], ports: [{port: 80}]}]
"""


def allowed(
    src: str,
    dst: str,
    cluster: list[ClusterPolicy],
    np: str = "",
    port: int | None = 80,
    protocol: str = "TCP",
    **extra: Any,
) -> bool:
    report = verify(
        flows({"src": src, "dst": dst, "dst_port": port, "protocol": protocol, **extra}),
        policies(np) if np else [],
        INV,
        over_permissive=False,
        cluster_policies=cluster,
    )
    assert report.counts["edges_checked"] == 1
    return bool(report.edges["allowed"].iloc[0])


ADMIN_DENY_DEV_TO_SHOP = cnp("""
metadata: {name: no-dev}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {env: prod}}}
  ingress:
  - {action: Deny, from: [{namespaces: {matchLabels: {env: dev}}}]}
""")
BASELINE_DENY = cnp("""
metadata: {name: baseline}
spec:
  tier: Baseline
  priority: 1000
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
  egress: [{action: Deny, to: [{namespaces: {}}, {networks: [0.0.0.0/0]}]}]
""")


def test_admin_deny_beats_a_networkpolicy_allow() -> None:
    # tier: "If Admin tier has made a final decision (Accept or Deny) on a connection, then no
    # further evaluation is done."
    assert allowed("dev/app=tool", "shop/app=web", [], WEB_FROM_TOOL)
    assert not allowed("dev/app=tool", "shop/app=web", [ADMIN_DENY_DEV_TO_SHOP], WEB_FROM_TOOL)
    assert allowed("shop/app=db", "shop/app=web", [ADMIN_DENY_DEV_TO_SHOP], WEB_FROM_TOOL)


def test_admin_accept_beats_a_networkpolicy_deny() -> None:
    accept = cnp("""
metadata: {name: monitoring}
spec:
  tier: Admin
  priority: 5
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  ingress:
  - action: Accept
    from: [{pods: {namespaceSelector: {matchLabels: {env: dev}}, podSelector: {}}}]
    protocols: [{tcp: {destinationPort: {number: 9090}}}]
""")
    assert not allowed("dev/app=tool", "shop/app=web", [], WEB_FROM_TOOL, port=9090)
    assert allowed("dev/app=tool", "shop/app=web", [accept], WEB_FROM_TOOL, port=9090)
    assert not allowed("dev/app=tool", "shop/app=web", [accept], WEB_FROM_TOOL, port=9091)


def test_pass_hands_over_to_the_networkpolicy_tier() -> None:
    # action Pass: "Skips all further ClusterNetworkPolicy rules in the current tier".
    passing = cnp("""
metadata: {name: pass-dev}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Pass, from: [{namespaces: {matchLabels: {env: dev}}}]}]
""")
    cluster = [passing, ADMIN_DENY_DEV_TO_SHOP]  # the Deny comes later (priority 10)
    assert allowed("dev/app=tool", "shop/app=web", cluster, WEB_FROM_TOOL)
    assert not allowed("dev/app=tool", "shop/app=web", cluster, WEB_FROM_TOOL, port=81)
    # Without a NetworkPolicy selecting the pod, Pass reaches Baseline.
    assert not allowed("dev/app=tool", "shop/app=db", [passing, BASELINE_DENY])


def test_lower_priority_number_first_and_rule_order_within() -> None:
    # priority: "Policies with lower priority values have higher precedence"; rules: "a rule
    # that appears at the top ... would take the highest precedence".
    first = cnp("""
metadata: {name: accept-first}
spec:
  tier: Admin
  priority: 3
  subject: {namespaces: {}}
  ingress:
  - {action: Accept, from: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}
  - {action: Deny, from: [{namespaces: {}}]}
""")
    assert allowed("dev/app=tool", "shop/app=db", [ADMIN_DENY_DEV_TO_SHOP, first])
    assert not allowed("dev/app=tool", "shop/app=db", [ADMIN_DENY_DEV_TO_SHOP, first], port=81)
    later = cnp("""
metadata: {name: accept-late}
spec:
  tier: Admin
  priority: 30
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {}}]}]
""")
    assert not allowed("dev/app=tool", "shop/app=web", [later, ADMIN_DENY_DEV_TO_SHOP])


def test_baseline_applies_only_to_pods_no_networkpolicy_selects() -> None:
    # tier: "v1.NetworkPolicy always makes a final decision for selected pods. Further
    # evaluation only happens for Pods not selected by a v1.NetworkPolicy."
    assert allowed("dev/app=tool", "shop/app=web", [BASELINE_DENY], WEB_FROM_TOOL) is False
    # (tool's egress is Baseline's: denied.) With a Baseline of ingress only, web's ingress is
    # its NetworkPolicy's, db's (no NetworkPolicy) Baseline's.
    ingress_only = cnp("""
metadata: {name: baseline-in}
spec:
  tier: Baseline
  priority: 1000
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
""")
    assert allowed("dev/app=tool", "shop/app=web", [ingress_only], WEB_FROM_TOOL)
    assert not allowed("dev/app=tool", "shop/app=db", [ingress_only], WEB_FROM_TOOL)
    assert not allowed("dev/app=tool", "shop/app=web", [ingress_only], WEB_FROM_TOOL, port=81)


def test_networks_match_outside_addresses_and_pods_by_their_addresses() -> None:
    # networks: "cluster-internal traffic will be checked against the rule as well".
    deny = cnp("""
metadata: {name: no-pod-range}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {matchLabels: {env: dev}}}
  egress: [{action: Deny, to: [{networks: [10.244.0.0/24, 192.0.2.0/24]}]}]
""")
    assert not allowed("dev/app=tool", "192.0.2.7", [deny])
    assert allowed("dev/app=tool", "198.51.100.7", [deny])
    assert not allowed("dev/app=tool", "shop/app=web", [deny])  # 10.244.0.10 in the inventory


def test_port_number_range_and_named_port() -> None:
    deny = cnp("""
metadata: {name: ports}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
    protocols:
    - udp: {destinationPort: {number: 53}}
    - tcp: {destinationPort: {range: {start: 6000, end: 6010}}}
    - destinationNamedPort: http
""")
    assert not allowed("dev/app=tool", "shop/app=db", [deny], port=53, protocol="UDP")
    assert allowed("dev/app=tool", "shop/app=db", [deny], port=53)
    assert not allowed("dev/app=tool", "shop/app=db", [deny], port=6010)
    assert allowed("dev/app=tool", "shop/app=db", [deny], port=6011)
    # web-1 names 8080 "http" (named ports resolve on the destination pod)
    assert not allowed("dev/app=tool", "shop/app=web", [deny], port=8080, dst_pod="web-1")
    assert allowed("dev/app=tool", "shop/app=db", [deny], port=8080)


def test_an_unknown_peer_fails_closed_and_is_said() -> None:
    # from[]: "If an implementation sees no fields are set ... it should fail closed": Accept
    # matches no traffic, Deny and Pass all.
    unknown = yaml.safe_load(
        HEAD
        + """
metadata: {name: future}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  egress:
  - {action: Accept, to: [{nodes: {matchLabels: {role: infra}}}]}
  - {action: Deny, to: [{nodes: {}}]}
"""
    )
    policy = cluster_policy_from_manifest(unknown)
    report = verify(
        flows({"src": "dev/app=tool", "dst": "10.0.0.1", "dst_port": 10250}),
        [], INV, over_permissive=False, cluster_policies=[policy],
    )  # fmt: skip
    assert not report.ok
    assert any("nodes" in w and "fails closed" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{tier: Middle, priority: 1, subject: {namespaces: {}}}", "spec.tier"),
        ("{tier: Admin, priority: 1001, subject: {namespaces: {}}}", "spec.priority"),
        ("{tier: Admin, priority: 1, subject: {}}", "spec.subject"),
        (
            "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Allow, "
            "from: [{namespaces: {}}]}]}",
            "action",
        ),
        (
            "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: "
            "[{networks: [nonsense]}]}]}",
            "not a CIDR",
        ),
    ],  # fmt: skip
)
def test_malformed_cluster_policies_are_errors_naming_the_file(
    tmp_path: Path, spec: str, message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(HEAD + f"metadata: {{name: bad}}\nspec: {spec}\n")
    with pytest.raises(PolicyParseError) as error:
        load_policies(path, cluster=[])
    assert message in str(error.value) and "c.yaml" in str(error.value)


def test_verify_and_diff_of_files_read_the_tiers(tmp_path: Path) -> None:
    (tmp_path / "np").mkdir()
    (tmp_path / "np" / "web.yaml").write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n" + WEB_FROM_TOOL
    )
    with_admin = tmp_path / "with-admin"
    with_admin.mkdir()
    (with_admin / "web.yaml").write_text((tmp_path / "np" / "web.yaml").read_text())
    (with_admin / "cnp.yaml").write_text(
        HEAD
        + """
metadata: {name: no-dev}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {env: prod}}}
  ingress: [{action: Deny, from: [{namespaces: {matchLabels: {env: dev}}}]}]
"""
    )
    inv = tmp_path / "inv.json"
    inv.write_text(yaml.safe_dump(INV))
    csv = tmp_path / "flows.csv"
    csv.write_text("src_ip,dst_ip,dst_port,protocol\n10.244.1.10,10.244.0.10,80,TCP\n")
    assert verify_files([csv], tmp_path / "np", [inv]).ok
    report = verify_files([csv], with_admin, [inv])
    assert not report.ok
    assert "1 ClusterNetworkPolicy" in report.summary()
    # The tiers that decide the side, in their order.
    assert set(report.denied["ingress_policies"]) == {
        "ClusterNetworkPolicy/no-dev (Admin 10), shop/web"
    }
    diff = diff_files(tmp_path / "np", with_admin, [inv])
    assert not diff.same and diff.policies_added == ["ClusterNetworkPolicy/no-dev"]
    assert set(diff.changes["change"]) == {"removed"}
    assert set(diff.changes["src_namespace"]) == {"dev"}


# --- properties over random clusters ------------------------------------------------------------

CLUSTER_INV = inventory(
    *(namespace(ns, labels) for ns, labels in NAMESPACES.items()),
    *(
        pod(ns, name, labels, f"10.244.{i}.1",
            [{"name": n, "protocol": p, "containerPort": number} for n, p, number in named])
        for i, (ns, name, labels, named) in enumerate(PODS)
    ),
)  # fmt: skip
PAIRS = [(s, d) for s in PODS for d in PODS]
PORTS = (53, 80, 5432, 8080, 9090)


def _endpoint(entry: tuple[str, str, dict[str, str], Any]) -> str:
    ns, _, labels, _ = entry
    return f"{ns}/" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _all_flows() -> Any:
    return flows(*(
        {"src": _endpoint(s), "dst": _endpoint(d), "dst_pod": d[1], "dst_port": port}
        for s, d in PAIRS for port in PORTS
    ))  # fmt: skip


FLOWS = _all_flows()


def _verdicts(np: list[Policy], cluster: list[ClusterPolicy]) -> dict[tuple[str, str, int], bool]:
    report = verify(FLOWS, np, CLUSTER_INV, over_permissive=False, cluster_policies=cluster)
    edges = report.edges
    return {
        (f"{a}/{b}", f"{c}/{d}", int(port)): bool(ok)
        for a, b, c, d, port, ok in zip(
            edges["src_namespace"], edges["src_labels"], edges["dst_namespace"],
            edges["dst_labels"], edges["dst_port"], edges["allowed"], strict=True,
        )
    }  # fmt: skip


def _pods_peer(entry: tuple[str, str, dict[str, str], Any]) -> dict[str, Any]:
    ns, _, labels, _ = entry
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
        "podSelector": {"matchLabels": dict(labels)},
    }


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1_000_000), egress=st.booleans())
def test_an_admin_deny_of_a_pair_denies_its_every_flow_whatever_the_networkpolicies(
    seed: int, egress: bool
) -> None:
    rng = random.Random(seed)
    np = [Policy.from_manifest(m) for m in random_policies(seed, nca_safe=False)]
    src, dst = rng.choice(PAIRS)
    subject, peer = (src, dst) if egress else (dst, src)
    section = "egress" if egress else "ingress"
    rule = {"action": "Deny", ("to" if egress else "from"): [{"pods": _pods_peer(peer)}]}
    spec = {"tier": "Admin", "priority": rng.randint(0, 1000), section: [rule]}
    spec["subject"] = {"pods": _pods_peer(subject)}
    deny = cluster_policy_from_manifest({
        "apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "deny-pair"}, "spec": spec,
    })  # fmt: skip
    before = _verdicts(np, [])
    after = _verdicts(np, [deny])
    assert before.keys() == after.keys()

    # The pods the two selectors select (one with no labels selects its whole namespace).
    def selected(entry: Any, by: Any) -> bool:
        return bool(entry[0] == by[0] and by[2].items() <= entry[2].items())

    pairs = {
        (_endpoint(s), _endpoint(d)) for s, d in PAIRS if selected(s, src) and selected(d, dst)
    }
    for key, verdict in after.items():
        if key[:2] in pairs:
            assert verdict is False, key
        else:
            assert verdict == before[key], key


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1_000_000))
def test_pass_everything_defers_to_the_networkpolicies(seed: int) -> None:
    np = [Policy.from_manifest(m) for m in random_policies(seed, nca_safe=False)]
    passing = cnp("""
metadata: {name: pass-all}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  ingress: [{action: Pass, from: [{namespaces: {}}]}]
  egress: [{action: Pass, to: [{namespaces: {}}, {networks: [0.0.0.0/0]}]}]
""")
    deny_after = cnp("""
metadata: {name: deny-after}
spec:
  tier: Admin
  priority: 1
  subject: {namespaces: {}}
  ingress: [{action: Deny, from: [{namespaces: {}}]}]
""")
    assert _verdicts(np, [passing, deny_after]) == _verdicts(np, [])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 1_000_000))
def test_baseline_decides_only_sides_no_networkpolicy_selects(seed: int) -> None:
    np = [Policy.from_manifest(m) for m in random_policies(seed, nca_safe=False)]
    plain = Evaluator(np, NAMESPACES)
    tiered = TieredEvaluator(np, [BASELINE_DENY], NAMESPACES)
    for src in PODS:
        for dst in PODS:
            s = (src[0], tuple(sorted(src[2].items())), None)
            d = (dst[0], tuple(sorted(dst[2].items())), None)
            named = tuple(sorted(dst[3]))
            for port in PORTS:
                for direction, selected, peer in (("Egress", s, d), ("Ingress", d, s)):
                    got = tiered.side(direction, selected, peer, "TCP", port, named)
                    if plain.selecting(selected, direction):
                        assert got == plain.side(direction, selected, peer, "TCP", port, named)
                    else:
                        assert got is False


def test_diff_of_the_same_tiers_is_same_and_of_a_baseline_is_not() -> None:
    np = [Policy.from_manifest(m) for m in random_policies(7, nca_safe=False)]
    same = diff_policies(
        np, np, CLUSTER_INV, old_cluster=[BASELINE_DENY], new_cluster=[BASELINE_DENY]
    )
    assert same.same
    added = diff_policies(np, np, CLUSTER_INV, new_cluster=[BASELINE_DENY])
    assert not added.same and set(added.changes["change"]) == {"removed"}


def test_rules_an_admin_decision_bypassed_carry_nothing_and_subjects_are_isolated() -> None:
    accept = cnp("""
metadata: {name: accept-dev}
spec:
  tier: Admin
  priority: 0
  subject: {namespaces: {}}
  ingress: [{action: Accept, from: [{namespaces: {matchLabels: {env: dev}}}]}]
""")
    rows = [
        {"src": "dev/app=tool", "dst": "shop/app=web", "dst_port": 80},
        {"src": "shop/app=db", "dst": "shop/app=web", "dst_port": 80},
    ]
    report = verify(flows(*rows), policies(WEB_FROM_TOOL), INV, over_permissive=False,
                    cluster_policies=[accept])  # fmt: skip
    assert report.ok
    # Only db's connection reached the NetworkPolicy tier; tool's was accepted by Admin.
    assert report.rules["flows"].tolist() == [1]
    assert report.edges["ingress_isolated"].all()
    lone = verify(flows(rows[0]), [], INV, over_permissive=False, cluster_policies=[accept])
    assert lone.edges["ingress_isolated"].tolist() == [True]
    assert lone.edges["egress_isolated"].tolist() == [False]


def test_guardrails_over_a_generated_sample(tmp_path: Path) -> None:
    # What --cluster-policies writes plus Admin guardrails (as a --guardrails file would give):
    # "deny ingress-nginx to shop" denies the observed flows of that pair, whatever the
    # NetworkPolicies allow; "allow DNS" and a Pass leave the rest as it was.
    from netpolgen import GenerateOptions, generate_from_files
    from netpolgen.policy.flavors import write_flavor_dir
    from tests.conftest import SAMPLE_FLOWS

    sample = SAMPLE_FLOWS / "online-shop.hubble.jsonl"
    inv = [SAMPLE_FLOWS / "online-shop.inventory.json"]
    result = generate_from_files([sample], GenerateOptions(), inventory=inv)
    out = tmp_path / "out"
    write_flavor_dir(result.policies, out, "k8s", cluster_policies=True)
    assert verify_files([sample], out, inv).ok
    (out / "_cluster" / "guardrails.yaml").write_text(HEAD + """
metadata: {name: guardrails}
spec:
  tier: Admin
  priority: 20
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
  ingress:
  - name: pass-monitoring
    action: Pass
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]
  - name: deny-ingress-nginx
    action: Deny
    from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]
  egress:
  - name: allow-dns
    action: Accept
    to:
    - pods:
        namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {k8s-app: kube-dns}}
    protocols: [{udp: {destinationPort: {number: 53}}}, {tcp: {destinationPort: {number: 53}}}]
""")  # fmt: skip
    report = verify_files([sample], out, inv)
    assert not report.ok and report.counts["cluster_policies"] == 2
    denied = report.denied
    assert set(denied["src"].str.split("/").str[0]) == {"ingress-nginx"}
    assert set(denied["dst"].str.split("/").str[0]) == {"shop"}
    assert all(
        p.startswith("ClusterNetworkPolicy/guardrails (Admin 20)")
        for p in denied["ingress_policies"]
    )
