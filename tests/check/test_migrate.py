"""The default-deny migration plan on a three-namespace cluster with some policies already."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen.check.migrate import MigrationOptions, plan_migration, write_plan
from netpolgen.check.verify import verify
from netpolgen.errors import OutputError
from netpolgen.policy.default_deny import (
    default_deny_policies,
    is_default_deny,
    is_system_namespace,
)
from netpolgen.policy.from_reduction import GenerateOptions
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Endpoint, is_allowed
from tests.flowkit import flows, inventory, policies
from tests.flowkit import namespace as namespace_object
from tests.policygen import NAMESPACES, PODS, random_policies

DNS = "kube-system/k8s-app=kube-dns"


def cluster_flows() -> pd.DataFrame:
    rows = [
        ("shop/app=fe", "shop/app=web", "TCP", 80, 40),
        ("shop/app=web", "shop/app=db", "TCP", 5432, 30),
        ("shop/app=web", "pay/app=api", "TCP", 8443, 12),
        ("pay/app=api", "203.0.113.10", "TCP", 443, 5),
        ("ops/app=prom", "shop/app=web", "TCP", 9090, 8),
        ("ops/app=prom", "pay/app=api", "TCP", 9090, 8),
    ]
    for client in ("shop/app=fe", "shop/app=web", "pay/app=api", "ops/app=prom"):
        rows.append((client, DNS, "UDP", 53, 20))
    table = [
        {"src": s, "dst": d, "protocol": p, "dst_port": port, "count": n, "is_reply": False}
        for s, d, p, port, n in rows
    ]
    # A reply and a flow the network dropped: neither must be planned for.
    table.append({"src": "shop/app=web", "dst": "shop/app=fe", "dst_port": 40000,
                  "is_reply": True})  # fmt: skip
    table.append({"src": "ops/app=prom", "dst": "shop/app=db", "dst_port": 5432,
                  "verdict": "denied"})  # fmt: skip
    return flows(*table)


EXISTING = """
metadata: {name: db-access-ingress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
---
metadata: {name: deny-all-ingress, namespace: pay}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
metadata: {name: api-ingress, namespace: pay}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: shop}}}]
    ports: [{port: 8443}]
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: ops}}}]
    ports: [{port: 9090}]
