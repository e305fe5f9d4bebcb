"""What the evaluator reads from an inventory: pods, addresses, named ports, namespace labels."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from netpolgen.cluster.view import ClusterView
from netpolgen.errors import InventoryError
from tests.flowkit import inventory, namespace, pod


def test_kubectl_list() -> None:
    web = pod("shop", "web-7d-x", {"app": "web", "pod-template-hash": "7d"}, "10.0.0.1",
              [{"name": "http", "containerPort": 8080}, {"containerPort": 9100}])  # fmt: skip
    web["status"]["podIPs"] = [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]
    host = pod("kube-system", "proxy", {"k8s-app": "proxy"}, "192.168.1.5")
    host["spec"]["hostNetwork"] = True
    view = ClusterView.from_inventory(inventory(namespace("shop", {"env": "prod"}), web, host))
    record = view.pod("shop", "web-7d-x")
    assert record is not None
    assert record.ips == ("10.0.0.1", "fd00::1")
    assert record.named_ports == (("http", "TCP", 8080),)
    assert record.container_ports == (("TCP", 8080), ("TCP", 9100))
    assert record.workload_labels == "app=web"
    assert view.pod_by_ip("fd00::1") is record
    assert view.pod_by_ip("192.168.1.5") is None  # a hostNetwork pod's IP is its node's
    shop = view.labels_of_namespace("shop")
    assert shop == {"env": "prod", "kubernetes.io/metadata.name": "shop"}
    assert view.namespaces == ["kube-system", "shop"]


def test_snapshots_later_wins(tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    second = tmp_path / "b.json"
    first.write_text(json.dumps(inventory(pod("n", "p", {"v": "1"}, "10.0.0.1"))))
    second.write_text(json.dumps(inventory(pod("n", "p", {"v": "2"}, "10.0.0.2"))))
    view = ClusterView.from_inventory([first, second])
    assert len(view.pods) == 1 and view.pods[0].labels == (("v", "2"),)


def test_bad_inventory_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "List",\n "items": [}')
    with pytest.raises(InventoryError) as caught:
        ClusterView.from_inventory(bad)
    assert caught.value.source == str(bad)
    with pytest.raises(InventoryError) as caught:
        ClusterView.from_inventory(tmp_path / "missing.json")
    assert caught.value.source == str(tmp_path / "missing.json")
    with pytest.raises(InventoryError, match="has no metadata.name"):
        ClusterView.from_inventory({"kind": "List", "items": [{"kind": "Pod", "metadata": {}}]})


def test_inventory_tables_latest_snapshot_wins() -> None:
    from netpolgen.cluster.inventory import parse_inventory

    first = pod(
        "shop", "web-1", {"app": "web"}, "10.0.0.1", [{"name": "http", "containerPort": 8080}]
    )
    first["status"]["podIPs"] = [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]
    later = pod("shop", "web-1", {"app": "web", "v": "2"}, "10.0.0.9",
                [{"name": "http", "containerPort": 8081},
                 {"name": "dns", "containerPort": 53, "protocol": "UDP"}])  # fmt: skip
    snapshots = [
        parse_inventory([inventory(namespace("shop", {"env": "prod"}), first)], time="2026-01-01"),
        parse_inventory([inventory(later)], time="2026-01-02"),
    ]
    merged = type(snapshots[0])(
        **{
            name: pd.concat([getattr(s, name) for s in snapshots], ignore_index=True)
            for name in ("pods", "services", "namespaces", "nodes", "pod_ports", "service_ports")
        }
    )
    view = ClusterView.from_inventory(merged)
    (record,) = view.pods
    assert record.ips == ("10.0.0.9",)
    assert record.labels == (("app", "web"), ("v", "2"))
    assert record.named_ports == (("dns", "UDP", 53), ("http", "TCP", 8081))
    assert record.container_ports == (("TCP", 8081), ("UDP", 53))
    assert view.labels_of_namespace("shop")["env"] == "prod"
