"""Inventory: kubectl JSON (List, PodList, single objects, YAML), snapshots, errors."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
import yaml

from netpolgen.cluster import inventory as inventory_module
from netpolgen.cluster.inventory import MAX_INVENTORY_BYTES, load_inventory, parse_inventory
from netpolgen.errors import InventoryError
from tests.cluster import fixtures as cluster
from tests.ingest.helpers import SHARED_SAMPLES


@pytest.fixture
def inventory_file(tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(cluster.inventory_document()))
    return path


def test_tables(inventory_file) -> None:  # type: ignore[no-untyped-def]
    inventory = load_inventory(inventory_file)
    assert inventory.snapshots == (pd.Timestamp("2024-05-01T11:00:00Z"),)  # node heartbeat
    pods = inventory.pods.set_index("name")
    api = pods.loc[cluster.API.name]
    assert api["ip"] == "10.1.1.20" and api["namespace"] == "shop"
    assert api["labels"] == "app=api,pod-template-hash=7d9c5b6f4,tier=backend"
    assert (api["owner_kind"], api["owner_name"]) == ("ReplicaSet", "api-7d9c5b6f4")
    assert api["node"] == "node-2"
    ports = inventory.pod_ports.set_index("pod").loc[[cluster.API.name]]
    assert list(zip(ports["name"], ports["protocol"], ports["port"], strict=True)) == [
        ("http", "TCP", 8080)
    ]
    assert api["start"] == pd.Timestamp("2024-05-01T09:00:00Z")
    assert pods.loc[cluster.KUBE_PROXY.name, "host_network"]
    services = inventory.services.set_index("name")
    assert services.loc["api", "ip"] == cluster.API_SERVICE_IP
    assert services.loc["api", "selector"] == "app=api"
    api_ports = inventory.service_ports.set_index("service").loc["api"]
    assert (api_ports["protocol"], api_ports["port"], api_ports["target_name"]) == (
        "TCP", 80, "http"
    )  # fmt: skip
    assert pd.isna(api_ports["target_port"])
    assert pd.isna(services.loc["kubernetes", "selector"])
    assert set(inventory.nodes["ip"]) == {"192.168.0.1", "192.168.0.2"}  # Hostname left out
    assert inventory.namespace_labels()["shop"] == {
        "kubernetes.io/metadata.name": "shop",
        "team": "shop",
    }
    assert inventory.namespace_labels()["kube-system"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }


def test_pod_without_ip_is_kept_and_dual_stack_has_two_rows() -> None:
    pending = cluster.pod_object(cluster.WEB)
    pending["metadata"]["name"] = "web-pending"
    pending["status"] = {"phase": "Pending"}
    dual = cluster.pod_object(cluster.API)
    dual["status"]["podIPs"] = [{"ip": "10.1.1.20"}, {"ip": "fd00:10:1::14"}]
    inventory = parse_inventory([{"kind": "PodList", "items": [pending, dual]}])
    assert inventory.pods.loc[inventory.pods["name"] == "web-pending", "ip"].isna().all()
    assert set(inventory.pods.loc[inventory.pods["name"] == cluster.API.name, "ip"]) == {
        "10.1.1.20",
        "fd00:10:1::14",
    }


def test_yaml_and_several_documents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    document = cluster.inventory_document()
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump_all([document["items"][0], document["items"][5]]))
    inventory = load_inventory(path)
    assert len(inventory.pods) == 1 and len(inventory.services) == 1


def test_explicit_snapshot_times(inventory_file) -> None:  # type: ignore[no-untyped-def]
    inventory = load_inventory([inventory_file], times=["2024-05-01T12:00:00Z"])
    assert inventory.snapshots == (pd.Timestamp("2024-05-01T12:00:00Z"),)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"kind": "List", "items": 3}', "items is not a list"),
        ('{"kind": "PodList", "items": [{"spec": {"containers": []}}]}', "no metadata.name"),
        ('{"kind": "List", "items": []}', "no pods, services, namespaces or nodes"),
        ("[1, 2]", "not a Kubernetes object"),
        ('{"hello": "world"}', "neither kind nor items"),
    ],
)
def test_errors_name_the_file(tmp_path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory(tmp_path / "absent.json")


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="../shared/samples is not beside the repo")
def test_kubelet_podlist_sample() -> None:
    inventory = load_inventory(SHARED_SAMPLES / "k8s" / "honeycomb-agent_kubelet-podlist.json")
    assert len(inventory.pods) == 11  # items have no kind: PodList says they are pods
    host = inventory.pods[inventory.pods["host_network"]]
    assert set(host["ip"]) == {"192.168.1.91"} and len(host) == 4


def test_workloads_from_owner_names() -> None:
    job = cluster.pod_object(cluster.WEB)
    job["metadata"]["name"] = "report-28571234-x9z8y"
    job["metadata"]["ownerReferences"] = [
        {"kind": "Job", "name": "report-28571234", "controller": True}
    ]
    inventory = parse_inventory(
        [
            {
                "kind": "List",
                "items": [cluster.pod_object(cluster.API), cluster.pod_object(cluster.DB), job],
            }
        ]
    )
    workloads = inventory.pods.set_index("name")[["workload_kind", "workload_name"]]
    assert tuple(workloads.loc[cluster.API.name]) == ("Deployment", "api")
    assert tuple(workloads.loc[cluster.DB.name]) == ("StatefulSet", "db")
    assert tuple(workloads.loc["report-28571234-x9z8y"]) == ("CronJob", "report")


def test_directory_of_gzipped_snapshots(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import gzip

    folder = tmp_path / "snapshots"
    folder.mkdir()
    for hour in ("10", "11"):
        document = cluster.inventory_document(heartbeat=f"2024-05-01T{hour}:00:00Z")
        (folder / f"pods-{hour}00.json.gz").write_bytes(
            gzip.compress(json.dumps(document).encode())
        )
    (folder / "notes.txt").write_text("not a snapshot")
    inventory = load_inventory(folder)
    assert inventory.snapshots == (
        pd.Timestamp("2024-05-01T10:00:00Z"),
        pd.Timestamp("2024-05-01T11:00:00Z"),
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InventoryError, match="holds no"):
        load_inventory(empty)
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(gzip.compress(b"{}")[:-6])
    with pytest.raises(InventoryError, match="corrupt"):
        load_inventory(bad)


# --- size cap: an inventory is parsed whole, so a gzip bomb must be refused, not decompressed ----


def write_bomb(path: Path, size: int) -> None:
    """A gzip file of ``size`` bytes of JSON (whitespace, then an empty List), a few KiB on disk."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        block = b" " * (1 << 20)
        for _ in range(size >> 20):
            out.write(block)
        out.write(b'{"kind": "List", "items": []}')


