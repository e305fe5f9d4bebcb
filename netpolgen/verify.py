"""NetworkPolicy semantics: which connections a set of policies allows.

Semantics followed (https://kubernetes.io/docs/concepts/services-networking/network-policies/):

* A pod is *isolated for ingress* when at least one policy in its namespace selects it and has
  ``Ingress`` in ``policyTypes``; likewise for egress. A pod that no such policy selects accepts
  (or sends) everything in that direction.
* For an isolated pod, a connection is allowed when *any* rule of *any* selecting policy of that
  direction allows it (policies are additive; there is no deny rule).
* A connection between two pods needs both: the source's egress and the destination's ingress.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netpolgen.policy.model import Peer, Policy, PortSpec, Rule


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection as the evaluator sees it.

    ``namespace``/``labels`` for pods; ``ip`` for anything that policies can only match by
    ``ipBlock`` (outside addresses, nodes). ``namespace_labels`` are the labels of the pod's
    namespace; ``kubernetes.io/metadata.name`` is implied, as the API server sets it.
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

    def all_namespace_labels(self) -> dict[str, str]:
        labels = dict(self.namespace_labels)
        if self.namespace is not None:
            labels.setdefault("kubernetes.io/metadata.name", self.namespace)
        return labels


def _peer_matches(peer: Peer, policy_namespace: str, other: Endpoint) -> bool:
    if peer.ip_block is not None:
        if other.ip is None:
            return False
        address = ipaddress.ip_address(other.ip)
        network = ipaddress.ip_network(peer.ip_block.cidr, strict=False)
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(c, strict=False)
            for c in peer.ip_block.except_
            if ipaddress.ip_network(c, strict=False).version == address.version
        )
    if not other.is_pod:
        return False
    if peer.namespace_selector is None:
        # podSelector alone: pods in the policy's own namespace.
        in_scope = other.namespace == policy_namespace
    else:
        in_scope = peer.namespace_selector.matches(other.all_namespace_labels())
    if not in_scope:
        return False
    return peer.pod_selector is None or peer.pod_selector.matches(other.labels)


def _port_matches(spec: PortSpec, protocol: str, port: int | None, target: Endpoint) -> bool:
    if spec.protocol != protocol:
        return False
    if spec.port is None:
        return True
    if port is None:
        return False
    if isinstance(spec.port, str):
        # A named port resolves against the pod the traffic goes to (the rule's target).
        named = target.named_ports.get((spec.port, protocol))
        return named is not None and named == port
    if spec.end_port is not None:
        return spec.port <= port <= spec.end_port
    return spec.port == port


def _rule_allows(
    rule: Rule, policy_namespace: str, peer: Endpoint, protocol: str, port: int | None,
    port_owner: Endpoint,
) -> bool:  # fmt: skip
    if rule.ports and not any(_port_matches(s, protocol, port, port_owner) for s in rule.ports):
        return False
    return not rule.peers or any(_peer_matches(p, policy_namespace, peer) for p in rule.peers)


def _selecting(policies: Iterable[Policy], pod: Endpoint, direction: str) -> list[Policy]:
    if not pod.is_pod:
        return []
    return [
        p
        for p in policies
        if p.namespace == pod.namespace
        and direction in p.policy_types
        and p.pod_selector.matches(pod.labels)
    ]


def ingress_allows(
    policies: Iterable[Policy], src: Endpoint, dst: Endpoint, protocol: str, port: int | None
) -> bool:
    """Whether ``dst``'s ingress side admits the connection (true when ``dst`` is not isolated)."""
    selecting = _selecting(policies, dst, "Ingress")
    if not selecting:
        return True
    return any(
        _rule_allows(rule, p.namespace, src, protocol, port, dst)
        for p in selecting
        for rule in p.ingress
    )


def egress_allows(
    policies: Iterable[Policy], src: Endpoint, dst: Endpoint, protocol: str, port: int | None
) -> bool:
    """Whether ``src``'s egress side lets the connection out (true when ``src`` is not isolated)."""
    selecting = _selecting(policies, src, "Egress")
    if not selecting:
        return True
    return any(
        _rule_allows(rule, p.namespace, dst, protocol, port, dst)
        for p in selecting
        for rule in p.egress
    )


def is_allowed(
    policies: Iterable[Policy], src: Endpoint, dst: Endpoint, protocol: str, port: int | None
) -> bool:
    """Whether a connection from ``src`` to ``dst`` on ``protocol``/``port`` is allowed."""
    policies = list(policies)
    return egress_allows(policies, src, dst, protocol, port) and ingress_allows(
        policies, src, dst, protocol, port
    )
