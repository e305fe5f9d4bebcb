"""A Hubble capture with DNS answers, built from the field layout of Hubble's flow API
(``l7.dns{query, ips, ttl, cnames, rcode}``, ``destination_names``; FORMATS.md section 1) and the
shape of the shared sample's L3/L4 events, not from our reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FRONTEND = {
    "ID": 881, "identity": 3418, "namespace": "shop", "pod_name": "frontend-6b746f74dc-9rcxx",
    "labels": ["k8s:app=frontend", "k8s:io.kubernetes.pod.namespace=shop"],
}  # fmt: skip
KUBE_DNS = {
    "ID": 415, "identity": 796, "namespace": "kube-system", "pod_name": "kube-dns-b4f5c58c7-vnx5s",
    "labels": ["k8s:k8s-app=kube-dns", "k8s:io.kubernetes.pod.namespace=kube-system"],
}  # fmt: skip
WORLD = {"identity": 2, "labels": ["reserved:world"]}


def dns_response(
    time: str, query: str, ips: list[str], ttl: int = 30, cnames: list[str] | None = None
) -> dict[str, Any]:
    dns: dict[str, Any] = {"query": query, "ips": ips, "ttl": ttl, "rcode": 0, "qtypes": ["A"],
                           "rrtypes": ["A"], "observation_source": "proxy"}  # fmt: skip
    if cnames:
        dns["cnames"] = cnames
    flow = {
        "time": time, "verdict": "FORWARDED",
        "IP": {"source": "10.0.0.53", "destination": "10.0.1.10", "ipVersion": "IPv4"},
        "l4": {"UDP": {"source_port": 53, "destination_port": 41234}},
        "source": KUBE_DNS, "destination": FRONTEND, "Type": "L7",
        "l7": {"type": "RESPONSE", "dns": dns}, "event_type": {"type": 129},
        "traffic_direction": "EGRESS", "is_reply": True,
    }  # fmt: skip
    return {"flow": flow, "time": time}


def tcp_to(time: str, ip: str, port: int, names: list[str] | None = None) -> dict[str, Any]:
    flow: dict[str, Any] = {
        "time": time, "verdict": "FORWARDED",
        "IP": {"source": "10.0.1.10", "destination": ip, "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 50000, "destination_port": port, "flags": {"SYN": True}}},
        "source": FRONTEND, "destination": WORLD, "Type": "L3_L4",
        "event_type": {"type": 4, "sub_type": 3}, "traffic_direction": "EGRESS",
        "trace_observation_point": "TO_STACK", "is_reply": False,
    }  # fmt: skip
    if names:
        flow["destination_names"] = names
    return {"flow": flow, "time": time}


EVENTS = [
    dns_response("2026-11-20T10:00:00Z", "api.example.com.", ["203.0.113.10", "203.0.113.11"]),
    # CoreDNS autopath: the search expansion answered with a CNAME to the real name.
    dns_response(
        "2026-11-20T10:00:01Z",
        "api.example.com.shop.svc.cluster.local.",
        ["203.0.113.12"],
        cnames=["api.example.com."],
    ),  # fmt: skip
    # A cluster name with an answer: never an outside peer.
    dns_response("2026-11-20T10:00:02Z", "cart.shop.svc.cluster.local.", ["10.96.5.5"]),
    dns_response("2026-11-20T10:00:03Z", "a.cdn.example.net.", ["198.51.100.1"]),
    dns_response("2026-11-20T10:00:03Z", "b.cdn.example.net.", ["198.51.100.2"]),
    dns_response("2026-11-20T10:00:03Z", "c.cdn.example.net.", ["198.51.100.3"]),
    tcp_to("2026-11-20T10:00:05Z", "203.0.113.10", 443),
    tcp_to("2026-11-20T10:00:06Z", "203.0.113.12", 443),
    tcp_to("2026-11-20T10:00:07Z", "198.51.100.1", 443),
    tcp_to("2026-11-20T10:00:07Z", "198.51.100.2", 443),
    tcp_to("2026-11-20T10:00:07Z", "198.51.100.3", 443),
    tcp_to("2026-11-20T10:00:08Z", "192.0.2.77", 443, names=["downloads.example.org."]),
    tcp_to("2026-11-20T10:00:09Z", "192.0.2.200", 8443),  # no name: stays a CIDR
]


def write_capture(path: Path) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    return path