def test_gzip_bomb_is_refused_after_reading_at_most_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_INVENTORY_BYTES == 2 << 30  # the documented default
    bomb = tmp_path / "inventory.json.gz"
    write_bomb(bomb, 256 << 20)
    assert bomb.stat().st_size < 2 << 20
    monkeypatch.setattr(inventory_module, "MAX_INVENTORY_BYTES", 1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(InventoryError) as error:
            load_inventory(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert error.value.source == str(bomb)
    limit = "inventory exceeds the size limit of 1 MiB (decompressed)"
    assert str(error.value).startswith(f"{bomb}: {limit}")
    assert peak < 6 << 20, peak  # 256 MiB inside; about the cap and a block are held


@pytest.mark.parametrize("compressed", [True, False], ids=["gzip", "plain"])
def test_an_inventory_of_exactly_the_cap_is_read(tmp_path: Path, compressed: bool) -> None:
    data = json.dumps(cluster.inventory_document()).encode()
    path = tmp_path / ("inventory.json.gz" if compressed else "inventory.json")
    path.write_bytes(gzip.compress(data) if compressed else data)
    assert len(load_inventory(path, max_bytes=len(data)).pods)
    with pytest.raises(InventoryError, match=f"size limit of {len(data) - 1} bytes") as error:
        load_inventory(path, max_bytes=len(data) - 1)
    assert error.value.source == str(path)
