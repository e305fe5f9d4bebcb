#!/usr/bin/env python3
"""Generate the online-shop sample: flows (CSV, Hubble JSON lines, AWS, GCP and Azure flow logs)
and its pod inventory.

The cluster is an online-shop style application of a dozen services (modelled on Google's
microservices demo) in namespace ``shop``, with the things real clusters add around it:

* ``kube-system``: CoreDNS (``k8s-app=kube-dns``), which every pod asks, and which forwards to
  the VPC resolver and watches the API server;
* ``monitoring``: Prometheus scraping pods in every namespace and the node exporters (host
  network, so node IPs), Grafana reading Prometheus, kube-state-metrics reading the API server;
* ``ingress-nginx``: the ingress controller, reached from the internet, forwarding to the
  frontend;
* outside peers: a payment API, an SMTP relay and an exchange-rate feed (documentation
  addresses, RFC 5737), internet clients, the VPC resolver and the API server endpoint;
* replies (some without ``is_reply`` in the CSV, to exercise inference), and a few flows the
  current policy dropped.

Everything is derived from ``--seed`` with :class:`random.Random` and written in a fixed order, so
the same arguments always produce the same bytes (``tests/test_samples.py`` checks the committed
files against a fresh run). ``--scale N`` multiplies the number of connections.

Usage::

    python scripts/make_samples.py                 # rewrite sample_flows/online-shop.*
    python scripts/make_samples.py --scale 20 --out /tmp/big
    python scripts/make_samples.py --out /tmp/s --layout /tmp/buckets  # S3 keys, Azure blobs
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NAME = "online-shop"
START = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=30)
# Pod and resource names use the Kubernetes random-suffix alphabet (no vowels, no 0/1/3).
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CLUSTER = "default"

NODES = (
    ("node-a", "10.0.0.11", "10.244.0.0/24"),
    ("node-b", "10.0.0.12", "10.244.1.0/24"),
    ("node-c", "10.0.0.13", "10.244.2.0/24"),
)
API_SERVER = "10.0.0.10"  # the control plane's endpoint behind default/kubernetes
VPC_RESOLVER = "10.0.0.2"
NAMESPACES = {
    "default": {},
    "shop": {"team": "shop", "environment": "production"},
    "monitoring": {"team": "platform"},
    "kube-system": {},
    "ingress-nginx": {"app.kubernetes.io/name": "ingress-nginx"},
}


@dataclass(frozen=True)
class Workload:
    """A controller and the pods it runs: name, kind, labels, ports, replicas."""

    namespace: str
    name: str
    kind: str  # Deployment, StatefulSet, DaemonSet
    labels: dict[str, str]
    ports: tuple[tuple[str, int, str], ...]  # (name, containerPort, protocol)
    replicas: int = 1
    host_network: bool = False
    service_ports: tuple[tuple[str, int, int, str], ...] = ()  # (name, port, targetPort, proto)
    service_name: str | None = None


def _shop(name: str, port: int, replicas: int = 1, port_name: str = "grpc") -> Workload:
    return Workload(
        "shop",
        name,
        "Deployment",
        {"app": name},
        ((port_name, port, "TCP"), ("metrics", 9464, "TCP")),
        replicas,
        service_ports=((port_name, port, port, "TCP"),),
    )


WORKLOADS: tuple[Workload, ...] = (
    _shop("frontend", 8080, 3, "http"),
    _shop("cartservice", 7070, 2),
    _shop("checkoutservice", 5050),
    _shop("paymentservice", 50051),
    _shop("shippingservice", 50051),
    _shop("emailservice", 8080),
    _shop("currencyservice", 7000, 2),
    _shop("productcatalogservice", 3550, 2),
    _shop("recommendationservice", 8080),
    _shop("adservice", 9555),
    Workload(
        "shop",
        "redis-cart",
        "StatefulSet",
        {"app": "redis-cart", "tier": "cache"},
        (("redis", 6379, "TCP"),),
        1,
        service_ports=(("redis", 6379, 6379, "TCP"),),
    ),
    Workload("shop", "loadgenerator", "Deployment", {"app": "loadgenerator"}, ()),
    Workload(
        "kube-system",
        "coredns",
        "Deployment",
        {"k8s-app": "kube-dns"},
        (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")),
        2,
        service_ports=(("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP")),
        service_name="kube-dns",
    ),
    Workload(
        "monitoring",
        "prometheus-k8s",
        "StatefulSet",
        {
            "app.kubernetes.io/name": "prometheus",
            "app.kubernetes.io/instance": "k8s",
            "app.kubernetes.io/component": "prometheus",
        },
        (("web", 9090, "TCP"),),
        1,
        service_ports=(("web", 9090, 9090, "TCP"),),
    ),
    Workload(
        "monitoring",
        "grafana",
        "Deployment",
        {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/component": "grafana"},
        (("http", 3000, "TCP"),),
        1,
        service_ports=(("http", 3000, 3000, "TCP"),),
    ),
    Workload(
        "monitoring",
        "kube-state-metrics",
        "Deployment",
        {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/component": "exporter"},
        (("http-metrics", 8080, "TCP"),),
        1,
        service_ports=(("http-metrics", 8080, 8080, "TCP"),),
    ),
    Workload(
        "monitoring",
        "node-exporter",
        "DaemonSet",
        {"app.kubernetes.io/name": "node-exporter", "app.kubernetes.io/component": "exporter"},
        (("metrics", 9100, "TCP"),),
        len(NODES),
        host_network=True,
    ),
    Workload(
        "ingress-nginx",
        "ingress-nginx-controller",
        "Deployment",
        {
            "app.kubernetes.io/name": "ingress-nginx",
            "app.kubernetes.io/instance": "ingress-nginx",
            "app.kubernetes.io/component": "controller",
        },
        (("http", 80, "TCP"), ("https", 443, "TCP"), ("metrics", 10254, "TCP")),
        1,
        service_ports=(("http", 80, 80, "TCP"), ("https", 443, 443, "TCP")),
    ),
)

# Who calls whom: (client, server, protocol, port, connections at --scale 1).
SHOP_CALLS = (
    ("loadgenerator", "frontend", 10),
    ("frontend", "productcatalogservice", 8),
    ("frontend", "currencyservice", 8),
    ("frontend", "cartservice", 6),
    ("frontend", "recommendationservice", 5),
    ("frontend", "adservice", 5),
    ("frontend", "shippingservice", 3),
    ("frontend", "checkoutservice", 3),
    ("checkoutservice", "productcatalogservice", 3),
    ("checkoutservice", "cartservice", 3),
    ("checkoutservice", "currencyservice", 3),
    ("checkoutservice", "shippingservice", 3),
    ("checkoutservice", "paymentservice", 3),
    ("checkoutservice", "emailservice", 3),
    ("recommendationservice", "productcatalogservice", 4),
    ("cartservice", "redis-cart", 6),
)
OUTSIDE_CALLS = (
    # (client workload, address, port, protocol, connections, DNS name)
    ("paymentservice", "203.0.113.10", 443, "TCP", 2, "api.payments.example"),
    ("paymentservice", "203.0.113.11", 443, "TCP", 2, "api.payments.example"),
    ("paymentservice", "203.0.113.12", 443, "TCP", 1, "api.payments.example"),
    ("emailservice", "198.51.100.25", 587, "TCP", 2, "smtp.mail.example"),
    ("currencyservice", "192.0.2.80", 443, "TCP", 2, "rates.exchange.example"),
    ("coredns", VPC_RESOLVER, 53, "UDP", 6, None),
    ("coredns", API_SERVER, 6443, "TCP", 2, None),
    ("kube-state-metrics", API_SERVER, 6443, "TCP", 2, None),
    ("prometheus-k8s", API_SERVER, 6443, "TCP", 2, None),
)
INTERNET_CLIENTS = ("198.51.100.7", "198.51.100.42", "198.51.100.77", "192.0.2.160", "192.0.2.161")
# A pod that left before the inventory snapshot and that Cilium did not manage: its address is
# in a pod CIDR but nothing names it (an "unresolved" IP).
UNMANAGED_POD = "10.244.1.250"
# Traffic the policy in force dropped: (client, server, port, attempts).
DENIED = (("loadgenerator", "redis-cart", 6379, 3), ("frontend", "prometheus-k8s", 9090, 2))


@dataclass
class Pod:
    workload: Workload
    name: str
    labels: dict[str, str]
    ip: str
    node: str
    start: datetime
    uid: str
    owner: tuple[str, str]  # (kind, name)
    identity: int
    endpoint_id: int


@dataclass(frozen=True)
class Outside:
    ip: str
    kind: str  # world, host, node, apiserver, unmanaged
    node: str | None = None
    dns_name: str | None = None


Endpoint = Pod | Outside


@dataclass(order=True)
class Record:
    """One flow record: the CSV row and the Hubble events are written from it."""

    time: datetime
    seq: int
    src: Endpoint = field(compare=False)
    dst: Endpoint = field(compare=False)
    src_port: int = field(compare=False)
    dst_port: int = field(compare=False)
    protocol: str = field(compare=False)
    is_reply: bool = field(compare=False)
    verdict: str = field(compare=False)  # FORWARDED, DROPPED
    bytes: int = field(compare=False)
    packets: int = field(compare=False)
    service: tuple[str, str] | None = field(compare=False, default=None)
    csv_reply_known: bool = field(compare=False, default=True)


class Generator:
    """Builds the cluster and its traffic from one seeded random stream."""

    def __init__(self, seed: int, scale: int) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.pods: dict[str, list[Pod]] = {}
        self.workloads = {w.name: w for w in WORKLOADS}
        self.records: list[Record] = []
        self.seq = 0
        self._next_ip = {node: 10 for node, _, _ in NODES}
        self._identity = 10_000
        self._endpoint_id = 100
        self._build_pods()

    def suffix(self, length: int) -> str:
        return "".join(self.rng.choice(ALPHABET) for _ in range(length))

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _build_pods(self) -> None:
        for index, workload in enumerate(WORKLOADS):
            template_hash = self.suffix(10)
            revision = f"{workload.name}-{self.suffix(10)}"
            self._identity += self.rng.randint(1, 900)
            pods = []
            for replica in range(workload.replicas):
                labels = dict(workload.labels)
                if workload.kind == "Deployment":
                    name = f"{workload.name}-{template_hash}-{self.suffix(5)}"
                    labels["pod-template-hash"] = template_hash
                    owner = ("ReplicaSet", f"{workload.name}-{template_hash}")
                elif workload.kind == "StatefulSet":
                    name = f"{workload.name}-{replica}"
                    labels["controller-revision-hash"] = revision
                    labels["statefulset.kubernetes.io/pod-name"] = name
                    owner = ("StatefulSet", workload.name)
                else:
                    name = f"{workload.name}-{self.suffix(5)}"
                    labels["controller-revision-hash"] = revision.rsplit("-", 1)[1][:9]
                    labels["pod-template-generation"] = "1"
                    owner = ("DaemonSet", workload.name)
                if workload.host_network:
                    node, node_ip, _ = NODES[replica % len(NODES)]
                    ip = node_ip
                else:
                    node, _, cidr = NODES[(index + replica) % len(NODES)]
                    ip = cidr.rsplit(".", 1)[0] + f".{self._next_ip[node]}"
                    self._next_ip[node] += self.rng.randint(1, 7)
                start = START - timedelta(hours=self.rng.randint(2, 200), seconds=replica * 41)
                self._endpoint_id += self.rng.randint(1, 300)
                pods.append(
                    Pod(
                        workload,
                        name,
                        labels,
                        ip,
                        node,
                        start,
                        self.uid(),
                        owner,
                        self._identity,
                        self._endpoint_id,
                    )
                )
            self.pods[workload.name] = pods

    # --- traffic -----------------------------------------------------------------------------

    def moment(self) -> datetime:
        return START + timedelta(microseconds=self.rng.randrange(int(WINDOW.total_seconds() * 1e6)))

    def connect(
        self,
        src: Endpoint,
        dst: Endpoint,
        protocol: str,
        port: int,
        *,
        denied: bool = False,
        service: tuple[str, str] | None = None,
    ) -> None:
        """One connection: a request record and, unless dropped, its reply."""
        at = self.moment()
        sport = self.rng.randint(32768, 60999)
        size = self.rng.randint(200, 4000)
        self.seq += 1
        self.records.append(
            Record(
                at,
                self.seq,
                src,
                dst,
                sport,
                port,
                protocol,
                False,
                "DROPPED" if denied else "FORWARDED",
                size if not denied else 74,
                max(1, size // 900),
                service,
            )
        )
        if denied:
            return
        back = at + timedelta(microseconds=self.rng.randint(150, 40_000))
        reply_size = self.rng.randint(100, 60_000)
        self.seq += 1
        self.records.append(
            Record(
                back,
                self.seq,
                dst,
                src,
                port,
                sport,
                protocol,
                True,
                "FORWARDED",
                reply_size,
                max(1, reply_size // 1400),
                None,
                csv_reply_known=self.rng.random() >= 0.2,
            )
        )

    def times(self, base: int) -> int:
        return base * self.scale

    def generate(self) -> list[Record]:
        pick = self.rng.choice
        dns = self.pods["coredns"]
        kube_dns = ("kube-dns", "kube-system")
        for client, server, connections in SHOP_CALLS:
            for _ in range(self.times(connections)):
                self.connect(
                    pick(self.pods[client]),
                    pick(self.pods[server]),
                    "TCP",
                    self.workloads[server].ports[0][1],
                    service=(server, "shop"),
                )
        ingress = self.pods["ingress-nginx-controller"]
        for _ in range(self.times(8)):
            self.connect(
                pick(ingress),
                pick(self.pods["frontend"]),
                "TCP",
                8080,
                service=("frontend", "shop"),
            )
            self.connect(Outside(pick(INTERNET_CLIENTS), "world"), pick(ingress), "TCP", 443)
        for client, address, port, protocol, connections, name in OUTSIDE_CALLS:
            kind = "apiserver" if address == API_SERVER else "world"
            for _ in range(self.times(connections)):
                self.connect(
                    pick(self.pods[client]), Outside(address, kind, dns_name=name), protocol, port
                )
        # Every workload that talks resolves names first (not the DNS server itself, nor the
        # host-network exporters, which use the node's resolver).
        for workload in WORKLOADS:
            if workload.name in ("coredns", "node-exporter", "redis-cart"):
                continue
            for _ in range(self.times(3)):
                self.connect(pick(self.pods[workload.name]), pick(dns), "UDP", 53, service=kube_dns)
        # Prometheus scrapes every pod with a metrics port, and the nodes' exporters.
        prometheus = self.pods["prometheus-k8s"][0]
        for workload in WORKLOADS:
            metrics = [p for n, p, _ in workload.ports if n in ("metrics", "http-metrics")]
            if workload.host_network:
                for pod in self.pods[workload.name]:
                    kind = "host" if pod.node == prometheus.node else "node"
                    for _ in range(self.times(2)):
                        self.connect(
                            prometheus, Outside(pod.ip, kind, node=pod.node), "TCP", metrics[0]
                        )
                continue
            if not metrics:
                continue
            for pod in self.pods[workload.name]:
                for _ in range(self.times(2)):
                    self.connect(prometheus, pod, "TCP", metrics[0])
        for _ in range(self.times(3)):
            self.connect(
                Outside(UNMANAGED_POD, "unmanaged"), pick(self.pods["frontend"]), "TCP", 8080
            )
        for _ in range(self.times(4)):
            self.connect(
                pick(self.pods["grafana"]),
                prometheus,
                "TCP",
                9090,
                service=("prometheus-k8s", "monitoring"),
            )
        for client, server, port, attempts in DENIED:
            for _ in range(self.times(attempts)):
                self.connect(
                    pick(self.pods[client]), pick(self.pods[server]), "TCP", port, denied=True
                )
        return sorted(self.records)


# --- writers ---------------------------------------------------------------------------------

CSV_COLUMNS = (
    "time",
    "src_namespace",
    "src_pod",
    "src_labels",
    "src_ip",
    "src_port",
    "src_kind",
    "dst_namespace",
    "dst_pod",
    "dst_labels",
    "dst_ip",
    "dst_port",
    "dst_kind",
    "protocol",
    "verdict",
    "is_reply",
    "count",
    "bytes",
    "packets",
)


def _rfc3339(moment: datetime, digits: int) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}" + "000"
    return f"{text}.{fraction[:digits]}Z"


def _csv_side(endpoint: Endpoint) -> list[str]:
    if isinstance(endpoint, Pod) and not endpoint.workload.host_network:
        labels = ",".join(f"{k}={v}" for k, v in sorted(endpoint.labels.items()))
        return [endpoint.workload.namespace, endpoint.name, labels, endpoint.ip]
    return ["", "", "", endpoint.ip]


def _csv_kind(endpoint: Endpoint) -> str:
    if isinstance(endpoint, Pod):
        return "pod"
    return {"host": "node", "node": "node", "unmanaged": ""}.get(endpoint.kind, "world")


def write_csv(records: list[Record]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        src, dst = _csv_side(r.src), _csv_side(r.dst)
        reply = ("true" if r.is_reply else "false") if r.csv_reply_known else ""
        writer.writerow(
            [
                _rfc3339(r.time, 6),
                *src,
                r.src_port,
                _csv_kind(r.src),
                *dst,
                r.dst_port,
                _csv_kind(r.dst),
                r.protocol,
                "denied" if r.verdict == "DROPPED" else "allowed",
                reply,
                1,
                r.bytes,
                r.packets,
            ]
        )
    return out.getvalue()


def _hubble_labels(pod: Pod) -> list[str]:
    # Cilium keeps the pod's labels minus per-revision ones, and adds its own io.cilium/
    # io.kubernetes labels; the list is sorted, as `hubble observe` prints it.
    volatile = (
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
    )
    labels = [f"k8s:{k}={v}" for k, v in pod.labels.items() if k not in volatile]
    namespace = pod.workload.namespace
    ns_labels = {"kubernetes.io/metadata.name": namespace, **NAMESPACES[namespace]}
    labels += [f"k8s:io.cilium.k8s.namespace.labels.{k}={v}" for k, v in ns_labels.items()]
    labels += [
        f"k8s:io.cilium.k8s.policy.cluster={CLUSTER}",
        f"k8s:io.cilium.k8s.policy.serviceaccount={pod.workload.name}",
        f"k8s:io.kubernetes.pod.namespace={namespace}",
    ]
    return sorted(labels)


def _hubble_endpoint(endpoint: Endpoint, local_node: str) -> dict[str, Any]:
    if isinstance(endpoint, Pod) and not endpoint.workload.host_network:
        out: dict[str, Any] = {}
        if endpoint.node == local_node:
            out["ID"] = endpoint.endpoint_id
        out.update(
            identity=endpoint.identity,
            cluster_name=CLUSTER,
            namespace=endpoint.workload.namespace,
            labels=_hubble_labels(endpoint),
            pod_name=endpoint.name,
            workloads=[{"name": endpoint.workload.name, "kind": endpoint.workload.kind}],
        )
        return out
    node = endpoint.node if isinstance(endpoint, Pod) else endpoint.node
    kind = "host" if isinstance(endpoint, Pod) else endpoint.kind
    if kind in ("host", "node"):
        local = node == local_node
        return (
            {"identity": 1, "labels": ["reserved:host"]}
            if local
            else {"identity": 6, "labels": ["reserved:remote-node"]}
        )
    if kind == "unmanaged":
        return {"identity": 3, "labels": ["reserved:unmanaged"]}
    if kind == "apiserver":
        return {"identity": 7, "labels": ["reserved:kube-apiserver"]}
    return {"identity": 2, "labels": ["reserved:world"]}


def _node_of(endpoint: Endpoint) -> str | None:
    return endpoint.node if isinstance(endpoint, Pod) else endpoint.node


def _hubble_events(r: Record, rng: random.Random) -> list[tuple[datetime, str, dict[str, Any]]]:
    """The events Hubble shows for one record: as it leaves the source and as it arrives."""
    l4_fields: dict[str, Any] = {"source_port": r.src_port, "destination_port": r.dst_port}
    if r.protocol == "TCP":
        l4_fields["flags"] = {"SYN": True, "ACK": True} if r.is_reply else {"SYN": True}
        summary = "TCP Flags: SYN, ACK" if r.is_reply else "TCP Flags: SYN"
    else:
        summary = "UDP"
    observations: list[tuple[str, str, str, int]] = []  # (node, direction, point, delay us)
    src_node, dst_node = _node_of(r.src), _node_of(r.dst)
    src_is_pod = isinstance(r.src, Pod) and not r.src.workload.host_network
    dst_is_pod = isinstance(r.dst, Pod) and not r.dst.workload.host_network
    if r.verdict == "DROPPED":
        observations.append((dst_node or "node-a", "INGRESS", "", 90))
    else:
        if src_is_pod and src_node:
            observations.append((src_node, "EGRESS", "TO_STACK", 0))
        if dst_is_pod and dst_node:
            observations.append((dst_node, "INGRESS", "TO_ENDPOINT", rng.randint(40, 900)))
    events = []
    for node, direction, point, delay in observations:
        at = r.time + timedelta(microseconds=delay)
        stamp = _rfc3339(at, 9)
        flow: dict[str, Any] = {
            "time": stamp,
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "verdict": r.verdict,
        }
        if r.verdict == "DROPPED":
            flow["drop_reason"] = 133
        flow["IP"] = {"source": r.src.ip, "destination": r.dst.ip, "ipVersion": "IPv4"}
        flow["l4"] = {r.protocol: l4_fields}
        flow["source"] = _hubble_endpoint(r.src, node)
        flow["destination"] = _hubble_endpoint(r.dst, node)
        flow["Type"] = "L3_L4"
        flow["node_name"] = node
        if isinstance(r.dst, Outside) and r.dst.dns_name:
            flow["destination_names"] = [r.dst.dns_name]
        if isinstance(r.src, Outside) and r.src.dns_name:
            flow["source_names"] = [r.src.dns_name]
        if r.verdict == "DROPPED":
            flow["event_type"] = {"type": 1, "sub_type": 133}
        else:
            flow["event_type"] = (
                {"type": 4} if point == "TO_ENDPOINT" else {"type": 4, "sub_type": 3}
            )
        if r.service is not None and not r.is_reply:
            flow["destination_service"] = {"name": r.service[0], "namespace": r.service[1]}
        flow["traffic_direction"] = direction
        if point:
            flow["trace_observation_point"] = point
        flow["is_reply"] = r.is_reply
        if r.verdict == "DROPPED":
            flow["drop_reason_desc"] = "POLICY_DENIED"
        flow["Summary"] = summary
        events.append((at, node, flow))
    return events


def write_hubble(records: list[Record], seed: int) -> str:
    rng = random.Random(seed + 1)
    events = []
    for index, record in enumerate(records):
        for at, node, flow in _hubble_events(record, rng):
            events.append((at, index, node, flow))
    events.sort(key=lambda e: (e[0], e[1]))
    lines = [
        json.dumps({"flow": flow, "node_name": node, "time": flow["time"]}, separators=(",", ":"))
        for _, _, node, flow in events
    ]
    return "\n".join(lines) + "\n"


# --- cloud flow logs -------------------------------------------------------------------------
#
# The same records as the provider's VPC logs them, joined to the inventory by address. What each
# provider sees follows its documentation (FORMATS.md sections 2-4): pods have VPC addresses (EKS
# VPC CNI, VPC-native GKE, AKS Azure CNI) carried by their node's interface, so a record is seen
# at the interface of each end's node; traffic between two endpoints of one node never leaves it
# and is not logged (a documented loss), nor is anything at an outside peer's end. A connection
# the policy dropped is refused at the server's interface and seen leaving the client's.

AWS_ACCOUNT = "123456789012"
AWS_REGION = "us-east-1"
AWS_FLOW_LOG = "fl-0a1b2c3d4e5f60718"
AWS_VPC = "vpc-0b1c2d3e4f5a6b7c8"
AWS_FIELDS = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes "
    "start end action log-status vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr "
    "pkt-dstaddr region az-id sublocation-type sublocation-id pkt-src-aws-service "
    "pkt-dst-aws-service flow-direction traffic-path"
)
PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17}
GCP_PROJECT = "shop-prod-4711"
GCP_CLUSTER = {"cluster_location": "us-central1-a", "cluster_name": "shop"}
AZURE_SUBSCRIPTION = "00000000-0000-4000-8000-0000000000a1"
AZURE_FLOW_LOG = (
    f"/SUBSCRIPTIONS/{AZURE_SUBSCRIPTION.upper()}/RESOURCEGROUPS/NETWORKWATCHERRG/PROVIDERS/"
    "MICROSOFT.NETWORK/NETWORKWATCHERS/NETWORKWATCHER_EASTUS/FLOWLOGS/AKS-SHOP"
)


def _vpc_node(endpoint: Endpoint) -> str | None:
    """The node whose interface carries ``endpoint``'s address, or None (outside the VPC)."""
    if isinstance(endpoint, Pod):
        return endpoint.node
    if endpoint.node is not None:
        return endpoint.node
    for node, node_ip, cidr in NODES:  # a pod the inventory does not name: its node's range
        if endpoint.ip == node_ip or endpoint.ip.startswith(cidr.rsplit(".", 1)[0] + "."):
            return node
    return None


