"""One small cluster, and its traffic rendered in every flow format (for the end-to-end tests).

The truth: namespace ``shop`` with Deployments web, api and db, namespace ``monitoring`` with
prometheus, two nodes, a ``kube-proxy`` hostNetwork pod, a Service ``api`` (port 80 -> 8080) and
an outside address. Each connection of :data:`TRUTH` is rendered the way each source records it:
CSV with identities, Hubble with Cilium labels, AWS/GCP/Azure with addresses only (plus what the
format adds), and the inventory is the ``kubectl get pods,services,namespaces,nodes -A -o json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

NODES = {"node-1": ("192.168.0.1", "10.1.0.0/24"), "node-2": ("192.168.0.2", "10.1.1.0/24")}
NAMESPACES = {"shop": {"team": "shop"}, "monitoring": {"team": "observability"}}
OUTSIDE = "203.0.113.7"
T0 = pd.Timestamp("2024-05-01T10:00:00Z")


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    ip: str
    labels: tuple[tuple[str, str], ...]
    node: str
    start: str = "2024-05-01T09:00:00Z"
    host_network: bool = False
    owner: tuple[str, str] = ("ReplicaSet", "")
    ports: tuple[tuple[str, int], ...] = ()

    @property
    def label_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.labels))


WEB = Pod("shop", "web-6c8f9d7b5-x2x7k", "10.1.0.10",
          (("app", "web"), ("pod-template-hash", "6c8f9d7b5")), "node-1",
          owner=("ReplicaSet", "web-6c8f9d7b5"))  # fmt: skip
API = Pod("shop", "api-7d9c5b6f4-q8w2e", "10.1.1.20",
          (("app", "api"), ("tier", "backend"), ("pod-template-hash", "7d9c5b6f4")), "node-2",
          owner=("ReplicaSet", "api-7d9c5b6f4"), ports=(("http", 8080),))  # fmt: skip
DB = Pod("shop", "db-0", "10.1.1.30",
         (("app", "db"), ("statefulset.kubernetes.io/pod-name", "db-0")), "node-2",
         owner=("StatefulSet", "db"))  # fmt: skip
PROM = Pod("monitoring", "prometheus-5b7d8f9c6-m4n5b", "10.1.0.40",
           (("app", "prometheus"), ("pod-template-hash", "5b7d8f9c6")), "node-1",
           owner=("ReplicaSet", "prometheus-5b7d8f9c6"))  # fmt: skip
KUBE_PROXY = Pod("kube-system", "kube-proxy-abcde", "192.168.0.1",
                 (("k8s-app", "kube-proxy"),), "node-1", host_network=True,
                 owner=("DaemonSet", "kube-proxy"))  # fmt: skip
PODS = (WEB, API, DB, PROM, KUBE_PROXY)
API_SERVICE_IP = "10.96.0.20"

# (source, destination pod or outside address, protocol, port, connections)
TRUTH: tuple[tuple[Pod, Pod | str, str, int, int], ...] = (
    (WEB, API, "TCP", 8080, 3),
    (API, DB, "TCP", 5432, 2),
    (PROM, API, "TCP", 9090, 1),
    (API, OUTSIDE, "TCP", 443, 1),
)


def pod_object(pod: Pod, start: str | None = None, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": f"uid-{pod.name}",
            "labels": dict(pod.labels),
            "creationTimestamp": start or pod.start,
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": pod.owner[0],
                    "name": pod.owner[1],
                    "controller": True,
                    "uid": "x",
                }
            ],
        },  # fmt: skip
        "spec": {
            "nodeName": pod.node,
            "hostNetwork": pod.host_network,
            "containers": [
                {
                    "name": "main",
                    "image": "example/app:1",
                    "ports": [
                        {"name": n, "containerPort": p, "protocol": "TCP"} for n, p in pod.ports
                    ],
                }
            ],
        },  # fmt: skip
        "status": {
            "phase": phase,
            "hostIP": NODES[pod.node][0],
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "startTime": start or pod.start,
        },
    }


def inventory_document(pods: tuple[Pod, ...] = PODS, heartbeat: str = "2024-05-01T11:00:00Z",
                       pod_starts: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The ``kubectl get pods,services,namespaces,nodes -A -o json`` of the cluster."""
    starts = pod_starts or {}
    items: list[dict[str, Any]] = [pod_object(p, starts.get(p.name)) for p in pods]
    items.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"type": "ClusterIP", "clusterIP": API_SERVICE_IP, "clusterIPs": [API_SERVICE_IP],
                 "selector": {"app": "api"},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]},
    })  # fmt: skip
    items.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    })  # fmt: skip
    for name, labels in NAMESPACES.items():
        items.append({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": name, "labels": dict(labels)}})  # fmt: skip
    for name, (ip, cidr) in NODES.items():
        items.append({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastHeartbeatTime": heartbeat}]},
        })  # fmt: skip
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}  # fmt: skip


def connections() -> list[tuple[pd.Timestamp, Pod, Pod | str, str, int, int]]:
    """``(time, source, destination, protocol, port, source port)`` per connection."""
    out = []
    minute = 0
    for source, destination, protocol, port, count in TRUTH:
        for _ in range(count):
            out.append((T0 + pd.Timedelta(minutes=minute), source, destination, protocol, port,
                        41000 + minute))  # fmt: skip
            minute += 1
    return out


def _ip(end: Pod | str) -> str:
    return end if isinstance(end, str) else end.ip


def render_csv() -> str:
    lines = ["time,src_namespace,src_labels,src_ip,dst_namespace,dst_labels,dst_ip,protocol,"
             "dst_port,src_port"]  # fmt: skip
    for time, src, dst, protocol, port, sport in connections():
        if isinstance(dst, str):
            dst_fields = f",,{dst}"
        else:
            dst_fields = f'{dst.namespace},"{dst.label_text}",{dst.ip}'
        lines.append(f'{time.isoformat()},{src.namespace},"{src.label_text}",{src.ip},'
                     f"{dst_fields},{protocol},{port},{sport}")  # fmt: skip
    return "\n".join(lines) + "\n"


def _cilium_endpoint(end: Pod | str) -> dict[str, Any]:
    if isinstance(end, str):
        return {"identity": 2, "labels": ["reserved:world"]}
    labels = [f"k8s:{k}={v}" for k, v in end.labels]
    labels += [
        f"k8s:io.kubernetes.pod.namespace={end.namespace}",
        "k8s:io.cilium.k8s.policy.cluster=default",
        f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={end.namespace}",
    ]
    return {"ID": 100, "identity": 30000, "namespace": end.namespace, "labels": sorted(labels),
            "pod_name": end.name}  # fmt: skip


def render_hubble() -> str:
    """Each connection traced at two observation points, with its SYN-ACK reply."""
    lines = []
    for time, src, dst, protocol, port, sport in connections():
        for point, offset in (("FROM_ENDPOINT", 0), ("TO_ENDPOINT", 50)):
            flow = {
                "time": (time + pd.Timedelta(microseconds=offset)).isoformat().replace(
                    "+00:00", "Z"),
                "verdict": "FORWARDED",
                "IP": {"source": src.ip, "destination": _ip(dst), "ipVersion": "IPv4"},
                "l4": {protocol: {"source_port": sport, "destination_port": port,
                                  "flags": {"SYN": True}}},
                "source": _cilium_endpoint(src), "destination": _cilium_endpoint(dst),
                "Type": "L3_L4", "node_name": src.node, "event_type": {"type": 4},
                "trace_observation_point": point, "is_reply": False,
            }  # fmt: skip
            lines.append(json.dumps({"flow": flow, "node_name": src.node, "time": flow["time"]}))
        reply = {
            "time": (time + pd.Timedelta(milliseconds=1)).isoformat().replace("+00:00", "Z"),
            "verdict": "FORWARDED",
            "IP": {"source": _ip(dst), "destination": src.ip, "ipVersion": "IPv4"},
            "l4": {protocol: {"source_port": port, "destination_port": sport,
                              "flags": {"SYN": True, "ACK": True}}},
            "source": _cilium_endpoint(dst), "destination": _cilium_endpoint(src),
            "Type": "L3_L4", "is_reply": True,
        }  # fmt: skip
        lines.append(json.dumps({"flow": reply, "node_name": src.node, "time": reply["time"]}))
        lines.append(json.dumps({"node_status": {"state_change": "NODE_CONNECTED"}}))
    return "\n".join(lines) + "\n"


def render_aws() -> str:
    """v5 custom format from the nodes' ENIs: node addresses in srcaddr, pods in pkt-*."""
    header = (
        "version interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
        "start end action tcp-flags pkt-srcaddr pkt-dstaddr flow-direction log-status"
    )
    lines = [header, "5 eni-1 - - - - - - - 1714557000 1714557060 - - - - - NODATA"]
    for time, src, dst, _protocol, port, sport in connections():
        start = int(time.timestamp())
        eni_src = NODES[src.node][0]
        eni_dst = NODES[dst.node][0] if not isinstance(dst, str) else dst
        lines.append(f"5 eni-{src.node} {eni_src} {eni_dst} {sport} {port} 6 5 400 {start} "
                     f"{start + 60} ACCEPT 2 {src.ip} {_ip(dst)} egress OK")  # fmt: skip
        if not isinstance(dst, str):  # logged again by the destination's ENI
            lines.append(
                f"5 eni-{dst.node} {eni_src} {eni_dst} {sport} {port} 6 5 400 "
                f"{start + 5} {start + 65} ACCEPT 2 {src.ip} {dst.ip} ingress OK"
            )
            lines.append(
                f"5 eni-{dst.node} {eni_dst} {eni_src} {port} {sport} 6 4 300 "
                f"{start + 5} {start + 65} ACCEPT 18 {dst.ip} {src.ip} egress OK"
            )
    return "\n".join(lines) + "\n"


def render_gcp() -> str:
    """LogEntry lines reported by both ends (SRC, DEST), with GKE pod details."""
    lines = []
    for time, src, dst, _protocol, port, sport in connections():
        for reporter in ("SRC", "DEST") if not isinstance(dst, str) else ("SRC",):
            payload: dict[str, Any] = {
                "connection": {"src_ip": src.ip, "src_port": sport, "dest_ip": _ip(dst),
                               "dest_port": port, "protocol": 6},
                "reporter": reporter, "bytes_sent": "400", "packets_sent": "5",
                "start_time": time.isoformat().replace("+00:00", "Z"),
                "end_time": (time + pd.Timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
                "src_gke_details": {"cluster": {"cluster_name": "c1"},
                                    "pod": {"pod_name": src.name, "pod_namespace": src.namespace}},
            }  # fmt: skip
            if isinstance(dst, str):
                payload["dest_location"] = {"continent": "Europe", "country": "fra"}
            else:
                payload["dest_gke_details"] = {
                    "cluster": {"cluster_name": "c1"},
                    "pod": {"pod_name": dst.name, "pod_namespace": dst.namespace},
                }
            lines.append(json.dumps({
                "insertId": "x", "jsonPayload": payload,
                "logName": "projects/p/logs/compute.googleapis.com%2Fvpc_flows",
                "timestamp": payload["end_time"],
            }))  # fmt: skip
            # GCP logs the answering direction as a record of its own, with no reply flag.
            back = dict(
                payload,
                connection={
                    "src_ip": _ip(dst),
                    "src_port": port,
                    "dest_ip": src.ip,
                    "dest_port": sport,
                    "protocol": 6,
                },
                start_time=(time + pd.Timedelta(seconds=1)).isoformat().replace("+00:00", "Z"),
            )
            back.pop("src_gke_details")
            back.pop("dest_location", None)
            back.pop("dest_gke_details", None)
            lines.append(json.dumps({"insertId": "y", "jsonPayload": back,
                                     "timestamp": payload["end_time"]}))  # fmt: skip
    return "\n".join(lines) + "\n"


def render_azure() -> str:
    """An NSG flow log v2 blob: begin and end tuples per connection."""
    tuples = []
    for time, src, dst, _protocol, port, sport in connections():
        start = int(time.timestamp())
        tuples.append(f"{start},{src.ip},{_ip(dst)},{sport},{port},T,O,A,B,,,,")
        tuples.append(f"{start + 30},{src.ip},{_ip(dst)},{sport},{port},T,O,A,E,5,400,4,300")
    document = {"records": [{
        "time": "2024-05-01T10:10:00Z", "category": "NetworkSecurityGroupFlowEvent",
        "operationName": "NetworkSecurityGroupFlowEvents",
        "properties": {"Version": 2, "flows": [
            {"rule": "UserRule_AllowAll", "flows": [{"mac": "000D3AF87856", "flowTuples": tuples}]}
        ]},
    }]}  # fmt: skip
    return json.dumps(document, indent=2)


RENDERERS = {
    "csv": render_csv,
    "hubble": render_hubble,
    "aws-vpc": render_aws,
    "gcp-vpc": render_gcp,
    "azure": render_azure,
}
