"""An evaluator of the CiliumNetworkPolicy subset that :mod:`.cilium` emits (L3/L4 allow rules).

It reads the ``cilium.io/v2`` manifests themselves, not our model, so that comparing its verdicts
with :class:`netpolgen.policy.semantics.Evaluator` on the NetworkPolicies they came from checks
the translation. The semantics follow Cilium's policy reference (docs.cilium.io, "Policy
Enforcement Modes", "Layer 3 Examples", "Layer 4 Examples") and ``getEndpointSelector`` in
Cilium's ``pkg/k8s/apis/cilium.io/utils``:

- an endpoint is under enforcement for a direction when a policy of its namespace selects it
  (``endpointSelector``) and has that direction's section, even ``[{}]`` (default mode); then a
  connection passes when any rule of any selecting policy matches it;
- a rule matches when one of its L3 members matches the peer and, with ``toPorts``, one port
  matches; a rule with ``toPorts`` and no L3 member matches every peer; an empty rule matches none;
- ``fromEndpoints``/``toEndpoints`` selectors without the ``io.kubernetes.pod.namespace`` key are
  limited to the policy's namespace; label keys may carry a source (``k8s:``, ``any:``);
  a pod's namespace labels are ``io.cilium.k8s.namespace.labels.<key>``;
- CIDR rules match addresses outside the cluster only: never pods, nor the addresses with a
  cluster identity (nodes: ``host``/``remote-node``, the API server: ``kube-apiserver``);
- entities: ``all`` every peer; ``world`` outside addresses; ``cluster`` pods and cluster
  identities; ``host``, ``remote-node``, ``kube-apiserver`` the addresses given for them;
- ``toFQDNs``: the addresses the DNS map resolved for a ``matchName``/``matchPattern``;
- ports: ``protocol`` missing or ``ANY`` matches every protocol; ``port: "0"`` every port; a
  number with ``endPort`` the inclusive range; a name the destination pod's container port.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from netpolgen.cluster.view import NamedPorts
from netpolgen.policy.semantics import EndpointKey
from netpolgen.selectors import NAMESPACE_NAME_LABEL

_POD_NAMESPACE = "io.kubernetes.pod.namespace"
_NAMESPACE_LABELS = "io.cilium.k8s.namespace.labels."
_SOURCES = ("k8s", "any")

NamesOf = Callable[[str], Iterable[str]]


def _split(key: str) -> tuple[str, str]:
    source, sep, rest = key.partition(":")
    return (source, rest) if sep else ("any", key)


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        source, name = _split(key)
        if source not in _SOURCES or labels.get(name) != str(value):
            return False
    for requirement in selector.get("matchExpressions") or []:
        source, name = _split(requirement["key"])
        if source not in _SOURCES:
            return False
        operator, values = (
            requirement["operator"],
            [str(v) for v in requirement.get("values") or []],
        )
        present = name in labels
        if operator == "In" and not (present and labels[name] in values):
            return False
        if operator == "NotIn" and present and labels[name] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def _has_namespace_key(selector: Mapping[str, Any]) -> bool:
    keys = [
        *(selector.get("matchLabels") or {}),
        *(r["key"] for r in selector.get("matchExpressions") or []),
    ]
    return any(_split(k)[1] == _POD_NAMESPACE for k in keys)


def _in_cidr(rule: Mapping[str, Any], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(rule["cidr"], strict=False)
    if address.version != network.version or address not in network:
        return False
    for entry in rule.get("except") or []:
        inner = ipaddress.ip_network(entry, strict=False)
        if address.version == inner.version and address in inner:
            return False
    return True


def fqdn_matches(selector: Mapping[str, Any], name: str) -> bool:
    """Whether ``name`` matches a ``toFQDNs`` selector (``matchName`` or ``matchPattern``)."""
    name = name.rstrip(".").lower()
    if "matchName" in selector:
        return bool(name == str(selector["matchName"]).rstrip(".").lower())
    pattern = str(selector["matchPattern"]).rstrip(".").lower()
    if pattern.startswith("*") and not pattern.startswith("*."):
        # A leading "*" without a dot: the name to its right and all its subdomains.
        tail = pattern[1:]
        return (
            name == tail.lstrip(".")
            or name.endswith("." + tail.lstrip("."))
            or fnmatch.fnmatchcase(name, pattern)
        )
    # Elsewhere "*" matches DNS characters within one label.
    if name.count(".") != pattern.count("."):
        return False
    return all(
        fnmatch.fnmatchcase(n, p) for n, p in zip(name.split("."), pattern.split("."), strict=True)
    )


class CiliumEvaluator:
    """Verdicts of CiliumNetworkPolicy manifests for one connection at a time.

    Args:
        manifests: ``cilium.io/v2`` CiliumNetworkPolicy objects.
        namespace_labels: labels per namespace (``kubernetes.io/metadata.name`` implied).
        entities: address -> its Cilium entities (``host``, ``remote-node``, ``kube-apiserver``).
        names_of: address -> the DNS names it was resolved from (for ``toFQDNs``).

    Examples:
        >>> CiliumEvaluator([]).allows(("a", (), None), ("b", (), None), "TCP", 80)
        (True, True)
    """

    def __init__(
        self,
        manifests: Iterable[Mapping[str, Any]],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
        entities: Mapping[str, Iterable[str]] | None = None,
        names_of: NamesOf | None = None,
    ) -> None:
        self.manifests = list(manifests)
        self._namespace_labels = {k: dict(v) for k, v in (namespace_labels or {}).items()}
        self._entities = {k: set(v) for k, v in (entities or {}).items()}
        self._names_of: NamesOf = names_of or (lambda ip: ())

    def _labels(self, endpoint: EndpointKey) -> dict[str, str]:
        namespace, labels, _ = endpoint
        assert namespace is not None
        out = dict(labels)
        out[_POD_NAMESPACE] = namespace
        ns_labels = dict(self._namespace_labels.get(namespace, {}))
        ns_labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
        out.update({_NAMESPACE_LABELS + k: v for k, v in ns_labels.items()})
        return out

    def _rules(
        self, endpoint: EndpointKey, section: str
    ) -> list[tuple[str, Mapping[str, Any]]] | None:
        """``(policy namespace, rule)`` of every policy selecting ``endpoint`` with ``section``;
        None when none does (not under enforcement)."""
        namespace = endpoint[0]
        if namespace is None:
            return None
        labels = self._labels(endpoint)
        found: list[tuple[str, Mapping[str, Any]]] | None = None
        for manifest in self.manifests:
            spec = manifest["spec"]
            if manifest["metadata"].get("namespace", "default") != namespace or section not in spec:
                continue
            if not _selector_matches(spec["endpointSelector"], labels):
                continue
            found = found if found is not None else []
            found.extend((namespace, rule) for rule in spec[section])
        return found

    def _peer_matches(
        self, rule: Mapping[str, Any], prefix: str, namespace: str, peer: EndpointKey
    ) -> bool:
        peer_ns, _, ip = peer
        members = [
            k
            for k in ("Endpoints", "CIDRSet", "CIDR", "Entities", "FQDNs")
            if f"{prefix}{k}" in rule
        ]
        if not members:
            return "toPorts" in rule  # L4-only: every peer; an empty rule: none
        for selector in rule.get(f"{prefix}Endpoints", []):
            if peer_ns is None:
                continue
            labels = self._labels(peer)
            if not _has_namespace_key(selector) and peer_ns != namespace:
                continue
            if _selector_matches(selector, labels):
                return True
        cluster_identity = ip is not None and ip in self._entities
        outside = peer_ns is None and ip is not None and not cluster_identity
        if outside:
            assert ip is not None
            cidrs = [
                *rule.get(f"{prefix}CIDRSet", []),
                *({"cidr": c} for c in rule.get(f"{prefix}CIDR", [])),
            ]
            if any(_in_cidr(c, ip) for c in cidrs):
                return True
            names = list(self._names_of(ip))
            if any(fqdn_matches(s, n) for s in rule.get(f"{prefix}FQDNs", []) for n in names):
                return True
        for entity in rule.get(f"{prefix}Entities", []):
            if entity == "all":
                return True
            if entity == "world" and outside:
                return True
            if entity == "cluster" and (peer_ns is not None or cluster_identity):
                return True
            if ip is not None and entity in self._entities.get(ip, ()):
                return True
        return False

    @staticmethod
    def _port_matches(
        rule: Mapping[str, Any], protocol: str, port: int | None, named: NamedPorts
    ) -> bool:
        if "toPorts" not in rule:
            return True
        for port_rule in rule["toPorts"]:
            for spec in port_rule.get("ports", []):
                wanted = spec.get("protocol", "ANY")
                if wanted not in ("ANY", protocol):
                    continue
                value = str(spec["port"])
                if value == "0":
                    return True
                if port is None:
                    continue
                if value.isdigit():
                    low = int(value)
                    high = int(spec.get("endPort") or low)
                    if low <= port <= max(low, high):
                        return True
                elif any(
                    n == value and (wanted == "ANY" or p == protocol) and number == port
                    for n, p, number in named
                ):
                    return True
        return False

    def side(
        self,
        section: str,
        selected: EndpointKey,
        peer: EndpointKey,
        protocol: str,
        port: int | None,
        named: NamedPorts = (),
    ) -> bool:
        """Whether ``selected``'s ``section`` (ingress/egress) admits traffic with ``peer``."""
        rules = self._rules(selected, section)
        if rules is None:
            return True
        prefix = "from" if section == "ingress" else "to"
        return any(
            self._peer_matches(rule, prefix, namespace, peer)
            and self._port_matches(rule, protocol, port, named)
            for namespace, rule in rules
        )

    def allows(
        self,
        src: EndpointKey,
        dst: EndpointKey,
        protocol: str,
        port: int | None,
        named_ports: NamedPorts = (),
    ) -> tuple[bool, bool]:
        """``(egress allowed, ingress allowed)`` for ``src`` -> ``dst`` (as the k8s evaluator)."""
        return (
            self.side("egress", src, dst, protocol, port, named_ports),
            self.side("ingress", dst, src, protocol, port, named_ports),
        )
