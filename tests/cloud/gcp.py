"""GCP's view of a :class:`~tests.cloud.model.Cluster`: VPC Flow Logs and GKE network policy
logs, as Cloud Logging exports them (``LogEntry`` JSON lines).

Written from GCP's documentation ("About VPC Flow Logs records", "Use network policy logging";
FORMATS.md §3), not from netpolgen's reader:

* Each VM's interface reports the packets it sends (``reporter: SRC``) and receives
  (``reporter: DEST``): a flow between two VMs of logged subnets is reported twice, each
  direction of a connection as its own record, with ``connection`` the packets' own 5-tuple and
  ``bytes_sent``/``packets_sent`` int64 as JSON strings.
* VPC-native GKE: a pod's IP is an alias IP of its node's VM, so ``src_instance`` /
  ``dest_instance`` name the node VM on pod traffic; ``*_gke_details`` carry the cluster and,
  best effort, the pod (metadata "might be missing or incorrect"): some records carry only
  ``cluster``.
* Records are sampled: some never reach the log (``sample`` of them here).
* Traffic between two pods of one node never reaches the VPC (without intranode visibility).
* A connection refused by a NetworkPolicy (GKE Dataplane V2) is dropped on the server's node,
  so VPC Flow Logs see the request only (the server's VM received it); network policy logging
  writes the denial: a ``policy-action`` entry with ``disposition: deny`` and the connection
  (protocol by name, lower case), with the ``src``/``dest`` pods. It is its own log, exported
  here as its own file.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

from tests.cloud.model import PROTOCOL_NUMBERS, Cluster, Connection, Pod

PROJECT = "shop-4711"
CLUSTER = {"cluster_location": "us-east1-b", "cluster_name": "shop"}


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _side(pod: Pod, rng: random.Random, cluster_only: float) -> dict[str, Any]:
    details: dict[str, Any] = {"cluster": CLUSTER}
    if rng.random() >= cluster_only:
        details["pod"] = {"pod_name": pod.name, "pod_namespace": pod.namespace}
    return {
        "instance": {
            "project_id": PROJECT,
            "region": "us-east1",
            "vm_name": f"gke-{pod.node}",
            "zone": "us-east1-b",
        },  # fmt: skip
        "gke_details": details,
    }


def _entry(payload: dict[str, Any], log: str, at: float, rng: random.Random) -> dict[str, Any]:
    return {
        "insertId": f"{rng.getrandbits(56):014x}",
        "jsonPayload": payload,
        "logName": f"projects/{PROJECT}/logs/{log}",
        "receiveTimestamp": _time(at + 20),
        "resource": {
            "type": "gce_subnetwork",
            "labels": {"project_id": PROJECT, "subnetwork_name": "nodes"},
        },  # fmt: skip
        "timestamp": _time(at + 5),
    }


def _flow_records(
    cluster: Cluster, c: Connection, rng: random.Random, cluster_only: float
) -> list[tuple[float, dict[str, Any]]]:
    client, server = cluster.pod(c.client), cluster.pod(c.server)
    legs = [(client, server, c.client_port, c.server_port, c.request_packets, c.request_bytes,
             c.start)]  # fmt: skip
    if c.response_packets:
        legs.append((server, client, c.server_port, c.client_port, c.response_packets,
                     c.response_bytes, c.start + min(0.0005, c.duration / 2)))  # fmt: skip
    out = []
    for src, dst, sport, dport, packets, size, first in legs:
        for reporter in ("SRC", "DEST"):
            payload: dict[str, Any] = {
                "connection": {"src_ip": src.ip, "src_port": sport, "dest_ip": dst.ip,
                               "dest_port": dport, "protocol": PROTOCOL_NUMBERS[c.protocol]},
                "reporter": reporter, "bytes_sent": str(size), "packets_sent": str(packets),
                "start_time": _time(first), "end_time": _time(c.start + c.duration),
            }  # fmt: skip
            for prefix, pod in (("src", src), ("dest", dst)):
                for key, value in _side(pod, rng, cluster_only).items():
                    payload[f"{prefix}_{key}"] = value
            entry = _entry(payload, "compute.googleapis.com%2Fvpc_flows", c.start + c.duration,
                           rng)  # fmt: skip
            out.append((first, entry))
    return out


def _denial(cluster: Cluster, c: Connection, rng: random.Random) -> dict[str, Any]:
    client, server = cluster.pod(c.client), cluster.pod(c.server)
    payload = {
        "connection": {"src_ip": client.ip, "dest_ip": server.ip, "src_port": c.client_port,
                       "dest_port": c.server_port, "protocol": c.protocol.lower(),
                       "direction": "ingress"},
        "disposition": "deny",
        "policies": [{"kind": "NetworkPolicy", "name": "default-deny", "namespace":
                      server.namespace}],
        "src": {"pod_name": client.name, "pod_namespace": client.namespace,
                "workload_kind": "Deployment", "workload_name": client.workload},
        "dest": {"pod_name": server.name, "pod_namespace": server.namespace,
                 "workload_kind": "Deployment", "workload_name": server.workload},
        "count": 1,
        "timestamp": _time(c.start),
    }  # fmt: skip
    return _entry(payload, "policy-action", c.start, rng)


def render(
    cluster: Cluster, *, seed: int = 0, sample: float = 0.0, cluster_only: float = 0.4
) -> dict[str, str]:
    """``{"vpc_flows.jsonl": ..., "policy_action.jsonl": ...}``: the cluster's connections as
    GCP logs them. ``sample``: the share of VPC records sampled away; ``cluster_only``: the
    share of pod ends whose ``*_gke_details`` name the cluster only."""
    rng = random.Random(seed)
    flows: list[tuple[float, int, dict[str, Any]]] = []
    denials: list[tuple[float, int, dict[str, Any]]] = []
    for index, c in enumerate(cluster.connections):
        if c.node_local:
            continue  # never on the wire
        for first, entry in _flow_records(cluster, c, rng, cluster_only):
            if rng.random() >= sample:
                flows.append((first, index, entry))
        if c.denied:
            denials.append((c.start, index, _denial(cluster, c, rng)))

    def lines(entries: list[tuple[float, int, dict[str, Any]]]) -> str:
        return "".join(json.dumps(e) + "\n" for *_, e in sorted(entries, key=lambda x: x[:2]))

    files = {"vpc_flows.jsonl": lines(flows)}
    if denials:
        files["policy_action.jsonl"] = lines(denials)
    return files