def _observations(r: Record) -> list[tuple[str, str]]:
    """``(node, "egress"|"ingress")`` for each interface that logs record ``r``."""
    src, dst = _vpc_node(r.src), _vpc_node(r.dst)
    if src is not None and src == dst:
        return []  # node-local: never on the wire
    return [(n, d) for n, d in ((src, "egress"), (dst, "ingress")) if n is not None]


def _ids(node: str, prefix: str, length: int = 17) -> str:
    return prefix + uuid.uuid5(uuid.NAMESPACE_DNS, f"{prefix}{node}").hex[:length]


def _window(moment: datetime, seconds: int) -> tuple[int, int]:
    start = int(moment.timestamp()) // seconds * seconds
    return start, start + seconds


def _aws_lines(records: list[Record]) -> list[tuple[int, str, int, str]]:
    """``(window start, interface, seq, line)`` per record and interface (v5, 1-minute windows)."""
    out = []
    for r in records:
        for node, direction in _observations(r):
            start, end = _window(r.time, 60)
            eni, instance = _ids(node, "eni-"), _ids(node, "i-")
            denied = r.verdict == "DROPPED"
            action = "REJECT" if denied and direction == "ingress" else "ACCEPT"
            # tcp-flags are ORed over the window; AWS reports FIN 1, SYN 2, RST 4, SYN-ACK 18.
            flags = 0
            if r.protocol == "TCP":
                flags = 2 if denied else (19 if r.is_reply else 3)
            inside = _vpc_node(r.dst if direction == "egress" else r.src) is not None
            path = ("1" if inside else "8") if direction == "egress" else "-"
            fields = [
                "5", AWS_ACCOUNT, eni, r.src.ip, r.dst.ip, str(r.src_port), str(r.dst_port),
                str(PROTOCOL_NUMBERS[r.protocol]), str(r.packets), str(r.bytes), str(start),
                str(end), action, "OK", AWS_VPC, _ids(node, "subnet-"), instance, str(flags),
                "IPv4", r.src.ip, r.dst.ip, AWS_REGION, "use1-az1", "-", "-", "-", "-",
                direction, path,
            ]  # fmt: skip
            out.append((start, eni, r.seq, " ".join(fields)))
    return sorted(out)


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)  # no timestamp: the same bytes every run


