"""Random NetworkPolicy sets over a small three-namespace cluster (for differential tests)."""

from __future__ import annotations

import random
from typing import Any

NAMESPACES = {"a": {"env": "prod", "team": "x"}, "b": {"env": "dev"}, "c": {}}
PODS = [
    # namespace, name, labels, named ports (name, protocol, number)
    ("a", "web-1", {"app": "web", "tier": "front"}, [("http", "TCP", 8080)]),
    ("a", "db-1", {"app": "db"}, [("sql", "TCP", 5432)]),
    ("b", "web-2", {"app": "web", "tier": "back"}, [("http", "TCP", 9090)]),
    ("b", "dns-1", {"app": "dns"}, [("dns", "UDP", 53)]),
    ("c", "fe-1", {"app": "fe", "tier": "front"}, []),
    ("c", "job-1", {}, []),
]
PROTOCOLS = ("TCP", "UDP", "SCTP")
PROBE_PORTS = (53, 80, 443, 5432, 8080, 8081, 9090, 9095, 9096, 1234)
# Outside addresses: inside and outside the blocks and excepts below (none is a pod's address).
PROBE_IPS = ("10.0.0.200", "10.1.2.3", "10.2.3.4", "10.9.9.9", "203.0.113.5", "8.8.8.8")
IP_BLOCKS: list[dict[str, Any]] = [
    {"cidr": "10.0.0.0/8"},
    {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]},
    {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.0.0/16"]},
    {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]},
    {"cidr": "203.0.113.0/24"},
    {"cidr": "10.2.3.4/32"},
]


def _selector(rng: random.Random, keys: dict[str, list[str]]) -> dict[str, Any]:
    choice = rng.random()
    if choice < 0.25:
        return {}
    key = rng.choice(sorted(keys))
    if choice < 0.6:
        return {"matchLabels": {key: rng.choice(keys[key])}}
    operator = rng.choice(["In", "NotIn", "Exists", "DoesNotExist"])
    requirement: dict[str, Any] = {"key": key, "operator": operator}
    if operator in ("In", "NotIn"):
        count = rng.randint(1, min(2, len(keys[key])))
        requirement["values"] = sorted(rng.sample(keys[key], k=count))
    return {"matchExpressions": [requirement]}


POD_KEYS = {"app": ["web", "db", "dns", "fe"], "tier": ["front", "back"]}
NS_KEYS = {"env": ["prod", "dev"], "team": ["x"], "kubernetes.io/metadata.name": ["a", "b", "c"]}


def _peer(rng: random.Random, nca_safe: bool) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.15:
        return {"ipBlock": dict(rng.choice(IP_BLOCKS))}
    if kind < 0.4:
        return {"podSelector": _selector(rng, POD_KEYS)}
    if kind < 0.7:
        return {"namespaceSelector": _selector(rng, NS_KEYS)}
    pods = _selector(rng, POD_KEYS)
    if not nca_safe:
        return {"podSelector": pods, "namespaceSelector": _selector(rng, NS_KEYS)}
    # NCA misjudges Exists/DoesNotExist pod selectors next to a namespaceSelector (see the
    # module docstring): keep to the operators it gets right there.
    for requirement in pods.get("matchExpressions", []):
        if requirement["operator"] in ("Exists", "DoesNotExist"):
            requirement["operator"] = "In"
            requirement["values"] = POD_KEYS[requirement["key"]][:1]
    return {"podSelector": pods, "namespaceSelector": _selector(rng, NS_KEYS)}


def _port(rng: random.Random) -> dict[str, Any]:
    kind = rng.random()
    if kind < 0.3:
        return {"protocol": "TCP", "port": rng.choice([80, 443, 5432, 8080])}
    if kind < 0.5:
        return {"protocol": rng.choice(["TCP", "UDP"]), "port": rng.choice(["http", "dns", "sql"])}
    if kind < 0.65:
        return {"protocol": "TCP", "port": 9090, "endPort": 9095}
    if kind < 0.8:
        return {"protocol": rng.choice(PROTOCOLS)}
    return {"protocol": "UDP", "port": 53}


def _rules(rng: random.Random, peers_key: str, nca_safe: bool) -> list[dict[str, Any]]:
    rules = []
    for _ in range(rng.randint(0, 2)):
        rule: dict[str, Any] = {}
        shape = rng.random()
        if shape < 0.7:
            rule[peers_key] = [_peer(rng, nca_safe) for _ in range(rng.randint(1, 2))]
        elif shape < 0.8:
            rule[peers_key] = []  # an empty list: every peer
        if rng.random() < 0.7:
            rule["ports"] = [_port(rng) for _ in range(rng.randint(1, 2))]
        rules.append(rule)
    return rules


def random_policies(seed: int, *, nca_safe: bool = True) -> list[dict[str, Any]]:
    """1-4 random NetworkPolicy manifests over :data:`NAMESPACES`; ``nca_safe`` avoids the two
    cases network-config-analyzer gets wrong (see ``tests/check/test_nca_differential.py``)."""
    rng = random.Random(seed)
    manifests = []
    for index in range(rng.randint(1, 4)):
        spec: dict[str, Any] = {"podSelector": _selector(rng, POD_KEYS)}
        types = rng.choice([None, ["Ingress"], ["Egress"], ["Ingress", "Egress"]])
        if types is not None:
            spec["policyTypes"] = types
        if types is None or "Ingress" in types:
            spec["ingress"] = _rules(rng, "from", nca_safe)
        if types is None or "Egress" in types:
            egress = _rules(rng, "to", nca_safe)
            # NCA isolates egress for `egress: []` without policyTypes (see the module
            # docstring); leave the section out in that case, which is what Kubernetes means.
            if types is not None or egress or not nca_safe:
                spec["egress"] = egress
        manifests.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"p{index}", "namespace": rng.choice(sorted(NAMESPACES))},
                "spec": spec,
            }
        )
    return manifests
