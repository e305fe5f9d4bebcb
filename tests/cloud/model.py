"""A random cluster and the connections it makes: the ground truth that every capture renders.

The capture simulator (``tests/cloud/``) renders one :class:`Cluster` as each provider logs it
(``aws.py`` for VPC Flow Logs; other renderers live in their own modules) and as the labelled
CSV (:func:`labelled_csv`), the reference: what netpolgen must find from any rendering, apart
from each provider's documented losses.

This module is written from Kubernetes' and Linux's documented behaviour, not from netpolgen:

* Pods declare ``containerPorts`` (``spec.containers[].ports``), which are informational: a
  server may listen on a port it does not declare (``Cluster.undeclared`` servers below).
* Services select pods by labels and map ``port`` to ``targetPort`` (a number here).
* Clients connect from an ephemeral port: Linux's default ``net.ipv4.ip_local_port_range`` is
  32768-60999; a new connection takes a fresh one. Some servers listen inside that range
  (gRPC's conventional 50051), so "the lower port is the server" must never be needed.
* CoreDNS (``kube-system``, label ``k8s-app=kube-dns``) declares 53/UDP and 53/TCP behind the
  ``kube-dns`` Service, and every pod resolves names through it over UDP.
* Pods of one node share that node's ENI in EKS (VPC CNI secondary IPs), so traffic between two
  pods of the same node never leaves it: ``Connection.node_local``.

The API (kept stable for the other renderers): :class:`Cluster` (``pods``, ``services``,
``nodes``, ``connections``, ``namespaces``), :func:`random_cluster` (a seed -> a cluster),
:func:`clusters` (a hypothesis strategy), :func:`inventory` (the ``kubectl get
pods,services,namespaces,nodes -A -o json`` List), :func:`labelled_csv`.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999  # Linux ip_local_port_range default
# Unix seconds of the capture's start (2026-11-02T10:00:00Z), a whole hour.
EPOCH = 1_793_613_600
PROTOCOL_NUMBERS = {"TCP": 6, "UDP": 17}


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: str  # TCP | UDP
    name: str | None = None


@dataclass(frozen=True)
class Node:
    name: str
    ip: str  # InternalIP: the primary address of the node's primary ENI
    instance_id: str  # i-...
    eni: str  # eni-... (the primary ENI; pods' secondary IPs are on it too)
    zone: str = "us-east-1a"


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    workload: str  # the Deployment (or DaemonSet for CoreDNS) that owns it
    labels: tuple[tuple[str, str], ...]  # stable labels plus pod-template-hash
    ip: str
    node: str
    ports: tuple[ContainerPort, ...]  # declared containerPorts
    # Ports it listens on without declaring them (containerPort is informational).
    undeclared: tuple[ContainerPort, ...] = ()
    template_hash: str = "5d9c7b8f6"

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def stable_labels(self) -> dict[str, str]:
        return {k: v for k, v in self.labels if k != "pod-template-hash"}

    def listens(self) -> tuple[ContainerPort, ...]:
        return self.ports + self.undeclared


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int
    protocol: str
    name: str | None = None


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    selector: tuple[tuple[str, str], ...]
    cluster_ip: str
    ports: tuple[ServicePort, ...]


@dataclass(frozen=True)
class Connection:
    """One connection (TCP) or exchange (UDP) from ``client`` to ``server`` (pod names as
    ``namespace/name``), opened at ``start`` (Unix seconds, float) from ``client_port``.

    ``duration`` is how long packets flow (seconds); ``denied`` means the server side refused it
    (the request is seen, no response is sent). ``request_packets``/``response_packets`` are the
    packets each way (>= 1 request packet; 0 responses when denied).
    """

    client: str
    server: str
    protocol: str
    client_port: int
    server_port: int
    start: float
    duration: float
    request_packets: int
    response_packets: int
    request_bytes: int
    response_bytes: int
    denied: bool = False
    # True when both pods are on one node: VPC-level logs never see it (FORMATS.md 2.4).
    node_local: bool = False


@dataclass(frozen=True)
class Cluster:
    nodes: tuple[Node, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    connections: tuple[Connection, ...]
    namespaces: tuple[str, ...]
    seed: int = 0
    _by_name: dict[str, Pod] = field(default_factory=dict, compare=False, repr=False)

    def pod(self, key: str) -> Pod:
        """The pod named ``namespace/name``."""
        if not self._by_name:
            self._by_name.update({f"{p.namespace}/{p.name}": p for p in self.pods})
        return self._by_name[key]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)


_NAMESPACES = ("shop", "payments", "data")
_APP_PORTS = (  # (port, protocol): common servers, two inside the ephemeral range
    (8080, "TCP"), (80, "TCP"), (5432, "TCP"), (6379, "TCP"), (50051, "TCP"), (9090, "TCP"),
    (8125, "UDP"), (41234, "UDP"), (443, "TCP"), (3000, "TCP"),
)  # fmt: skip
_HASH_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet


def _suffix(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_HASH_CHARS) for _ in range(length))


def random_cluster(
    seed: int,
    *,
    workloads: int | None = None,
    nodes: int | None = None,
    connections: int | None = None,
    undeclared: float = 0.15,
    denied: float = 0.1,
    hours: float = 1.0,
) -> Cluster:
    """A cluster of ``workloads`` Deployments (1-3 pods each) plus CoreDNS over ``nodes`` nodes,
    and ``connections`` client->server connections (plus each client's DNS lookups) spread over
    ``hours`` from :data:`EPOCH`. ``undeclared``: the share of servers that do not declare their
    port; ``denied``: the share of connections refused (only between workload pairs that are
    denied every time, so that a pair is either allowed or denied)."""
    rng = random.Random(seed)
    workloads = workloads if workloads is not None else rng.randint(2, 6)
    node_count = nodes if nodes is not None else rng.randint(2, 4)
    connection_count = connections if connections is not None else rng.randint(5, 30)
    node_list = tuple(
        Node(f"ip-10-0-{i}-10.ec2.internal", f"10.0.{i}.10", f"i-0{i:016x}", f"eni-0{i:016x}")
        for i in range(node_count)
    )
    ip_next = {n.name: 20 for n in node_list}

    def pod_ip(node: Node) -> str:
        ip_next[node.name] += 1
        return node.ip.rsplit(".", 1)[0] + f".{ip_next[node.name]}"

    pods: list[Pod] = []
    services: list[Service] = []
    dns_ports = (ContainerPort(53, "UDP", "dns"), ContainerPort(53, "TCP", "dns-tcp"))
    for i in range(2):
        node = node_list[i % node_count]
        pods.append(
            Pod("kube-system", f"coredns-7db6d8ff4d-{_suffix(rng, 5)}", "coredns",
                (("k8s-app", "kube-dns"), ("pod-template-hash", "7db6d8ff4d")),
                pod_ip(node), node.name, dns_ports, template_hash="7db6d8ff4d")
        )  # fmt: skip
    services.append(
        Service("kube-system", "kube-dns", (("k8s-app", "kube-dns"),), "172.20.0.10",
                (ServicePort(53, 53, "UDP", "dns"), ServicePort(53, 53, "TCP", "dns-tcp")))
    )  # fmt: skip
    servers: list[tuple[str, str, ContainerPort]] = []  # (namespace, workload, port)
    for w in range(workloads):
        namespace = rng.choice(_NAMESPACES)
        name = f"app{w}"
        port, protocol = rng.choice(_APP_PORTS)
        listen = ContainerPort(port, protocol, "main" if rng.random() < 0.5 else None)
        hidden = rng.random() < undeclared
        template_hash = _suffix(rng, 9)
        for _ in range(rng.randint(1, 3)):
            node = rng.choice(node_list)
            pods.append(
                Pod(namespace, f"{name}-{template_hash}-{_suffix(rng, 5)}", name,
                    (("app", name), ("pod-template-hash", template_hash)), pod_ip(node),
                    node.name, () if hidden else (listen,), (listen,) if hidden else (),
                    template_hash)
            )  # fmt: skip
        servers.append((namespace, name, listen))
        if rng.random() < 0.5:
            services.append(
                Service(namespace, name, (("app", name),), f"172.20.{w + 1}.{rng.randint(1, 250)}",
                        (ServicePort(80 if protocol == "TCP" else port, port, protocol),))
            )  # fmt: skip
    namespaces = tuple(sorted({p.namespace for p in pods}))
    app_pods = [p for p in pods if p.namespace != "kube-system"]
    dns_pods = [p for p in pods if p.namespace == "kube-system"]
    # Workload pairs that the server refuses, every time.
    refused = {
        (a, b[1]) for a in {p.workload for p in app_pods} for b in servers if rng.random() < denied
    }
    conns: list[Connection] = []
    span = hours * 3600.0
    used_ports: dict[str, set[int]] = {}

    def ephemeral(client: Pod) -> int:
        taken = used_ports.setdefault(client.ip, set())
        while True:
            port = rng.randint(EPHEMERAL_LOW, EPHEMERAL_HIGH)
            if port not in taken:
                taken.add(port)
                return port

    def connect(client: Pod, server: Pod, port: ContainerPort, is_denied: bool) -> None:
        start = EPOCH + rng.uniform(0, span)
        udp = port.protocol == "UDP"
        duration = rng.uniform(0.001, 0.05) if udp else rng.uniform(0.01, 300.0)
        request_packets = rng.randint(1, 3) if udp else rng.randint(3, 400)
        response_packets = 0 if is_denied else (request_packets if udp else rng.randint(2, 400))
        conns.append(
            Connection(
                f"{client.namespace}/{client.name}", f"{server.namespace}/{server.name}",
                port.protocol, ephemeral(client), port.port, start, duration,
                request_packets, response_packets, request_packets * rng.randint(60, 1400),
                response_packets * rng.randint(60, 1400), is_denied, client.node == server.node,
            )
        )  # fmt: skip

    for _ in range(connection_count):
        client = rng.choice(app_pods)
        namespace, workload, listen = rng.choice(servers)
        candidates = [p for p in app_pods if p.workload == workload and p.namespace == namespace]
        server = rng.choice(candidates)
        if server.workload == client.workload:
            continue  # no self-traffic: a workload talking to itself adds nothing here
        is_denied = (client.workload, workload) in refused
        if not is_denied:  # a client resolves the name first
            connect(client, rng.choice(dns_pods), dns_ports[0], False)
        connect(client, server, listen, is_denied)
    conns.sort(key=lambda c: c.start)
    return Cluster(tuple(node_list), tuple(pods), tuple(services), tuple(conns), namespaces, seed)


def clusters(**options: Any) -> st.SearchStrategy[Cluster]:
    """Hypothesis strategy: :func:`random_cluster` of a drawn seed (``options`` passed on)."""
    return st.integers(0, 2**31 - 1).map(lambda seed: random_cluster(seed, **options))


def _rfc3339(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def inventory(cluster: Cluster) -> dict[str, Any]:
    """``kubectl get pods,services,namespaces,nodes -A -o json`` for the cluster, taken just
    after the capture (pods started an hour before it)."""
    started = _rfc3339(EPOCH - 3600)
    taken = _rfc3339(EPOCH + 6 * 3600)
    items: list[dict[str, Any]] = []
    for ns in cluster.namespaces:
        items.append(
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns},
                          "creationTimestamp": started}}
        )  # fmt: skip
    for node in cluster.nodes:
        items.append(
            {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": node.name, "creationTimestamp": started,
                          "labels": {"topology.kubernetes.io/zone": node.zone}},
             "spec": {"providerID": f"aws:///{node.zone}/{node.instance_id}"},
             "status": {"addresses": [{"type": "InternalIP", "address": node.ip},
                                      {"type": "Hostname", "address": node.name}],
                        "conditions": [{"type": "Ready", "status": "True",
                                        "lastHeartbeatTime": taken}]}}
        )  # fmt: skip
    for pod in cluster.pods:
        ports = [
            {
                "containerPort": p.port,
                "protocol": p.protocol,
                **({"name": p.name} if p.name else {}),
            }
            for p in pod.ports
        ]
        owner_kind = "ReplicaSet"
        owner = f"{pod.workload}-{pod.template_hash}"
        items.append(
            {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": pod.name, "namespace": pod.namespace,
                          "labels": pod.label_dict, "creationTimestamp": started,
                          "uid": f"uid-{pod.namespace}-{pod.name}",
                          "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind,
                                               "name": owner, "controller": True,
                                               "uid": f"uid-{owner}"}]},
             "spec": {"nodeName": pod.node,
                      "containers": [{"name": pod.workload, "image": "example/app:1",
                                      **({"ports": ports} if ports else {})}]},
             "status": {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                        "hostIP": cluster.node(pod.node).ip, "startTime": started}}
        )  # fmt: skip
    for svc in cluster.services:
        items.append(
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": svc.name, "namespace": svc.namespace,
                          "creationTimestamp": started},
             "spec": {"type": "ClusterIP", "clusterIP": svc.cluster_ip,
                      "clusterIPs": [svc.cluster_ip], "selector": dict(svc.selector),
                      "ports": [{"port": p.port, "targetPort": p.target_port,
                                 "protocol": p.protocol, **({"name": p.name} if p.name else {})}
                                for p in svc.ports]}}
        )  # fmt: skip
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}


CSV_COLUMNS = (
    "time", "src_namespace", "src_pod", "src_labels", "src_ip", "src_port",
    "dst_namespace", "dst_pod", "dst_labels", "dst_ip", "dst_port", "protocol",
    "verdict", "is_reply", "count",
)  # fmt: skip


def labelled_csv(cluster: Cluster, *, include_node_local: bool = True) -> str:
    """The reference rendering: one row per connection's request, with both ends' namespace,
    pod, labels and IP, ``is_reply`` false and the verdict. ``include_node_local=False`` leaves
    out what VPC-level logs cannot see (pod to pod on one node)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in cluster.connections:
        if c.node_local and not include_node_local:
            continue
        a, b = cluster.pod(c.client), cluster.pod(c.server)
        writer.writerow(
            [int(c.start), a.namespace, a.name, _labels(a), a.ip, c.client_port,
             b.namespace, b.name, _labels(b), b.ip, c.server_port, c.protocol,
             "denied" if c.denied else "allowed", "false", 1]
        )  # fmt: skip
    return out.getvalue()


def _labels(pod: Pod) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(pod.labels))