def write_aws(records: list[Record]) -> bytes:
    """Every interface's records in one delivered object (v5 custom format, a header line)."""
    return _gzip(AWS_FIELDS + "\n" + "".join(line + "\n" for *_, line in _aws_lines(records)))


def aws_objects(records: list[Record]) -> dict[str, bytes]:
    """The S3 objects of the flow log (one per 5-minute delivery), by key."""
    lines = _aws_lines(records)
    objects: dict[str, list[str]] = {}
    for start, _, _, line in lines:
        moment = datetime.fromtimestamp(start // 300 * 300, UTC)
        digest = uuid.uuid5(uuid.NAMESPACE_URL, moment.isoformat()).hex[:8]
        key = (
            f"AWSLogs/{AWS_ACCOUNT}/vpcflowlogs/{AWS_REGION}/{moment:%Y/%m/%d}/{AWS_ACCOUNT}_"
            f"vpcflowlogs_{AWS_REGION}_{AWS_FLOW_LOG}_{moment:%Y%m%dT%H%MZ}_{digest}.log.gz"
        )
        objects.setdefault(key, []).append(line)
    return {k: _gzip(AWS_FIELDS + "\n" + "".join(x + "\n" for x in v)) for k, v in objects.items()}


def _gcp_side(endpoint: Endpoint, node: str | None, rng: random.Random) -> dict[str, Any]:
    side: dict[str, Any] = {}
    if node is None:
        if isinstance(endpoint, Outside) and endpoint.kind == "world":
            side["location"] = {"continent": "America", "country": "usa", "region": "Virginia"}
        return side
    side["instance"] = {"project_id": GCP_PROJECT, "region": "us-central1", "vm_name":
                        f"gke-shop-pool-1-{node}", "zone": "us-central1-a"}  # fmt: skip
    details: dict[str, Any] = {"cluster": GCP_CLUSTER}
    # Metadata is best effort (GCP docs): a third of the pod records carry the cluster only.
    if isinstance(endpoint, Pod) and not endpoint.workload.host_network and rng.random() > 0.33:
        details["pod"] = {"pod_name": endpoint.name, "pod_namespace": endpoint.workload.namespace}
    side["gke_details"] = details
    return side


def _gcp_denial(r: Record, rng: random.Random) -> dict[str, Any]:
    assert isinstance(r.src, Pod) and isinstance(r.dst, Pod)
    payload = {
        "connection": {"src_ip": r.src.ip, "dest_ip": r.dst.ip, "src_port": r.src_port,
                       "dest_port": r.dst_port, "protocol": r.protocol.lower(),
                       "direction": "ingress"},
        "disposition": "deny",
        "policies": [{"kind": "NetworkPolicy", "name": "default-deny",
                      "namespace": r.dst.workload.namespace}],
        "src": {"pod_name": r.src.name, "pod_namespace": r.src.workload.namespace,
                "workload_kind": r.src.workload.kind, "workload_name": r.src.workload.name},
        "dest": {"pod_name": r.dst.name, "pod_namespace": r.dst.workload.namespace,
                 "workload_kind": r.dst.workload.kind, "workload_name": r.dst.workload.name},
        "count": 1,
        "timestamp": _rfc3339(r.time, 9),
    }  # fmt: skip
    return {
        "insertId": uuid.UUID(int=rng.getrandbits(128), version=4).hex[:14],
        "jsonPayload": payload,
        "logName": f"projects/{GCP_PROJECT}/logs/policy-action",
        "receiveTimestamp": _rfc3339(r.time + timedelta(seconds=30), 9),
        "resource": {
            "labels": {
                "cluster_name": GCP_CLUSTER["cluster_name"],
                "location": GCP_CLUSTER["cluster_location"],
                "project_id": GCP_PROJECT,
            },
            "type": "k8s_node",
        },  # fmt: skip
        "timestamp": _rfc3339(r.time, 9),
    }


def write_gcp(records: list[Record], seed: int) -> str:
    """Cloud Logging ``LogEntry`` lines of the vpc_flows log (a SRC and a DEST reporter for each
    record, one in ten sampled away) and of GKE's network policy log (the denials)."""
    rng = random.Random(seed + 2)
    entries = []
    for r in records:
        for _, direction in _observations(r):
            if rng.random() < 0.1:
                continue  # sampled away
            if r.verdict == "DROPPED" and direction == "ingress":
                # Refused by a NetworkPolicy on the server's node: network policy logging
                # (GKE Dataplane V2) writes the denial to its own log, policy-action.
                entries.append((r.time, r.seq, "deny", _gcp_denial(r, rng)))
                continue
            start = r.time
            end = start + timedelta(milliseconds=rng.randint(1, 4000))
            payload: dict[str, Any] = {
                "bytes_sent": str(r.bytes),
                "connection": {
                    "dest_ip": r.dst.ip,
                    "dest_port": r.dst_port,
                    "protocol": PROTOCOL_NUMBERS[r.protocol],
                    "src_ip": r.src.ip,
                    "src_port": r.src_port,
                },  # fmt: skip
                "end_time": _rfc3339(end, 9),
                "packets_sent": str(r.packets),
                "reporter": "SRC" if direction == "egress" else "DEST",
                "start_time": _rfc3339(start, 9),
            }
            for prefix, endpoint in (("src", r.src), ("dest", r.dst)):
                for key, value in _gcp_side(endpoint, _vpc_node(endpoint), rng).items():
                    payload[f"{prefix}_{key}"] = value
            if r.protocol == "TCP" and direction == "egress":
                payload["rtt_msec"] = str(rng.randint(1, 40))
            entry = {
                "insertId": uuid.UUID(int=rng.getrandbits(128), version=4).hex[:14],
                "jsonPayload": dict(sorted(payload.items())),
                "logName": f"projects/{GCP_PROJECT}/logs/compute.googleapis.com%2Fvpc_flows",
                "receiveTimestamp": _rfc3339(end + timedelta(seconds=30), 9),
                "resource": {
                    "labels": {
                        "location": "us-central1-a",
                        "project_id": GCP_PROJECT,
                        "subnetwork_id": "4711",
                        "subnetwork_name": "nodes",
                    },
                    "type": "gce_subnetwork",
                },  # fmt: skip
                "timestamp": _rfc3339(end + timedelta(seconds=10), 9),
            }
            entries.append((end, r.seq, direction, entry))
    entries.sort(key=lambda e: (e[0], e[1], e[2]))
    return "".join(json.dumps(e[3], separators=(",", ":")) + "\n" for e in entries)


def _mac(node: str) -> str:
    return "00224" + uuid.uuid5(uuid.NAMESPACE_DNS, f"mac-{node}").hex[:7].upper()


def _azure_tuples(records: list[Record]) -> dict[str, list[tuple[int, int, str]]]:
    """Per node NIC, ``(ms, seq, tuple)``: one connection's request and reply become begin and
    end tuples whose source is the initiator and whose counters carry both directions; a refused
    connection is ``D`` at the server's NIC, ``B`` then ``E`` at the client's (VNet v4)."""
    replies = {(r.src.ip, r.src_port, r.dst.ip, r.dst_port): r for r in records if r.is_reply}
    out: dict[str, list[tuple[int, int, str]]] = {}
    for r in records:
        if r.is_reply:
            continue
        reply = replies.get((r.dst.ip, r.dst_port, r.src.ip, r.src_port))
        begin = int(r.time.timestamp() * 1000)
        end = int((reply.time if reply else r.time).timestamp() * 1000) + 15_000
        head = f"{r.src.ip},{r.dst.ip},{r.src_port},{r.dst_port},{PROTOCOL_NUMBERS[r.protocol]}"
        back = f"{reply.packets},{reply.bytes}" if reply else "0,0"
        for node, direction in _observations(r):
            flag = "O" if direction == "egress" else "I"
            tuples = out.setdefault(node, [])
            if r.verdict == "DROPPED" and direction == "ingress":
                tuples.append(
                    (begin, r.seq, f"{begin},{head},{flag},D,NX,{r.packets},{r.bytes},0,0")
                )
                continue
            tuples.append((begin, r.seq, f"{begin},{head},{flag},B,NX,0,0,0,0"))
            tuples.append((end, r.seq, f"{end},{head},{flag},E,NX,{r.packets},{r.bytes},{back}"))
    return out


def azure_blobs(records: list[Record]) -> dict[str, str]:
    """One ``PT1H.json`` per node NIC and hour, by blob path; a record per minute."""
    blobs = {}
    for node, tuples in sorted(_azure_tuples(records).items()):
        hours: dict[datetime, dict[int, list[str]]] = {}
        for ms, _, text in sorted(tuples):
            moment = datetime.fromtimestamp(ms / 1000, UTC)
            hour = moment.replace(minute=0, second=0, microsecond=0)
            hours.setdefault(hour, {}).setdefault(moment.minute, []).append(text)
        nic = f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/mc_shop/providers/" \
              f"Microsoft.Network/networkInterfaces/aks-{node}-nic-0"  # fmt: skip
        for hour, minutes in sorted(hours.items()):
            records_out = []
            for minute, texts in sorted(minutes.items()):
                at = hour + timedelta(minutes=minute, seconds=59)
                allowed = [t for t in texts if ",D," not in t]
                denied = [t for t in texts if ",D," in t]
                groups = [{"rule": "DefaultRule_AllowVnetInBound", "flowTuples": allowed}]
                if denied:
                    groups.append({"rule": "UserRule_deny-unlisted", "flowTuples": denied})
                records_out.append({
                    "time": at.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"), "flowLogVersion": 4,
                    "flowLogGUID": str(uuid.uuid5(uuid.NAMESPACE_URL, AZURE_FLOW_LOG)),
                    "macAddress": _mac(node), "category": "FlowLogFlowEvent",
                    "flowLogResourceID": AZURE_FLOW_LOG, "targetResourceID": nic,
                    "operationName": "FlowLogFlowEvent",
                    "flowRecords": {"flows": [{
                        "aclID": str(uuid.uuid5(uuid.NAMESPACE_URL, nic)),
                        "flowGroups": [g for g in groups if g["flowTuples"]]}]},
                })  # fmt: skip
            path = (
                f"insights-logs-flowlogflowevent/flowLogResourceID={AZURE_FLOW_LOG}/"
                f"y={hour:%Y}/m={hour:%m}/d={hour:%d}/h={hour:%H}/m=00/macAddress={_mac(node)}/"
                "PT1H.json"
            )
            blobs[path] = json.dumps({"records": records_out}, separators=(",", ":"))
    return blobs


def write_azure(records: list[Record]) -> str:
    """Every NIC's hourly blob as one line of JSON lines (an Event Hubs style export)."""
    return "".join(blob + "\n" for _, blob in sorted(azure_blobs(records).items()))


def write_layout(records: list[Record], seed: int, root: Path) -> list[Path]:
    """The cloud logs as their buckets store them, under ``root``: ``aws/AWSLogs/...`` (S3),
    ``gcp/...`` (a Cloud Storage sink's hourly object), ``azure/insights-logs-.../PT1H.json``."""
    files: dict[str, bytes] = {f"aws/{k}": v for k, v in aws_objects(records).items()}
    hour = START.replace(minute=0, second=0, microsecond=0)
    gcs = f"gcp/compute.googleapis.com/vpc_flows/{hour:%Y/%m/%d}/{hour:%H}:00:00_{hour:%H}:59:59"
    gcs += "_S0.json"
    files[gcs] = write_gcp(records, seed).encode()
    files.update({f"azure/{k}": v.encode() for k, v in azure_blobs(records).items()})
    written = []
    for name, data in sorted(files.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


# --- inventory -------------------------------------------------------------------------------

SNAPSHOT = START + WINDOW + timedelta(minutes=1)


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(
    name: str,
    created: datetime,
    uid: str,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"creationTimestamp": _ts(created)}
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    meta["name"] = name
    if namespace is not None:
        meta["namespace"] = namespace
    meta["resourceVersion"] = str(int(uid[:6], 16))
    meta["uid"] = uid
    return meta


def inventory(gen: Generator) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    created = START - timedelta(days=40)
    for namespace, labels in NAMESPACES.items():
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": _meta(
                    namespace,
                    created,
                    gen.uid(),
                    labels={"kubernetes.io/metadata.name": namespace, **labels},
                ),
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )
    for index, (name, ip, cidr) in enumerate(NODES):
        zone = "abc"[index % 3]
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": _meta(
                    name,
                    created,
                    gen.uid(),
                    labels={
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "node.kubernetes.io/instance-type": "m6i.xlarge",
                        "topology.kubernetes.io/zone": f"eu-west-1{zone}",
                    },
                ),
                "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                "status": {
                    "addresses": [
                        {"address": ip, "type": "InternalIP"},
                        {"address": name, "type": "Hostname"},
                    ],
                    # Kubelets post their status every few seconds: the latest heartbeat is how
                    # a reader tells when the snapshot was taken.
                    "conditions": [
                        {
                            "lastHeartbeatTime": _ts(SNAPSHOT - timedelta(seconds=3 + 7 * index)),
                            "lastTransitionTime": _ts(created + timedelta(minutes=2)),
                            "message": "kubelet is posting ready status",
                            "reason": "KubeletReady",
                            "status": "True",
                            "type": "Ready",
                        }
                    ],
                },
            }
        )
    for workload in WORKLOADS:
        for pod in gen.pods[workload.name]:
            items.append(_pod_manifest(pod))
    items.extend(_services(gen))
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def _pod_manifest(pod: Pod) -> dict[str, Any]:
    workload = pod.workload
    node_ip = next(ip for name, ip, _ in NODES if name == pod.node)
    meta = _meta(pod.name, pod.start, pod.uid, workload.namespace, pod.labels)
    if workload.kind == "Deployment":
        meta["generateName"] = pod.owner[1] + "-"
    meta["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "blockOwnerDeletion": True,
            "controller": True,
            "kind": pod.owner[0],
            "name": pod.owner[1],
            "uid": pod.uid[::-1],
        }
    ]
    container: dict[str, Any] = {
        "image": f"registry.example/{workload.name}:v1.4.2",
        "name": "server" if workload.namespace == "shop" else workload.name,
    }
    if workload.ports:
        container["ports"] = [
            {"containerPort": port, "name": name, "protocol": protocol}
            for name, port, protocol in workload.ports
        ]
    spec: dict[str, Any] = {"containers": [container]}
    if workload.host_network:
        spec["hostNetwork"] = True
    spec["nodeName"] = pod.node
    spec["serviceAccountName"] = workload.name
    started = pod.start + timedelta(seconds=4)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "containerStatuses": [
                {
                    "name": container["name"],
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": _ts(started)}},
                }
            ],
            "hostIP": node_ip,
            "hostIPs": [{"ip": node_ip}],
            "phase": "Running",
            "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}],
            "qosClass": "Burstable",
            "startTime": _ts(pod.start),
        },
    }


