"""GCP VPC-native GKE records joined to an inventory: the inventory says what an address is.

Documented behaviour encoded here (FORMATS.md §3.2, §3.4 and "Measured pitfalls"; GCP "About
VPC Flow Logs records"): on VPC-native clusters a pod's address is an alias IP of its node's VM,
so ``src_instance``/``dest_instance`` name that VM on pod traffic, and ``*_gke_details`` may
carry only ``cluster`` (annotations are best effort). The record says where the packet was
seen; the inventory decides whether the address was a pod, a node or a hostNetwork pod.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from netpolgen import GenerateOptions, generate_from_files
from netpolgen.ingest import load_flows
from tests.flowkit import inventory, namespace, pod

CLUSTER = {"cluster": {"cluster_location": "europe-west1-b", "cluster_name": "shop"}}


def _instance(vm: str) -> dict[str, str]:
    return {"project_id": "p", "region": "europe-west1", "vm_name": vm, "zone": "europe-west1-b"}


def entry(src: str, dst: str, sport: int, dport: int, reporter: str, **extra: Any) -> str:
    payload = {
        "connection": {"src_ip": src, "src_port": sport, "dest_ip": dst, "dest_port": dport,
                       "protocol": 6},
        "reporter": reporter, "bytes_sent": "1200", "packets_sent": "6",
        "start_time": "2026-12-01T10:00:00Z", "end_time": "2026-12-01T10:00:05Z",
        "src_instance": _instance("gke-shop-pool-a"), "dest_instance": _instance("gke-shop-pool-b"),
        "src_gke_details": CLUSTER, "dest_gke_details": CLUSTER, **extra,
    }  # fmt: skip
    return json.dumps(
        {
            "insertId": f"{sport}{reporter}",
            "jsonPayload": payload,
            "timestamp": "2026-12-01T10:00:06Z",
            "logName": "projects/p/logs/compute.googleapis.com%2Fvpc_flows",
        }  # fmt: skip
    )


def _write(tmp_path: Path, lines: list[str], items: list[dict[str, Any]]) -> tuple[Path, Path]:
    flows = tmp_path / "vpc.jsonl"
    flows.write_text("\n".join(lines) + "\n")
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(inventory(*items)))
    return flows, inv


def _started(item: dict[str, Any]) -> dict[str, Any]:
    item["status"] |= {"phase": "Running", "startTime": "2026-12-01T09:00:00Z"}
    return item


def test_cluster_only_details_on_pod_addresses_resolve_to_the_pods(tmp_path: Path) -> None:
    # Bug: every address was classified as a node: 0 workloads, 0 policies, exit 0.
    web = _started(pod("shop", "web-6f7c9-abcde", {"app": "web"}, "10.8.0.5"))
    api = pod("shop", "api-5d8b4-fghij", {"app": "api"}, "10.8.1.7",
              [{"containerPort": 8080, "protocol": "TCP"}])  # fmt: skip
    lines = [entry("10.8.0.5", "10.8.1.7", 41000, 8080, r) for r in ("SRC", "DEST")]
    flows, inv = _write(tmp_path, lines, [namespace("shop"), web, _started(api)])
    result = generate_from_files([flows], GenerateOptions(), inventory=[inv])
    names = sorted(p.name for p in result.policies)
    assert any("api" in n and "ingress" in n for n in names), names
    assert any("web" in n and "egress" in n for n in names), names
    assert result.report.filtered.get("duplicate observation of a connection") == 1  # two reporters


def test_an_address_the_inventory_lists_as_a_node_stays_a_node(tmp_path: Path) -> None:
    node = {"kind": "Node", "metadata": {"name": "gke-shop-pool-b"},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.132.0.9"}]}}  # fmt: skip
    web = _started(pod("shop", "web-6f7c9-abcde", {"app": "web"}, "10.8.0.5"))
    lines = [entry("10.8.0.5", "10.132.0.9", 41000, 10250, "SRC")]
    flows, inv = _write(tmp_path, lines, [namespace("shop"), web, node])
    result = generate_from_files([flows], GenerateOptions(ingress=False), inventory=[inv])
    assert len(result.policies) == 1
    assert "cidr: 10.132.0.9/32" in result.to_yaml()  # a node is addressed by ipBlock


def test_without_an_inventory_cluster_only_details_still_mean_the_node(tmp_path: Path) -> None:
    path = tmp_path / "vpc.jsonl"
    path.write_text(entry("10.8.0.5", "10.8.1.7", 41000, 8080, "SRC") + "\n")
    flows = load_flows(path)
    assert list(flows["src_kind"].astype(str)) == ["node"]
    assert pd.isna(flows["src_pod"].iloc[0])
