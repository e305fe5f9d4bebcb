"""Workloads, selectors and peers from an inventory that contains the usual traps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from netpolgen.cli import cli
from netpolgen.cluster.inventory import load_inventory
from netpolgen.identity.owners import inventory_pods
from netpolgen.labels import labels_from_canonical
from netpolgen.policy.model import Policy
from tests.cluster.fixtures import Pod, inventory_document
from tests.k8s import assert_valid_policies

HASH = "pod-template-hash"
# shop: two Deployments that share app=shop and differ in component; an idle worker whose labels
# are a superset of cart-api's; a CronJob's pods; a Deployment mid-rollout whose template labels
# changed (version v1 -> v2). monitoring: prometheus and a hostNetwork node-exporter.
# kube-system: CoreDNS labelled k8s-app=coredns (not kube-dns).
API_1 = Pod("shop", "cart-api-7d9c5b6f4-q8w2e", "10.1.0.11",
            (("app", "shop"), ("component", "api"), (HASH, "7d9c5b6f4")), "node-1",
            owner=("ReplicaSet", "cart-api-7d9c5b6f4"), ports=(("http", 8080),))  # fmt: skip
API_2 = Pod("shop", "cart-api-7d9c5b6f4-z9z8x", "10.1.1.12",
            (("app", "shop"), ("component", "api"), (HASH, "7d9c5b6f4")), "node-2",
            owner=("ReplicaSet", "cart-api-7d9c5b6f4"), ports=(("http", 8080),))  # fmt: skip
UI = Pod("shop", "cart-ui-5b7d8f9c6-m4n5b", "10.1.0.13",
         (("app", "shop"), ("component", "ui"), (HASH, "5b7d8f9c6")), "node-1",
         owner=("ReplicaSet", "cart-ui-5b7d8f9c6"))  # fmt: skip
WORKER = Pod("shop", "cart-worker-6c8f9d7b5-x2x7k", "10.1.1.14",
             (("app", "shop"), ("component", "api"), ("role", "worker"), (HASH, "6c8f9d7b5")),
             "node-2", owner=("ReplicaSet", "cart-worker-6c8f9d7b5"))  # fmt: skip
REPORT = Pod("shop", "report-28735210-abcde", "10.1.0.15",
             (("app", "report"), ("job-name", "report-28735210"),
              ("batch.kubernetes.io/controller-uid", "u-1")), "node-1",
             owner=("Job", "report-28735210"))  # fmt: skip
SEARCH_V1 = Pod("shop", "search-6f7b8c9d4-aaaaa", "10.1.1.16",
                (("app", "search"), ("version", "v1"), (HASH, "6f7b8c9d4")), "node-2",
                owner=("ReplicaSet", "search-6f7b8c9d4"))  # fmt: skip
SEARCH_V2 = Pod("shop", "search-7a8b9c0d1-bbbbb", "10.1.0.17",
                (("app", "search"), ("version", "v2"), (HASH, "7a8b9c0d1")), "node-1",
                owner=("ReplicaSet", "search-7a8b9c0d1"))  # fmt: skip
PROM = Pod("monitoring", "prometheus-5b7d8f9c6-m4n5b", "10.1.0.40",
           (("app", "prometheus"), (HASH, "5b7d8f9c6")), "node-1",
           owner=("ReplicaSet", "prometheus-5b7d8f9c6"))  # fmt: skip
EXPORTER = Pod("monitoring", "node-exporter-k2k2k", "192.168.0.2", (("app", "node-exporter"),),
               "node-2", host_network=True, owner=("DaemonSet", "node-exporter"))  # fmt: skip
COREDNS = Pod("kube-system", "coredns-5d78c9869d-abcde", "10.1.1.2",
              (("k8s-app", "coredns"), (HASH, "5d78c9869d")), "node-2",
              owner=("ReplicaSet", "coredns-5d78c9869d"))  # fmt: skip
PODS = (API_1, API_2, UI, WORKER, REPORT, SEARCH_V1, SEARCH_V2, PROM, EXPORTER, COREDNS)

FLOWS = [  # (source, destination address, port)
    (UI, API_1.ip, 8080), (UI, API_2.ip, 8080), (REPORT, API_1.ip, 8080),
    (API_2, SEARCH_V1.ip, 9200), (API_1, SEARCH_V2.ip, 9200),
    (PROM, API_1.ip, 8080), (PROM, EXPORTER.ip, 9100), (API_1, "10.96.0.1", 443),
]  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(inventory_document(PODS)))
    flows = tmp_path / "flows.csv"
    lines = ["time,src_ip,dst_ip,src_port,dst_port,protocol,is_reply"]
    for i, (src, dst, port) in enumerate(FLOWS):
        lines.append(f"2024-05-01T10:00:{i:02d}Z,{src.ip},{dst},{40000 + i},{port},TCP,false")
    flows.write_text("\n".join(lines) + "\n")
    return flows, inventory


def generate(cluster: tuple[Path, Path], *extra: str) -> list[Policy]:
    flows, inventory = cluster
    result = CliRunner().invoke(cli, ["from-flows", str(flows), "-i", str(inventory), *extra])
    assert result.exit_code == 0, result.output
    assert_valid_policies(result.stdout)
    return [Policy.from_manifest(d) for d in yaml.safe_load_all(result.stdout)]


def selected_pods(policy: Policy, inventory: Path) -> set[str]:
    pods = inventory_pods(load_inventory(inventory))
    return {
        pod
        for namespace, pod, labels in zip(
            pods["namespace"], pods["pod"], pods["labels"], strict=True
        )
        if namespace == policy.namespace
        and policy.pod_selector.matches(dict(labels_from_canonical(labels)))
    }


def test_workloads_are_owners_and_selectors_are_exact_against_the_inventory(cluster) -> None:  # type: ignore[no-untyped-def]
    policies = {(p.namespace, p.name): p for p in generate(cluster)}
    inventory = cluster[1]
    expected = {
        ("shop", "cart-api-access-ingress"): {API_1.name, API_2.name},
        ("shop", "cart-api-access-egress"): {API_1.name, API_2.name},
        ("shop", "cart-ui-access-egress"): {UI.name},
        ("shop", "report-access-egress"): {REPORT.name},
        ("shop", "search-access-ingress"): {SEARCH_V1.name, SEARCH_V2.name},
        ("monitoring", "prometheus-access-egress"): {PROM.name},
    }
    assert set(policies) == set(expected)
    for key, pods in expected.items():
        # Every policy selects exactly its workload's pods among all pods of the inventory.
        assert selected_pods(policies[key], inventory) == pods, key
    api = policies[("shop", "cart-api-access-ingress")].pod_selector
    # The idle worker carries every label of cart-api and role=worker: excluded explicitly.
    assert api.describe() == "app=shop,component=api,!role"
    assert policies[("shop", "search-access-ingress")].pod_selector.describe() == "app=search"


def test_cronjob_pods_are_one_workload_named_after_the_cronjob(cluster) -> None:  # type: ignore[no-untyped-def]
    report = next(p for p in generate(cluster) if p.name == "report-access-egress")
    assert report.pod_selector.describe() == "app=report"


def test_dns_goes_to_the_resolver_pods_the_inventory_lists(cluster) -> None:  # type: ignore[no-untyped-def]
    egress = next(p for p in generate(cluster) if p.name == "cart-ui-access-egress")
    dns = [peer for rule in egress.egress for peer in rule.peers if peer.namespace_selector]
    assert [d.pod_selector.describe() for d in dns if d.pod_selector] == ["k8s-app=coredns"]
    assert "k8s-app=coredns" in dict(egress.annotations)["netpolgen.io/dns"]


def test_host_network_pods_and_api_server_are_ip_blocks_with_notes(cluster) -> None:  # type: ignore[no-untyped-def]
    policies = {p.name: p for p in generate(cluster)}
    prom = policies["prometheus-access-egress"]
    blocks = [p.ip_block.cidr for r in prom.egress for p in r.peers if p.ip_block]
    assert blocks == ["192.168.0.2/32"]
    notes = dict(prom.annotations)["netpolgen.io/ip-blocks"]
    assert (
        "192.168.0.2/32: node node-2" in notes
        and "hostNetwork pod monitoring/node-exporter" in notes
    )
    api = dict(policies["cart-api-access-egress"].annotations)["netpolgen.io/ip-blocks"]
    assert "10.96.0.1/32: Kubernetes API server Service" in api


def test_named_ports_where_every_pod_agrees(cluster) -> None:  # type: ignore[no-untyped-def]
    plain = {p.name: p for p in generate(cluster)}["cart-api-access-ingress"]
    named = {p.name: p for p in generate(cluster, "--named-ports")}["cart-api-access-ingress"]
    assert {s.port for r in plain.ingress for s in r.ports} == {8080}
    assert {s.port for r in named.ingress for s in r.ports} == {"http"}


def test_unlisted_pod_address_is_a_warned_single_address_and_widening_spares_the_cluster(
    cluster: tuple[Path, Path], tmp_path: Path
) -> None:
    flows, inventory = cluster
    extra = tmp_path / "extra.csv"
    # 10.1.0.99 lies in node-1's pod CIDR (10.1.0.0/24) but no listed pod holds it.
    extra.write_text(
        "src_ip,dst_ip,src_port,dst_port,protocol,is_reply\n"
        f"10.1.0.99,{API_1.ip},40000,8080,TCP,false\n"
        f"198.51.100.7,{API_1.ip},40001,8080,TCP,false\n"
    )
    result = CliRunner().invoke(
        cli, ["from-flows", str(extra), "-i", str(inventory), "--cidr-prefix-min", "8"]
    )
    assert result.exit_code == 0, result.output
    assert "10.1.0.99 is in the pod range but no pod of the inventory held it" in result.stderr
    policy = next(
        Policy.from_manifest(d)
        for d in yaml.safe_load_all(result.stdout)
        if d["metadata"]["name"] == "cart-api-access-ingress"
    )
    blocks = {
        p.ip_block.cidr: p.ip_block.except_ for r in policy.ingress for p in r.peers if p.ip_block
    }
    # The /8 around 10.1.0.99 keeps every pod CIDR, pod and node address of the inventory out
    # (10.1.0.0/24 itself holds the observed address, so its pods are excepted one by one).
    assert "10.0.0.0/8" in blocks
    excepted = blocks["10.0.0.0/8"]
    assert "10.1.1.0/24" in excepted and "10.1.0.11/32" in excepted
    assert "198.0.0.0/8" in blocks
