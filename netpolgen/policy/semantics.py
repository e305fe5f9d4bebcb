"""NetworkPolicy semantics: does a set of policies allow one connection?

The evaluator of ``networking.k8s.io/v1`` as the API reference defines it: a pod is isolated
for a direction only when some policy selects it with that ``policyType``; a connection is then
allowed when any selecting policy has a rule whose peers and ports match (rules and policies are
ORed). Peers are ``podSelector`` (in the policy's namespace), ``namespaceSelector`` (with an
optional ``podSelector``: both must match) and ``ipBlock`` (with ``except``); ports match on
protocol and number, ``endPort`` ranges, or a named port resolved per destination pod.
``verify``, ``diff``, ``migrate`` and ``policy_effect`` all decide through :class:`Evaluator`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from netpolgen.cluster.view import NamedPorts
from netpolgen.policy.model import IPBlock, Peer, Policy, PortSpec
from netpolgen.selectors import NAMESPACE_NAME_LABEL

INGRESS = "Ingress"
EGRESS = "Egress"
Direction = Literal["Ingress", "Egress"]

EndpointKey = tuple[str | None, tuple[tuple[str, str], ...], str | None]
RuleMatch = tuple[int, int, tuple[PortSpec, ...]]


# --- one connection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection as the evaluator sees it.

    ``namespace``/``labels`` for pods; ``ip`` for anything that policies can only match by
    ``ipBlock`` (outside addresses, nodes). ``namespace_labels`` are the labels of the pod's
    namespace; ``kubernetes.io/metadata.name`` is implied, as the API server sets it.
    ``named_ports`` maps ``(name, protocol)`` to the pod's container port number.
    """

    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    named_ports: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.namespace, tuple(sorted(self.labels.items())), self.ip))

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None

    @property
    def key(self) -> EndpointKey:
        if self.namespace is not None:
            return (self.namespace, tuple(sorted(self.labels.items())), None)
        return (None, (), self.ip)

    def all_namespace_labels(self) -> dict[str, str]:
        labels = dict(self.namespace_labels)
        if self.namespace is not None:
            labels.setdefault(NAMESPACE_NAME_LABEL, self.namespace)
        return labels

    def named_port_triples(self) -> NamedPorts:
        return tuple(sorted((n, p, port) for (n, p), port in self.named_ports.items()))


# --- the evaluator -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What a set of rules grants one peer: every port, or the listed port specs (maybe none)."""

    all_ports: bool
    ports: tuple[PortSpec, ...] = ()

    def allows(self, protocol: str, port: int | None, named_ports: NamedPorts) -> bool:
        """Whether ``protocol``/``port`` to a pod with ``named_ports`` is granted."""
        if self.all_ports:
            return True
        return any(port_matches(spec, protocol, port, named_ports) for spec in self.ports)


_NO_GRANT = Grant(False)
_ALL_GRANT = Grant(True)


def port_matches(spec: PortSpec, protocol: str, port: int | None, named: NamedPorts) -> bool:
    # NetworkPolicyPort: protocol must match (default TCP); no port = every port of it.
    if spec.protocol != protocol:
        return False
    if spec.port is None:
        return True
    if port is None:
        return False
    if isinstance(spec.port, str):
        # A named port resolves against the destination pod's container ports (name + protocol);
        # a pod without that name does not match.
        return any(n == spec.port and p == protocol and number == port for n, p, number in named)
    if spec.end_port is not None:
        return spec.port <= port <= spec.end_port
    return spec.port == port