"""


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return plan_migration(cluster_flows(), policies(EXISTING))


def test_applying_stages_in_order_never_denies_an_observed_flow(plan) -> None:  # type: ignore[no-untyped-def]
    table = cluster_flows()
    applied: list[Policy] = policies(EXISTING)
    assert verify(table, applied).ok
    for stage in plan.stages:
        applied += stage.policies
        report = verify(table, applied, over_permissive=False)
        assert report.ok, (stage.folder, report.denied)
        assert stage.flows_denied_after == 0
    assert plan.flows_denied_final == 0


def test_final_stage_is_default_deny_everywhere_but_system_namespaces(plan) -> None:  # type: ignore[no-untyped-def]
    final = policies(EXISTING) + [p for s in plan.stages for p in s.policies]
    assert plan.left_out == ["kube-system"]
    assert sorted(plan.namespaces) == ["ops", "pay", "shop"]
    for namespace in ("ops", "pay", "shop"):
        for direction in ("Ingress", "Egress"):
            assert any(p.namespace == namespace and is_default_deny(p, direction) for p in final), (
                namespace,
                direction,
            )
        # Semantically: a new pod there can neither receive nor send unobserved traffic.
        newcomer = Endpoint(namespace, {"app": "new"})
        assert not is_allowed(final, Endpoint("shop", {"app": "fe"}), newcomer, "TCP", 80)
        assert not is_allowed(final, newcomer, Endpoint(ip="198.51.100.7"), "TCP", 443)
    assert not any(p.namespace == "kube-system" for p in final)


def test_stage_order_ingress_then_egress_least_risky_namespace_first(plan) -> None:  # type: ignore[no-untyped-def]
    folders = [s.folder for s in plan.stages]
    # pay already denies ingress (only api's egress to the world and DNS depend on new rules);
    # ops has three egress connections; shop carries the most traffic.
    assert [f.split("-", 1)[1] for f in folders] == [
        "pay-ingress", "pay-egress", "ops-ingress", "ops-egress", "shop-ingress", "shop-egress",
    ]  # fmt: skip
    pay_ingress = plan.stages[0]
    assert pay_ingress.deny == []  # deny-all-ingress exists already
    assert pay_ingress.breaks_today.empty


def test_breaks_today_lists_the_connections_default_deny_alone_would_cut(plan) -> None:  # type: ignore[no-untyped-def]
    shop_ingress = next(s for s in plan.stages if s.folder.endswith("shop-ingress"))
    broken = set(shop_ingress.breaks_today[["src", "dst", "dst_port"]].itertuples(index=False))
    # fe->web and prom->web rely on web not being isolated; web->db is already allowed.
    assert broken == {("shop/app=fe", "shop/app=web", 80), ("ops/app=prom", "shop/app=web", 9090)}


def test_existing_names_are_not_overwritten(plan) -> None:  # type: ignore[no-untyped-def]
    names = {(p.namespace, p.name) for s in plan.stages for p in s.policies}
    assert ("shop", "db-access-ingress") not in names
    assert ("shop", "db-access-ingress-netpolgen") in names
    assert any("db-access-ingress" in w for w in plan.warnings)


def test_rollback_deletes_default_deny_first(plan) -> None:  # type: ignore[no-untyped-def]
    stage = next(s for s in plan.stages if s.folder.endswith("shop-egress"))
    commands = stage.rollback()
    assert commands[0] == "kubectl delete networkpolicy -n shop default-deny-egress"
    assert len(commands) == len(stage.policies)


def test_include_system_stages_kube_system() -> None:
    plan = plan_migration(cluster_flows(), [], options=MigrationOptions(include_system=True))
    assert plan.left_out == []
    assert "kube-system" in plan.namespaces
    applied: list[Policy] = []
    for stage in plan.stages:
        applied += stage.policies
    assert verify(cluster_flows(), applied).ok


def test_system_namespace_rule() -> None:
    assert is_system_namespace("kube-system") and is_system_namespace("calico-system")
    assert not is_system_namespace("shop") and not is_system_namespace("kubeflow")


def test_write_plan(tmp_path: Path, plan) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "plan"
    written = write_plan(plan, out)
    assert Path("README.md") in written
    readme = (out / "README.md").read_text()
    assert "kubectl apply -k 01-pay-ingress/" in readme and "kube-system" in readme
    for stage in plan.stages:
        folder = out / stage.folder
        assert (folder / "rollback.txt").read_text().splitlines() == stage.rollback()
        loaded = load_policies(folder)
        assert sorted(p.name for p in loaded) == sorted(p.name for p in stage.policies)
        for path in folder.glob("*.yaml"):
            kind = "Kustomization" if path.name == "kustomization.yaml" else "NetworkPolicy"
            assert yaml.safe_load(path.read_text())["kind"] == kind
    with pytest.raises(OutputError, match="not empty"):
        write_plan(plan, out)
    write_plan(plan, out, force=True)


def test_default_deny_policies() -> None:
    ingress, egress = default_deny_policies(["a"])
    assert ingress.to_manifest()["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"],
                                             "ingress": []}  # fmt: skip
    assert is_default_deny(ingress, "Ingress") and is_default_deny(egress, "Egress")
    assert not is_default_deny(ingress, "Egress")


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    picks=st.lists(
        st.tuples(
            st.integers(0, len(PODS)),  # len(PODS) = an outside address
            st.integers(0, len(PODS) - 1),
            st.sampled_from(["TCP", "UDP"]),
            st.sampled_from([53, 80, 443, 8080]),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_any_plan_only_ever_fixes_denials(seed: int, picks: list[Any]) -> None:
    """Random existing policies and traffic: no stage denies a flow that today's policies allow,
    and after the last stage nothing observed is denied."""
    existing = [Policy.from_manifest(m) for m in random_policies(seed, nca_safe=False)]
    rows = []
    for s, d, protocol, port in picks:
        src = "203.0.113.7" if s == len(PODS) else _pod_text(s)
        rows.append({"src": src, "dst": _pod_text(d), "protocol": protocol, "dst_port": port})
    table = flows(*rows)
    inv = inventory(*(namespace_object(ns, labels) for ns, labels in NAMESPACES.items()))
    plan = plan_migration(table, existing, inv)
    today = verify(table, existing, inv, over_permissive=False)
    denied_today = set(today.edges.index[~today.edges["allowed"]])
    applied = list(existing)
    for stage in plan.stages:
        applied += stage.policies
        report = verify(table, applied, inv, over_permissive=False)
        assert set(report.edges.index[~report.edges["allowed"]]) <= denied_today, stage.folder
    assert plan.flows_denied_final == 0
    assert verify(table, applied, inv, over_permissive=False).ok


def _pod_text(index: int) -> str:
    ns, _name, labels, _ports = PODS[index]
    return f"{ns}/" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def test_namespaces_option_limits_the_stages() -> None:
    options = MigrationOptions(generate=GenerateOptions(namespaces=("ops",)))
    plan = plan_migration(cluster_flows(), policies(EXISTING), options=options)
    assert plan.namespaces == ["ops"]
    assert plan.flows_denied_final == 0 and not any("denies" in w for w in plan.warnings)
