"""Hubble lines shaped like a real ``hubble observe -o jsonpb`` capture of Cilium 1.16.

The shapes follow /work/shared/FORMATS.md section 1, the real captures in
/work/shared/samples/hubble (hubble-otel's bookinfo and DNS/HTTP samples, Cilium's exporter
docs) and cilium ``api/v1/flow/flow.proto``, not netpolgen's reader:

* every line is a ``GetFlowsResponse`` envelope ``{"flow": {...}, "node_name", "time"}``, the flow
  encoded by protojson with proto names (``IP``, ``Type``, ``Summary``), zero values omitted
  (port 0, ``reply: false``, an ICMP echo reply's ``{}``) and uint64 values as strings
  (``latency_ns``, ``revision``);
* every field a 1.16 agent writes: ``uuid``, ``emitter`` (``{"name":"Hubble","version":...}``),
  ``ethernet``, ``IP`` with ``ipVersion``, ``l4``, endpoints with ``ID``, ``identity``,
  ``cluster_name``, ``namespace``, the label list Cilium writes (pod labels plus the injected
  ``io.cilium.k8s.namespace.labels.*``, ``io.cilium.k8s.policy.cluster``,
  ``io.cilium.k8s.policy.serviceaccount``, ``io.kubernetes.pod.namespace``), ``pod_name`` and
  ``workloads``; ``Type``, ``node_name`` as ``<cluster>/<node>``, ``node_labels``,
  ``event_type``, ``traffic_direction``, ``trace_observation_point``, ``trace_reason``,
  ``is_reply`` (absent on some trace points, as in the samples), ``interface``,
  ``destination_service`` (kube-proxy replacement: ``IP.destination`` is the backend pod),
  ``Summary``;
* one TCP connection is seen many times: trace events at several observation points on both
  nodes (TO_STACK or TO_OVERLAY on the sender's node, TO_ENDPOINT on the receiver's, and the
  same for the replies), a policy-verdict event (``event_type.type`` 5) at each end with
  ``policy_match_type`` and ``egress_allowed_by``/``ingress_allowed_by``;
* DNS through Cilium's DNS proxy: the policy verdict, the REDIRECTED trace to the proxy
  (TO_PROXY, ``proxy_port``) and L7 (``event_type.type`` 129) DNS request and response events
  with ``l7.dns`` (query, ips, ttl, rcode, qtypes, rrtypes, observation_source);
* HTTP through the L7 proxy on the web services: L7 request/response events with ``l7.http``
  (code, method, url, protocol, headers) and ``latency_ns``;
* traffic to outside addresses with ``destination_names`` and ``cidr:``/``reserved:world`` labels;
* policy drops (``event_type.type`` 1, ``drop_reason`` 133, ``drop_reason_desc`` POLICY_DENIED,
  ``file``) and datapath drops (IPv6 router solicitations to ``ff02::2``, INVALID_SOURCE_IP,
  with empty endpoints as in the exporter sample), ICMP echo, Cilium health probes;
* the Hubble exporter's aggregated records: a flow carrying ``aggregate`` with its
  ``ingress_flow_count``/``egress_flow_count``/``unknown_direction_flow_count`` (FORMATS.md
  §1.3 lists ``aggregate`` among the newer fields; the counts as the 1.16 proto names them),
  and a ``lost_events`` line now and then.

Lines are about 2 KB, as in the issue's measurements (200,000 lines: 379 MB). The same seed gives
the same file.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator

from generate import NODES, Cluster, Connection, Pod, _rfc3339, connections

CLUSTER = "prod-eu"
VERSION = "1.16.3+g3c8c5f9b"
_NODE_LABELS = {
    node: [
        "beta.kubernetes.io/arch=amd64",
        "beta.kubernetes.io/os=linux",
        "eks.amazonaws.com/capacityType=ON_DEMAND",
        f"kubernetes.io/hostname={node}",
        "node.kubernetes.io/instance-type=m6i.2xlarge",
        "topology.kubernetes.io/region=eu-west-1",
        f"topology.kubernetes.io/zone=eu-west-1{'abc'[i % 3]}",
    ]
    for i, node in enumerate(NODES)
}
_OUTSIDE_NAMES = {
    "52.95.128.179": "s3.eu-west-1.amazonaws.com",
    "52.94.76.10": "dynamodb.eu-west-1.amazonaws.com",
    "140.82.112.3": "github.com",
    "151.101.1.69": "pypi.org",
}
_COMPACT = (",", ":")


class _Endpoints:
    """Endpoint objects, numbered as Cilium numbers them (identity per label set, ID per pod)."""

    def __init__(self) -> None:
        self.identities: dict[tuple[str, ...], int] = {}
        self.ids: dict[str, int] = {}

    def pod(self, pod: Pod) -> dict[str, object]:
        app = pod.workload.split("/")[1]
        labels = sorted(
            [f"k8s:{k}={v}" for k, v in pod.labels.items() if k != "pod-template-hash"]
            + [
                f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={pod.namespace}",
                f"k8s:io.cilium.k8s.namespace.labels.team={pod.namespace}-team",
                f"k8s:io.cilium.k8s.policy.cluster={CLUSTER}",
                f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
                f"k8s:io.kubernetes.pod.namespace={pod.namespace}",
            ]
        )
        identity = self.identities.setdefault(tuple(labels), 10_000 + 37 * len(self.identities))
        endpoint_id = self.ids.setdefault(pod.name, 100 + 13 * len(self.ids) % 4000)
        return {
            "ID": endpoint_id,
            "identity": identity,
            "cluster_name": CLUSTER,
            "namespace": pod.namespace,
            "labels": labels,
            "pod_name": pod.name,
            "workloads": [{"name": app, "kind": "Deployment"}],
        }

    @staticmethod
    def world(ip: str) -> dict[str, object]:
        return {"identity": 16_777_220, "labels": [f"cidr:{ip}/32", "reserved:world"]}


def _tcp(sport: int, dport: int, flags: dict[str, bool]) -> dict[str, object]:
    return {"TCP": {"source_port": sport, "destination_port": dport, "flags": flags}}


def _summary(l4: dict[str, object]) -> str:
    if "TCP" in l4:
        flags = l4["TCP"]["flags"]  # type: ignore[index]
        return "TCP Flags: " + ", ".join(name for name in flags)
    if "UDP" in l4:
        return "UDP"
    return "ICMPv4 EchoRequest"


def hubble_real_lines(cluster: Cluster, records: int, seed: int) -> Iterator[str]:
    """``records`` jsonpb lines of the event mix in the module docstring."""
    rng = random.Random(seed + 5)
    eps = _Endpoints()
    made = 0

    def line(flow: dict[str, object], node: str, t: str) -> str:
        body: dict[str, object] = {
            "time": t,
            "uuid": str(uuid.UUID(int=rng.getrandbits(128))),
            "emitter": {"name": "Hubble", "version": VERSION},
            **flow,
            "node_name": f"{CLUSTER}/{node}",
            "node_labels": _NODE_LABELS[node],
        }
        if "Summary" not in body:
            body["Summary"] = _summary(body.get("l4", {}))  # type: ignore[arg-type]
        return (
            json.dumps(
                {"flow": body, "node_name": f"{CLUSTER}/{node}", "time": t}, separators=_COMPACT
            )
            + "\n"
        )

    for c in connections(cluster, seed):
        events = _connection_events(c, rng, eps, made)
        src_node = events[0][1]
        for step, (flow, node) in enumerate(events):
            yield line(flow, node, _rfc3339(c.time + step * 0.000137))
            made += 1
            if made >= records:
                return
        if rng.random() < 0.0005:
            yield (
                json.dumps(
                    {
                        "lost_events": {
                            "source": "HUBBLE_RING_BUFFER",
                            "num_events_lost": "12",
                            "cpu": 1,
                        },
                        "node_name": f"{CLUSTER}/{src_node}",
                        "time": _rfc3339(c.time + 0.01),
                    },
                    separators=_COMPACT,
                )
                + "\n"
            )


def _ends(c: Connection, eps: _Endpoints) -> tuple[dict[str, object], dict[str, object], str, str]:
    src = eps.pod(c.client) if isinstance(c.client, Pod) else eps.world(c.client)
    dst = eps.pod(c.server) if isinstance(c.server, Pod) else eps.world(c.server)
    src_node = c.client.node if isinstance(c.client, Pod) else NODES[0]
    dst_node = c.server.node if isinstance(c.server, Pod) else src_node
    return src, dst, src_node, dst_node


def _ip(end: Pod | str) -> str:
    return end.ip if isinstance(end, Pod) else end


def _mac(n: int) -> str:
    return "".join(f"{b:02x}:" for b in n.to_bytes(6, "big"))[:-1]


def _connection_events(
    c: Connection, rng: random.Random, eps: _Endpoints, serial: int
) -> list[tuple[dict[str, object], str]]:
    """The events of one connection, with their nodes (see the module docstring)."""
    src, dst, src_node, dst_node = _ends(c, eps)
    s_ip, d_ip = _ip(c.client), _ip(c.server)
    ethernet = {
        "source": _mac(0x0A5800000000 + c.client_port),
        "destination": _mac(0x0A5800FF0000 + c.port),
    }
    iface = {"index": 7 + c.client_port % 40, "name": f"lxc{c.client_port:x}{c.port:x}"[:15]}
    forward = {"source": s_ip, "destination": d_ip, "ipVersion": "IPv4"}
    backward = {"source": d_ip, "destination": s_ip, "ipVersion": "IPv4"}
    service = None
    if isinstance(c.server, Pod) and c.server.namespace != "kube-system":
        service = {"name": c.server.workload.split("/")[1], "namespace": c.server.namespace}
    elif isinstance(c.server, Pod):
        service = {"name": "kube-dns", "namespace": "kube-system"}
    events: list[tuple[dict[str, object], str]] = []

    def verdict_event(direction: str, node: str, verdict: str, step: int) -> None:
        allowed = "egress_allowed_by" if direction == "EGRESS" else "ingress_allowed_by"
        policy = [
            {
                "name": f"allow-{dst.get('namespace', 'world')}",
                "namespace": str(dst.get("namespace", src.get("namespace", ""))),
                "labels": ["k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy"],
                "revision": "42",
                "kind": "NetworkPolicy",
            }
        ]
        flow: dict[str, object] = {
            "verdict": verdict,
            "ethernet": ethernet,
            "IP": forward,
            "l4": l4_open,
            "source": src,
            "destination": dst,
            "Type": "L3_L4",
            "event_type": {"type": 5},
            "traffic_direction": direction,
            "policy_match_type": 4,
            "is_reply": False,
        }
        if verdict == "FORWARDED":
            flow[allowed] = policy
        if service is not None:
            flow["destination_service"] = service
        events.append((flow, node))

    def trace(
        point: str,
        sub: int,
        node: str,
        reply: bool | None,
        l4: dict[str, object],
        reason: str,
        verdict: str = "FORWARDED",
    ) -> None:
        flow: dict[str, object] = {
            "verdict": verdict,
            "ethernet": ethernet,
            "IP": backward if reply else forward,
            "l4": l4,
            "source": dst if reply else src,
            "destination": src if reply else dst,
            "Type": "L3_L4",
            "event_type": {"type": 4, "sub_type": sub},
            "traffic_direction": "EGRESS" if node == src_node else "INGRESS",
            "trace_observation_point": point,
            "trace_reason": reason,
        }
        if reply is not None:  # absent on some points, as in the samples (unknown)
            flow["is_reply"] = reply
        if point in ("TO_OVERLAY", "TO_ENDPOINT", "TO_STACK"):
            flow["interface"] = iface
        if service is not None and not reply:
            flow["destination_service"] = service
        events.append((flow, node))

    if c.protocol == "UDP":  # DNS through Cilium's DNS proxy
        name = rng.choice(
            [
                "postgres.data.svc.cluster.local.",
                "api.github.com.",
                "kafka.data.svc.cluster.local.",
                "s3.eu-west-1.amazonaws.com.",
            ]
        )
        l4_open: dict[str, object] = {"UDP": {"source_port": c.client_port, "destination_port": 53}}
        l4_back: dict[str, object] = {"UDP": {"source_port": 53, "destination_port": c.client_port}}
        verdict_event("EGRESS", src_node, "FORWARDED", 0)
        trace("TO_PROXY", 1, src_node, False, l4_open, "NEW", "REDIRECTED")
        events[-1][0]["proxy_port"] = 40_193
        for reply in (False, True):
            dns: dict[str, object] = {
                "query": name,
                "observation_source": "proxy",
                "qtypes": ["A"],
            }
            if reply:
                dns.update(ips=["10.96.12.7"], ttl=30, rrtypes=["A"], rcode=0)
            flow: dict[str, object] = {
                "verdict": "FORWARDED",
                "IP": backward if reply else forward,
                "l4": l4_back if reply else l4_open,
                "source": dst if reply else src,
                "destination": src if reply else dst,
                "Type": "L7",
                "l7": {
                    "type": "RESPONSE" if reply else "REQUEST",
                    **({"latency_ns": "381203"} if reply else {}),
                    "dns": dns,
                },
                "event_type": {"type": 129},
                "traffic_direction": "EGRESS",
                "is_reply": reply,
                "Summary": f"DNS {'Answer' if reply else 'Query'} {name} A",
            }
            if service is not None:
                flow["destination_service" if not reply else "source_service"] = service
            events.append((flow, src_node))
    else:
        l4_open = _tcp(c.client_port, c.port, {"SYN": True})
        if c.denied or (rng.random() < 0.01 and isinstance(c.server, Pod)):
            if not c.denied:  # a scan of the SSH port, which policy denies
                l4_open = _tcp(c.client_port, 22, {"SYN": True})
            flow = {
                "verdict": "DROPPED",
                "drop_reason": 133,
                "ethernet": ethernet,
                "IP": forward,
                "l4": l4_open,
                "source": src,
                "destination": dst,
                "Type": "L3_L4",
                "event_type": {"type": 1, "sub_type": 133},
                "traffic_direction": "INGRESS",
                "drop_reason_desc": "POLICY_DENIED",
                "file": {"name": "bpf_lxc.c", "line": 2078},
                "is_reply": False,
                "policy_match_type": 0,
            }
            events.append((flow, dst_node))
            if rng.random() < 0.5:  # the client retries once
                events.append((dict(flow), dst_node))
        else:
            syn_ack = _tcp(c.port, c.client_port, {"SYN": True, "ACK": True})
            ack = _tcp(c.client_port, c.port, {"ACK": True})
            psh = _tcp(c.client_port, c.port, {"PSH": True, "ACK": True})
            fin = _tcp(c.port, c.client_port, {"FIN": True, "ACK": True})
            verdict_event("EGRESS", src_node, "FORWARDED", 0)
            trace(
                "TO_OVERLAY" if src_node != dst_node else "TO_STACK",
                4,
                src_node,
                False,
                l4_open,
                "NEW",
            )
            if isinstance(c.server, Pod):
                verdict_event("INGRESS", dst_node, "FORWARDED", 1)
                trace("TO_ENDPOINT", 0, dst_node, False, l4_open, "NEW")
            trace("TO_OVERLAY", 4, dst_node, True, syn_ack, "REPLY")
            trace("TO_ENDPOINT", 0, src_node, None, syn_ack, "REPLY")
            trace("TO_STACK", 3, src_node, False, ack, "ESTABLISHED")
            trace("TO_ENDPOINT", 0, dst_node, False, psh, "ESTABLISHED")
            if c.port == 8080 and rng.random() < 0.5:  # HTTP through the L7 proxy
                path = rng.choice(["/api/v1/orders", "/healthz", "/api/v1/cart?id=42"])
                host = service["name"] if service else "svc"
                for reply in (False, True):
                    http: dict[str, object] = {
                        "method": "GET",
                        "url": f"http://{host}:8080{path}",
                        "protocol": "HTTP/1.1",
                        "headers": [
                            {"key": "Accept", "value": "application/json"},
                            {"key": "User-Agent", "value": "Go-http-client/1.1"},
                            {
                                "key": "X-Request-Id",
                                "value": str(uuid.UUID(int=rng.getrandbits(128))),
                            },
                        ],
                    }
                    if reply:
                        http["code"] = 200
                    events.append(
                        (
                            {
                                "verdict": "FORWARDED",
                                "IP": backward if reply else forward,
                                "l4": _tcp(c.port, c.client_port, {})
                                if reply
                                else _tcp(c.client_port, c.port, {}),
                                "source": dst if reply else src,
                                "destination": src if reply else dst,
                                "Type": "L7",
                                "l7": {
                                    "type": "RESPONSE" if reply else "REQUEST",
                                    **({"latency_ns": "2712093"} if reply else {}),
                                    "http": http,
                                },
                                "event_type": {"type": 129},
                                "traffic_direction": "INGRESS",
                                "is_reply": reply,
                                "Summary": f"HTTP/1.1 {'200 2ms ' if reply else ''}GET http://{host}:8080{path}",
                            },
                            dst_node,
                        )
                    )
            trace("TO_OVERLAY", 4, dst_node, True, fin, "REPLY")
            if isinstance(c.server, str):
                for flow, _ in events:
                    flow["destination_names"] = [_OUTSIDE_NAMES.get(c.server, "example.com")]
    roll = rng.random()
    if roll < 0.01:  # IPv6 router solicitation: a datapath drop, empty endpoints
        events.append(
            (
                {
                    "verdict": "DROPPED",
                    "drop_reason": 132,
                    "ethernet": {
                        "source": "02:42:ac:12:00:02",
                        "destination": "33:33:00:00:00:02",
                    },
                    "IP": {
                        "source": "fe80::64d8:8aff:fe72:fc14",
                        "destination": "ff02::2",
                        "ipVersion": "IPv6",
                    },
                    "l4": {"ICMPv6": {"type": 133}},
                    "source": {},
                    "destination": {},
                    "Type": "L3_L4",
                    "event_type": {"type": 1, "sub_type": 132},
                    "drop_reason_desc": "INVALID_SOURCE_IP",
                    "Summary": "ICMPv6 RouterSolicitation",
                },
                src_node,
            )
        )
    elif roll < 0.02 and isinstance(c.client, Pod) and isinstance(c.server, Pod):  # ping
        ping = {"ICMPv4": {"type": 8}}
        events.append(
            (
                {
                    "verdict": "FORWARDED",
                    "IP": forward,
                    "l4": ping,
                    "source": src,
                    "destination": dst,
                    "Type": "L3_L4",
                    "event_type": {"type": 4},
                    "trace_observation_point": "TO_ENDPOINT",
                    "is_reply": False,
                    "Summary": "ICMPv4 EchoRequest",
                },
                dst_node,
            )
        )
        events.append(
            (
                {
                    "verdict": "FORWARDED",
                    "IP": backward,
                    "l4": {"ICMPv4": {}},
                    "source": dst,
                    "destination": src,
                    "Type": "L3_L4",
                    "event_type": {"type": 4},
                    "trace_observation_point": "TO_ENDPOINT",
                    "is_reply": True,
                    "Summary": "ICMPv4 EchoReply",
                },
                src_node,
            )
        )
    elif roll < 0.03:  # Cilium's health probe between nodes
        health = {"identity": 4, "labels": ["reserved:health"]}
        events.append(
            (
                {
                    "verdict": "FORWARDED",
                    "IP": {
                        "source": "10.244.200.1",
                        "destination": "10.244.201.1",
                        "ipVersion": "IPv4",
                    },
                    "l4": _tcp(41000 + serial % 1000, 4240, {"SYN": True}),
                    "source": health,
                    "destination": health,
                    "Type": "L3_L4",
                    "event_type": {"type": 4, "sub_type": 4},
                    "trace_observation_point": "TO_OVERLAY",
                    "trace_reason": "NEW",
                    "is_reply": False,
                },
                src_node,
            )
        )
    elif roll < 0.05 and not c.denied:  # the exporter's aggregated record of the connection
        events.append(
            (
                {
                    "verdict": "FORWARDED",
                    "IP": forward,
                    "l4": l4_open,
                    "source": src,
                    "destination": dst,
                    "Type": "L3_L4",
                    "traffic_direction": "EGRESS",
                    "is_reply": False,
                    "aggregate": {
                        "ingress_flow_count": rng.randint(1, 40),
                        "egress_flow_count": rng.randint(1, 40),
                        "unknown_direction_flow_count": rng.randint(0, 3),
                    },
                },
                src_node,
            )
        )
    return events