class _IPMatcher:
    """An ``ipBlock`` parsed once: ``cidr`` minus its ``except`` entries (IPv4 or IPv6)."""

    def __init__(self, block: IPBlock) -> None:
        self.network = ipaddress.ip_network(block.cidr, strict=False)
        self.excepts = [ipaddress.ip_network(c, strict=False) for c in block.except_]

    def matches(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if address.version != self.network.version or address not in self.network:
            return False
        return not any(address.version == e.version and address in e for e in self.excepts)


class Evaluator:
    """Evaluates connections against a fixed set of policies, caching everything it can.

    Args:
        policies: the policies in force (any namespaces).
        namespace_labels: labels per namespace, for ``namespaceSelector``; a namespace's
            ``kubernetes.io/metadata.name`` label is implied.

    Examples:
        >>> ev = Evaluator([])
        >>> ev.allows(("a", (), None), ("b", (), None), "TCP", 80)
        (True, True)
    """

    def __init__(
        self,
        policies: Iterable[Policy],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.policies: tuple[Policy, ...] = tuple(policies)
        self._namespace_labels = {k: dict(v) for k, v in (namespace_labels or {}).items()}
        self._by_namespace: dict[str, list[int]] = {}
        for index, policy in enumerate(self.policies):
            self._by_namespace.setdefault(policy.namespace, []).append(index)
        self._ip: dict[IPBlock, _IPMatcher] = {}
        self._selecting: dict[tuple[str, tuple[tuple[str, str], ...], str], tuple[int, ...]] = {}
        self._grants: dict[tuple[tuple[int, ...], str, EndpointKey], Grant] = {}
        self._ns_labels_cache: dict[str, dict[str, str]] = {}
        self._rules: dict[tuple[tuple[int, ...], str, EndpointKey], tuple[RuleMatch, ...]] = {}

    @property
    def uses_namespace_labels(self) -> bool:
        """Whether a namespaceSelector looks at labels other than the namespace's name."""
        for policy in self.policies:
            for rule in (*policy.ingress, *policy.egress):
                for peer in rule.peers:
                    selector = peer.namespace_selector
                    if selector is None:
                        continue
                    keys = {k for k, _ in selector.match_labels}
                    keys |= {r.key for r in selector.match_expressions}
                    if keys - {NAMESPACE_NAME_LABEL}:
                        return True
        return False

    @property
    def uses_named_ports(self) -> bool:
        """Whether any rule names a port (then verdicts depend on the destination pod)."""
        return any(
            isinstance(spec.port, str)
            for p in self.policies
            for rule in (*p.ingress, *p.egress)
            for spec in rule.ports
        )

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        cached = self._ns_labels_cache.get(namespace)
        if cached is None:
            cached = dict(self._namespace_labels.get(namespace, {}))
            cached.setdefault(NAMESPACE_NAME_LABEL, namespace)
            self._ns_labels_cache[namespace] = cached
        return cached

    def selecting(self, endpoint: EndpointKey, direction: str) -> tuple[int, ...]:
        """Indexes of the policies that select ``endpoint`` and have ``direction`` in policyTypes.

        Empty means the endpoint is not isolated in that direction (non-pods never are).
        """
        namespace, labels, _ = endpoint
        if namespace is None:
            return ()
        key = (namespace, labels, direction)
        found = self._selecting.get(key)
        if found is None:
            as_dict = dict(labels)
            found = tuple(
                i
                for i in self._by_namespace.get(namespace, ())
                if direction in self.policies[i].policy_types
                and self.policies[i].pod_selector.matches(as_dict)
            )
            self._selecting[key] = found
        return found

    def isolating_names(self, endpoint: EndpointKey, direction: str) -> list[str]:
        """``namespace/name`` of each policy isolating ``endpoint`` in ``direction``."""
        return [
            f"{self.policies[i].namespace}/{self.policies[i].name}"
            for i in self.selecting(endpoint, direction)
        ]

    def grant(self, policy_ids: tuple[int, ...], direction: str, peer: EndpointKey) -> Grant:
        """The union of what the ``direction`` rules of ``policy_ids`` grant ``peer``."""
        key = (policy_ids, direction, peer)
        found = self._grants.get(key)
        if found is not None:
            return found
        ports: list[PortSpec] = []
        result: Grant | None = None
        for i in policy_ids:
            policy = self.policies[i]
            rules = policy.ingress if direction == INGRESS else policy.egress
            for rule in rules:
                # Empty peers (no from/to, or an empty list) = every peer.
                if rule.peers and not any(
                    self._peer_matches(p, policy.namespace, peer) for p in rule.peers
                ):
                    continue
                if not rule.ports:  # no ports = every port and protocol
                    result = _ALL_GRANT
                    break
                ports.extend(rule.ports)
            if result is not None:
                break
        if result is None:
            result = Grant(False, tuple(dict.fromkeys(ports))) if ports else _NO_GRANT
        self._grants[key] = result
        return result

    def matching_rules(
        self, policy_ids: tuple[int, ...], direction: str, peer: EndpointKey
    ) -> tuple[RuleMatch, ...]:
        """``(policy index, rule index, ports)`` of every ``direction`` rule whose peers match
        ``peer`` (cached; ``ports`` empty = every port)."""
        key = (policy_ids, direction, peer)
        found = self._rules.get(key)
        if found is None:
            found = tuple(
                (i, r, rule.ports)
                for i in policy_ids
                for r, rule in enumerate(
                    self.policies[i].ingress if direction == INGRESS else self.policies[i].egress
                )
                if not rule.peers
                or any(self._peer_matches(p, self.policies[i].namespace, peer) for p in rule.peers)
            )
            self._rules[key] = found
        return found

    def _peer_matches(self, peer: Peer, policy_namespace: str, other: EndpointKey) -> bool:
        namespace, labels, ip = other
        if peer.ip_block is not None:
            if namespace is not None or ip is None:
                return False
            matcher = self._ip.get(peer.ip_block)
            if matcher is None:
                matcher = self._ip[peer.ip_block] = _IPMatcher(peer.ip_block)
            return matcher.matches(ip)
        if namespace is None:
            return False
        if peer.namespace_selector is None:
            # podSelector alone: pods in the policy's own namespace.
            if namespace != policy_namespace:
                return False
        elif not peer.namespace_selector.matches(self.namespace_labels(namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(dict(labels))

    def pair_grants(self, src: EndpointKey, dst: EndpointKey) -> tuple[Grant | None, Grant | None]:
        """``(egress grant, ingress grant)`` for ``src`` -> ``dst``; None where not isolated.

        Equal pairs allow exactly the same ports, which lets callers skip port-by-port checks.
        """
        out_ids = self.selecting(src, EGRESS)
        in_ids = self.selecting(dst, INGRESS)
        return (
            self.grant(out_ids, EGRESS, dst) if out_ids else None,
            self.grant(in_ids, INGRESS, src) if in_ids else None,
        )

    def side(
        self,
        direction: str,
        selected: EndpointKey,
        peer: EndpointKey,
        protocol: str,
        port: int | None,
        named_ports: NamedPorts = (),
    ) -> bool:
        """Whether ``selected``'s ``direction`` side admits traffic with ``peer``.

        ``named_ports`` are the destination pod's (the selected pod for ingress, the peer for
        egress).
        """
        ids = self.selecting(selected, direction)
        if not ids:
            return True
        return self.grant(ids, direction, peer).allows(protocol, port, named_ports)

    def allows(
        self,
        src: EndpointKey,
        dst: EndpointKey,
        protocol: str,
        port: int | None,
        named_ports: NamedPorts = (),
    ) -> tuple[bool, bool]:
        """``(egress allowed, ingress allowed)`` for a connection ``src`` -> ``dst``."""
        return (
            self.side(EGRESS, src, dst, protocol, port, named_ports),
            self.side(INGRESS, dst, src, protocol, port, named_ports),
        )


def _evaluator_for(policies: Iterable[Policy], *endpoints: Endpoint) -> Evaluator:
    labels = {e.namespace: e.all_namespace_labels() for e in endpoints if e.namespace is not None}
    return Evaluator(policies, labels)


def ingress_allows(
    policies: Iterable[Policy], src: Endpoint, dst: Endpoint, protocol: str, port: int | None
) -> bool:
    """Whether ``dst``'s ingress side admits the connection (true when ``dst`` is not isolated)."""
    ev = _evaluator_for(policies, src, dst)
    return ev.side(INGRESS, dst.key, src.key, protocol, port, dst.named_port_triples())


def egress_allows(
    policies: Iterable[Policy], src: Endpoint, dst: Endpoint, protocol: str, port: int | None
) -> bool:
    """Whether ``src``'s egress side lets the connection out (true when ``src`` is not isolated)."""
    ev = _evaluator_for(policies, src, dst)
    return ev.side(EGRESS, src.key, dst.key, protocol, port, dst.named_port_triples())


def is_allowed(
    policies: Iterable[Policy], src: Endpoint, dst: Endpoint, protocol: str, port: int | None
) -> bool:
    """Whether a connection from ``src`` to ``dst`` on ``protocol``/``port`` is allowed."""
    ev = _evaluator_for(policies, src, dst)
    egress, ingress = ev.allows(src.key, dst.key, protocol, port, dst.named_port_triples())
    return egress and ingress