def _services(gen: Generator) -> list[dict[str, Any]]:
    created = START - timedelta(days=30)
    services = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(
                "kubernetes",
                created,
                gen.uid(),
                "default",
                {"component": "apiserver", "provider": "kubernetes"},
            ),
            "spec": {
                "clusterIP": "10.96.0.1",
                "clusterIPs": ["10.96.0.1"],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                "type": "ClusterIP",
            },
        }
    ]
    octet = 10
    for workload in WORKLOADS:
        if not workload.service_ports:
            continue
        name = workload.service_name or workload.name
        cluster_ip = "10.96.0.10" if name == "kube-dns" else f"10.96.{octet // 250 + 1}.{octet}"
        octet += gen.rng.randint(3, 19)
        selector = {k: v for k, v in workload.labels.items() if k != "tier"}
        service_type = "LoadBalancer" if workload.namespace == "ingress-nginx" else "ClusterIP"
        service: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, created, gen.uid(), workload.namespace, workload.labels),
            "spec": {
                "clusterIP": cluster_ip,
                "clusterIPs": [cluster_ip],
                "ports": [
                    {"name": n, "port": p, "protocol": proto, "targetPort": t}
                    for n, p, t, proto in workload.service_ports
                ],
                "selector": dict(sorted(selector.items())),
                "type": service_type,
            },
        }
        if service_type == "LoadBalancer":
            service["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.200"}]}}
        services.append(service)
    return services


