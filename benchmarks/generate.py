"""Synthetic flow logs of a chosen size for a realistic cluster: CSV, Hubble JSON, AWS VPC text.

The cluster: a few namespaces, a few dozen workloads of two or three pods each, a call graph with a
few edges per workload (HTTP, gRPC on 50051, Postgres, Redis, Kafka), DNS to kube-dns, some outside
peers (cloud APIs), and a few percent of denied connection attempts. Connections are drawn from
the call graph with a fresh ephemeral port, and each produces request and reply records (Hubble:
SYN, SYN-ACK, ACK and an event without a direction; AWS: one record per direction, reused over
several aggregation windows as keep-alive connections are). Times increase through the file.

The same seed gives the same files. Usage::

    python benchmarks/generate.py --format hubble --records 1000000 -o /tmp/netpolgen-bench/h.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BASE_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z
NAMESPACES = {"shop": 20, "payments": 14, "data": 12, "ops": 12}  # ~200 policies
SERVICES = [("http", "TCP", 8080), ("grpc", "TCP", 50051), ("postgres", "TCP", 5432),
            ("redis", "TCP", 6379), ("kafka", "TCP", 9092), ("https", "TCP", 443)]  # fmt: skip
OUTSIDE = ["52.95.128.179", "52.94.76.10", "140.82.112.3", "151.101.1.69"]
NODES = [f"node-{i}" for i in range(6)]


@dataclass(frozen=True)
class Pod:
    namespace: str
    workload: str
    name: str
    ip: str
    labels: dict[str, str]
    node: str


@dataclass(frozen=True)
class Edge:
    client: str  # workload id ns/name, or "world:<ip>"
    server: str
    protocol: str
    port: int
    weight: float
    denied: bool = False


@dataclass
class Cluster:
    pods: dict[str, list[Pod]]  # workload id -> pods
    edges: list[Edge]


def make_cluster(seed: int = 7) -> Cluster:
    """A deterministic cluster model."""
    rng = random.Random(seed)
    pods: dict[str, list[Pod]] = {}
    ip = 10
    for namespace, count in NAMESPACES.items():
        for index in range(count):
            name = f"{namespace[:3]}-svc{index:02d}"
            template = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(10))
            replicas = []
            for _ in range(rng.choice([2, 2, 3])):
                suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                labels = {
                    "app.kubernetes.io/name": name,
                    "app.kubernetes.io/part-of": namespace,
                    "tier": rng.choice(["frontend", "backend", "data"]),
                    "pod-template-hash": template,
                    "version": "v1",
                }
                ip += 1
                replicas.append(
                    Pod(namespace, f"{namespace}/{name}", f"{name}-{template}-{suffix}",
                        f"10.244.{ip // 250}.{ip % 250 + 2}", labels, rng.choice(NODES))
                )  # fmt: skip
            pods[f"{namespace}/{name}"] = replicas
    kube_dns = [
        Pod("kube-system", "kube-system/coredns", f"coredns-6d4b75cb6d-{s}", f"10.244.9.{n}",
            {"k8s-app": "kube-dns", "pod-template-hash": "6d4b75cb6d"}, NODES[n])
        for n, s in enumerate(["x7k2p", "q9z4m"])
    ]  # fmt: skip
    pods["kube-system/coredns"] = kube_dns
    workloads = [w for w in pods if not w.startswith("kube-system")]
    edges: list[Edge] = []
    for client in workloads:
        for server in rng.sample(workloads, rng.randint(1, 4)):
            if server == client:
                continue
            _, protocol, port = rng.choice(SERVICES)
            edges.append(Edge(client, server, protocol, port, rng.uniform(0.5, 5)))
        edges.append(Edge(client, "kube-system/coredns", "UDP", 53, 2.0))
        if rng.random() < 0.3:
            edges.append(Edge(client, f"world:{rng.choice(OUTSIDE)}", "TCP", 443, 0.5))
        if rng.random() < 0.3:  # a scan or a misconfigured client: denied
            edges.append(Edge(client, rng.choice(workloads), "TCP", 22, 0.1, denied=True))
    return Cluster(pods, edges)


@dataclass(frozen=True)
class Connection:
    client: Pod | str  # a pod, or an outside IP
    server: Pod | str
    protocol: str
    client_port: int
    port: int
    time: float
    denied: bool


def connections(cluster: Cluster, seed: int, per_second: float = 2000.0) -> Iterator[Connection]:
    """An endless, deterministic stream of connections in time order."""
    rng = random.Random(seed)
    weights = [e.weight for e in cluster.edges]
    now = float(BASE_TIME)
    batch = 4096
    while True:
        for edge in rng.choices(cluster.edges, weights, k=batch):
            now += rng.expovariate(per_second)
            client: Pod | str = rng.choice(cluster.pods[edge.client])
            server: Pod | str = (
                edge.server[6:] if edge.server.startswith("world:")
                else rng.choice(cluster.pods[edge.server])
            )  # fmt: skip
            yield Connection(client, server, edge.protocol, rng.randint(32768, 60999), edge.port,
                             now, edge.denied)  # fmt: skip


def _ip(end: Pod | str) -> str:
    return end.ip if isinstance(end, Pod) else end


def _rfc3339(seconds: float) -> str:
    whole = int(seconds)
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{int((seconds - whole) * 1e9):09d}Z"


# --- CSV -----------------------------------------------------------------------------------

CSV_HEADER = ("time,src_namespace,src_pod,src_labels,src_ip,src_port,dst_namespace,dst_pod,"
              "dst_labels,dst_ip,dst_port,protocol,verdict,is_reply,count,bytes\n")  # fmt: skip


def _csv_side(end: Pod | str) -> str:
    if isinstance(end, Pod):
        labels = ",".join(f"{k}={v}" for k, v in sorted(end.labels.items()))
        return f'{end.namespace},{end.name},"{labels}",{end.ip}'
    return f",,,{end}"


def csv_lines(cluster: Cluster, records: int, seed: int) -> Iterator[str]:
    """Request and reply rows; a third of the requests have no is_reply (inferred)."""
    rng = random.Random(seed + 1)
    yield CSV_HEADER
    made = 0
    for c in connections(cluster, seed):
        client, server = _csv_side(c.client), _csv_side(c.server)
        verdict = "denied" if c.denied else "allowed"
        direction = "" if rng.random() < 0.33 else "false"
        t = f"{c.time:.6f}"
        yield (f"{t},{client},{c.client_port},{server},{c.port},{c.protocol},{verdict},"
               f"{direction},1,{rng.randint(60, 9000)}\n")  # fmt: skip
        made += 1
        if made >= records:
            return
        if not c.denied:
            yield (f"{c.time + 0.0004:.6f},{server},{c.port},{client},{c.client_port},"
                   f"{c.protocol},allowed,{direction and 'true'},1,"
                   f"{rng.randint(60, 90000)}\n")  # fmt: skip
            made += 1
            if made >= records:
                return


# --- Hubble ---------------------------------------------------------------------------------


def _hubble_endpoint(end: Pod | str, identity: int) -> str:
    if isinstance(end, Pod):
        labels = [f"k8s:{k}={v}" for k, v in sorted(end.labels.items())] + [
            f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={end.namespace}",
            "k8s:io.cilium.k8s.policy.cluster=default",
            f"k8s:io.cilium.k8s.policy.serviceaccount={end.workload.split('/')[1]}",
            f"k8s:io.kubernetes.pod.namespace={end.namespace}",
        ]
        body = {
            "ID": identity % 4000 + 100,
            "identity": identity,
            "cluster_name": "default",
            "namespace": end.namespace,
            "labels": labels,
            "pod_name": end.name,
            "workloads": [{"name": end.workload.split("/")[1], "kind": "Deployment"}],
        }
    else:
        body = {
            "identity": 16777217 + identity % 100,
            "labels": [f"cidr:{end}/32", "reserved:world"],
        }
    return json.dumps(body, separators=(",", ":"))


def hubble_lines(cluster: Cluster, records: int, seed: int) -> Iterator[str]:
    """``hubble observe -o json`` lines (jsonpb envelope), about 1.9 KB each.

    Per connection: the SYN (is_reply false), the SYN-ACK (true), an ACK (false) and a
    TO_OVERLAY trace without is_reply (direction inferred); denied ones: one DROPPED SYN.
    """
    rng = random.Random(seed + 2)
    identities: dict[str, str] = {}

    def endpoint(end: Pod | str) -> str:
        key = end.name if isinstance(end, Pod) else end
        if key not in identities:
            identities[key] = _hubble_endpoint(end, 20000 + len(identities) * 7)
        return identities[key]

    made = 0
    for c in connections(cluster, seed):
        src_ip, dst_ip = _ip(c.client), _ip(c.server)
        node = c.client.node if isinstance(c.client, Pod) else NODES[0]
        l4 = "TCP" if c.protocol == "TCP" else "UDP"
        events: list[tuple[bool, bool | None, str, str, str, str, str, int, int, str, str]] = []
        if c.denied:
            events.append((False, False, src_ip, dst_ip, endpoint(c.client), endpoint(c.server),
                           '"SYN":true', c.client_port, c.port, "DROPPED",
                           "TO_ENDPOINT"))  # fmt: skip
        else:
            fwd = (src_ip, dst_ip, endpoint(c.client), endpoint(c.server))
            rev = (dst_ip, src_ip, endpoint(c.server), endpoint(c.client))
            events += [
                (False, False, *fwd, '"SYN":true', c.client_port, c.port, "FORWARDED",
                 "TO_ENDPOINT"),
                (True, True, *rev, '"SYN":true,"ACK":true', c.port, c.client_port, "FORWARDED",
                 "TO_ENDPOINT"),
                (False, False, *fwd, '"ACK":true', c.client_port, c.port, "FORWARDED", "TO_STACK"),
                (True, None, *rev, '"ACK":true,"PSH":true', c.port, c.client_port, "FORWARDED",
                 "TO_OVERLAY"),
            ]  # fmt: skip
        for step, (
            reply,
            is_reply,
            s_ip,
            d_ip,
            s_ep,
            d_ep,
            flags,
            sport,
            dport,
            verdict,
            point,
        ) in enumerate(events):
            t = _rfc3339(c.time + step * 0.0002)
            if l4 == "TCP":
                l4_json = (f'{{"TCP":{{"source_port":{sport},"destination_port":{dport},'
                           f'"flags":{{{flags}}}}}}}')  # fmt: skip
            else:
                l4_json = f'{{"UDP":{{"source_port":{sport},"destination_port":{dport}}}}}'
            reply_json = (
                "" if is_reply is None else f'"is_reply":{"true" if is_reply else "false"},'
            )
            drop = (
                '"drop_reason":133,"drop_reason_desc":"POLICY_DENIED",'
                if verdict == "DROPPED"
                else ""
            )
            reason = "NEW" if step == 0 else "ESTABLISHED" if not reply else "REPLY"
            summary = f"TCP Flags: {flags.replace(chr(34), '').replace(':true', '')}"
            yield (
                f'{{"flow":{{"time":"{t}","uuid":"{uuid.UUID(int=rng.getrandbits(128))}",'
                f'"verdict":"{verdict}",{drop}"ethernet":{{"source":"3a:5e:4b:2c:9f:{step:02x}",'
                f'"destination":"ae:81:3c:77:10:{sport % 256:02x}"}},"IP":{{"source":"{s_ip}",'
                f'"destination":"{d_ip}","ipVersion":"IPv4"}},"l4":{l4_json},"source":{s_ep},'
                f'"destination":{d_ep},"Type":"L3_L4","node_name":"default/{node}",'
                f'"node_labels":["beta.kubernetes.io/arch=amd64","beta.kubernetes.io/os=linux",'
                f'"kubernetes.io/hostname={node}","node.kubernetes.io/instance-type=m5.xlarge",'
                f'"topology.kubernetes.io/region=eu-west-1","topology.kubernetes.io/zone=eu-west-1a"],'
                f'"event_type":{{"type":4,"sub_type":3}},"traffic_direction":'
                f'"{"INGRESS" if not reply else "EGRESS"}","trace_observation_point":"{point}",'
                f'"trace_reason":"{reason}",'
                f'{reply_json}"interface":{{"index":{17 + step},"name":"lxc{sport:x}"}},'
                f'"Summary":"{summary}"}},"node_name":"default/{node}","time":"{t}"}}\n'
            )
            made += 1
            if made >= records:
                return


# --- AWS VPC ----------------------------------------------------------------------------------

AWS_HEADER = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets "
              "bytes start end action log-status\n")  # fmt: skip
_PROTO_NUMBER = {"TCP": 6, "UDP": 17}


def aws_lines(cluster: Cluster, records: int, seed: int) -> Iterator[str]:
    """Default (v2) format with its S3 header: no direction, so replies are inferred.

    Each connection is logged per aggregation window in both directions, for one to six windows
    (keep-alive connections), so records outnumber connections as in real logs.
    """
    rng = random.Random(seed + 3)
    yield AWS_HEADER
    made = 0
    for c in connections(cluster, seed, per_second=400.0):
        src, dst = _ip(c.client), _ip(c.server)
        proto = _PROTO_NUMBER[c.protocol]
        eni = f"eni-{zlib.crc32(src.encode()):017x}"
        windows = 1 if c.denied else rng.randint(1, 6)
        for window in range(windows):
            start = int(c.time) + 60 * window
            action = "REJECT" if c.denied else "ACCEPT"
            packets = rng.randint(1, 40)
            yield (f"2 123456789012 {eni} {src} {dst} {c.client_port} {c.port} {proto} {packets} "
                   f"{packets * 90} {start} {start + 60} {action} OK\n")  # fmt: skip
            made += 1
            if made >= records:
                return
            if not c.denied:
                yield (f"2 123456789012 {eni} {dst} {src} {c.port} {c.client_port} {proto} "
                       f"{packets} {packets * 700} {start} {start + 60} ACCEPT OK\n")  # fmt: skip
                made += 1
                if made >= records:
                    return


def inventory(cluster: Cluster) -> dict[str, object]:
    """``kubectl get pods -A -o json`` of the cluster (for IP-only formats)."""
    items = []
    for replicas in cluster.pods.values():
        for pod in replicas:
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": pod.name, "namespace": pod.namespace,
                                 "labels": pod.labels},
                    "spec": {"nodeName": pod.node},
                    "status": {"phase": "Running", "podIP": pod.ip, "podIPs": [{"ip": pod.ip}],
                               "startTime": "2025-12-31T00:00:00Z"},
                }
            )  # fmt: skip
    return {"apiVersion": "v1", "kind": "List", "items": items}


def hubble_real_lines(cluster: Cluster, records: int, seed: int) -> Iterator[str]:
    """Lines shaped like a real Cilium 1.16 capture (benchmarks/hubble_real.py)."""
    from hubble_real import hubble_real_lines as lines

    return lines(cluster, records, seed)


GENERATORS = {
    "csv": csv_lines,
    "hubble": hubble_lines,
    "hubble-real": hubble_real_lines,
    "aws-vpc": aws_lines,
}


def write(format: str, records: int, path: Path, seed: int = 7) -> Path:
    """Write ``records`` records of ``format`` to ``path`` (buffered, about 8 MB at a time)."""
    cluster = make_cluster(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        buffer: list[str] = []
        for line in GENERATORS[format](cluster, records, seed):
            buffer.append(line)
            if len(buffer) >= 20_000:
                out.write("".join(buffer))
                buffer.clear()
        out.write("".join(buffer))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=sorted(GENERATORS), required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--inventory", type=Path, help="also write the pod inventory here")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    write(args.format, args.records, args.output, args.seed)
    if args.inventory:
        args.inventory.write_text(json.dumps(inventory(make_cluster(args.seed))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