def write_inventory(gen: Generator) -> str:
    # kubectl prints JSON with four-space indentation and a final newline.
    return json.dumps(inventory(gen), indent=4) + "\n"


def build(seed: int = 6, scale: int = 1) -> dict[str, str | bytes]:
    """The sample files' contents, by file name."""
    gen = Generator(seed, scale)
    records = gen.generate()
    return {
        f"{NAME}.csv": write_csv(records),
        f"{NAME}.hubble.jsonl": write_hubble(records, seed),
        f"{NAME}.inventory.json": write_inventory(gen),
        f"{NAME}.aws-vpc.log.gz": write_aws(records),
        f"{NAME}.gcp-vpc.jsonl": write_gcp(records, seed),
        f"{NAME}.azure-vnet.jsonl": write_azure(records),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "sample_flows")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--scale", type=int, default=1, help="multiply the connections")
    parser.add_argument("--layout", type=Path, default=None,
                        help="also write the cloud logs as their buckets store them (S3 keys, "
                             "Azure blob paths) under this directory")  # fmt: skip
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error("--scale must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in build(args.seed, args.scale).items():
        data = content.encode() if isinstance(content, str) else content
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data)} bytes")
    if args.layout is not None:
        records = Generator(args.seed, args.scale).generate()
        for path in write_layout(records, args.seed, args.layout):
            print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
