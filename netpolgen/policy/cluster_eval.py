"""What a cluster does with ClusterNetworkPolicy tiers over its NetworkPolicies.

The order of the API (kubernetes-sigs/network-policy-api v0.2.0, ``spec.tier`` and
``spec.priority`` in its CRD), for each side of a connection (the source's egress, the
destination's ingress, as for NetworkPolicy):

1. ``Admin`` tier: the policies whose ``subject`` selects the pod, lower ``priority`` first
   (equal priorities: file order, and a warning, as the API leaves their order to the
   implementation); within one, rules in written order. The first rule whose peer and protocols
   match decides: ``Accept`` allows, ``Deny`` denies, ``Pass`` skips the rest of the tier.
2. NetworkPolicy tier: a pod some NetworkPolicy isolates for that direction is decided there
   (:class:`~netpolgen.policy.semantics.Evaluator`), Baseline is not consulted.
3. ``Baseline`` tier: as Admin (``Pass`` ends the tier).
4. Traffic no tier decided is allowed.

Peers: ``namespaces`` (every pod of matching namespaces), ``pods`` (namespace and pod
selectors), ``networks`` (CIDRs; the CRD: "cluster-internal traffic will be checked against the
rule as well", so a pod matches by its addresses in the inventory; a pod whose addresses are
unknown matches only a ``/0``, with a warning). Subjects and pod peers are pods only (not
hostNetwork pods, which flows name as nodes). Peers of unknown kind fail closed, as the CRD
asks: ``Accept`` matches nothing, ``Deny``/``Pass`` match every peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from netpolgen.cluster.view import NamedPorts
from netpolgen.policy.cluster_model import ClusterPeer, ClusterPolicy, ClusterRule
from netpolgen.policy.model import IPBlock, Peer, Policy, PortSpec, Rule
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator, Grant, port_matches
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelSelector

__all__ = ["TieredEvaluator", "TieredGrant", "cut_policies"]

PodAddresses = Mapping[tuple[str, tuple[tuple[str, str], ...]], tuple[str, ...]]
Decision = tuple[str, tuple[PortSpec, ...] | None]


def _decide(rules: tuple[Decision, ...], protocol: str, port: int | None, named: NamedPorts) -> str:
    for action, ports in rules:
        if ports is None or any(port_matches(s, protocol, port, named) for s in ports):
            return action
    return ""


@dataclass(frozen=True)
class TieredGrant(Grant):
    """What the tiers decide for one side of one pair: the matching Admin rules (action, ports)
    in order, the NetworkPolicy grant (None: not isolated there), the matching Baseline rules.

    Equal grants decide every port alike (what diff's shortcut relies on)."""

    admin: tuple[Decision, ...] = ()
    policy: Grant | None = None
    baseline: tuple[Decision, ...] = ()

    def allows(self, protocol: str, port: int | None, named_ports: NamedPorts) -> bool:
        action = _decide(self.admin, protocol, port, named_ports)
        if action in ("Accept", "Deny"):
            return action == "Accept"
        if self.policy is not None:
            return self.policy.allows(protocol, port, named_ports)
        return _decide(self.baseline, protocol, port, named_ports) != "Deny"


class TieredEvaluator(Evaluator):
    """:class:`~netpolgen.policy.semantics.Evaluator` with ClusterNetworkPolicy tiers around it.

    ``selecting`` and ``grant`` stay the NetworkPolicy tier's (rule usage credits those rules);
    ``side``, ``allows`` and ``pair_grants`` decide through every tier.

    Args:
        policies: the NetworkPolicies.
        cluster_policies: the ClusterNetworkPolicies (any tier), in file order.
        namespace_labels: labels per namespace.
        pod_addresses: ``(namespace, labels) -> addresses`` of pods, for ``networks`` peers.
    """

    def __init__(
        self,
        policies: Iterable[Policy],
        cluster_policies: Iterable[ClusterPolicy],
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
        pod_addresses: PodAddresses | None = None,
    ) -> None:
        super().__init__(policies, namespace_labels)
        ordered = sorted(enumerate(cluster_policies), key=lambda p: (p[1].priority, p[0]))
        self.cluster_policies: tuple[ClusterPolicy, ...] = tuple(p for _, p in ordered)
        self._pod_addresses = dict(pod_addresses or {})
        self._networks: dict[str, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        self._subjects: dict[tuple[EndpointKey, str, str], tuple[ClusterPolicy, ...]] = {}
        self._sides: dict[tuple[str, EndpointKey, EndpointKey], TieredGrant | None] = {}
        self.warnings: list[str] = []
        seen: dict[tuple[str, int], str] = {}
        for policy in self.cluster_policies:
            other = seen.setdefault((policy.tier, policy.priority), policy.name)
            if other != policy.name:
                self.warnings.append(
                    f"ClusterNetworkPolicies {other} and {policy.name} share {policy.tier} "
                    f"priority {policy.priority}: the API leaves their order to the "
                    "implementation; evaluated in file order"
                )
            for rule in (*policy.ingress, *policy.egress):
                for peer in rule.peers:
                    if peer.unknown:
                        closed = "nothing" if rule.action == "Accept" else "every peer"
                        self.warnings.append(
                            f"ClusterNetworkPolicy {policy.name} rule {rule.name}: a peer with "
                            f"{peer.unknown} (not in v1alpha2 v0.2.0) fails closed "
                            f"(matches {closed})"
                        )

    # --- what the checks ask ---------------------------------------------------------------

    @property
    def uses_named_ports(self) -> bool:
        return super().uses_named_ports or any(
            isinstance(spec.port, str)
            for p in self.cluster_policies
            for rule in (*p.ingress, *p.egress)
            for spec in rule.ports or ()
        )

    @property
    def uses_namespace_labels(self) -> bool:
        def other_keys(selector: LabelSelector | None) -> bool:
            if selector is None:
                return False
            keys = {k for k, _ in selector.match_labels} | {
                r.key for r in selector.match_expressions
            }
            return bool(keys - {NAMESPACE_NAME_LABEL})

        return super().uses_namespace_labels or any(
            other_keys(p.subject_namespaces)
            or any(
                other_keys(peer.namespace_selector)
                for rule in (*p.ingress, *p.egress)
                for peer in rule.peers
            )
            for p in self.cluster_policies
        )

    def cluster_subjects(
        self, endpoint: EndpointKey, direction: str, tier: str | None = None
    ) -> tuple[ClusterPolicy, ...]:
        """The cluster policies (priority order) whose subject is ``endpoint`` and that have
        rules for ``direction`` (in ``tier``, or any)."""
        key = (endpoint, direction, tier or "")
        found = self._subjects.get(key)
        if found is None:
            namespace, labels, _ = endpoint
            found = ()
            if namespace is not None:
                ns_labels = self.namespace_labels(namespace)
                pod_labels = dict(labels)
                found = tuple(
                    p
                    for p in self.cluster_policies
                    if (tier is None or p.tier == tier)
                    and (p.ingress if direction == INGRESS else p.egress)
                    and p.subject_namespaces.matches(ns_labels)
                    and (p.subject_pods is None or p.subject_pods.matches(pod_labels))
                )
            self._subjects[key] = found
        return found

    def isolating_names(self, endpoint: EndpointKey, direction: str) -> list[str]:
        return [
            *(p.label for p in self.cluster_subjects(endpoint, direction, "Admin")),
            *super().isolating_names(endpoint, direction),
            *(p.label for p in self.cluster_subjects(endpoint, direction, "Baseline")),
        ]

    # --- deciding ----------------------------------------------------------------------------

    def side_grant(
        self, direction: str, selected: EndpointKey, peer: EndpointKey
    ) -> TieredGrant | None:
        """What decides ``selected``'s ``direction`` side with ``peer``; None: nothing (allowed)."""
        key = (direction, selected, peer)
        if key in self._sides:
            return self._sides[key]
        admin = self._decisions(
            self.cluster_subjects(selected, direction, "Admin"), direction, peer
        )
        ids = self.selecting(selected, direction)
        policy = self.grant(ids, direction, peer) if ids else None
        baseline = self._decisions(
            self.cluster_subjects(selected, direction, "Baseline"), direction, peer
        )
        found = (
            None
            if not admin and policy is None and not baseline
            else TieredGrant(False, (), admin, policy, baseline)
        )
        self._sides[key] = found
        return found

    def side(
        self,
        direction: str,
        selected: EndpointKey,
        peer: EndpointKey,
        protocol: str,
        port: int | None,
        named_ports: NamedPorts = (),
    ) -> bool:
        grant = self.side_grant(direction, selected, peer)
        return grant is None or grant.allows(protocol, port, named_ports)

    def policies_decide(
        self,
        direction: str,
        selected: EndpointKey,
        peer: EndpointKey,
        protocol: str,
        port: int | None,
        named_ports: NamedPorts = (),
    ) -> bool:
        """Whether the NetworkPolicy tier is reached for this side (no Admin Accept or Deny
        decided first): only then do its rules carry the traffic."""
        grant = self.side_grant(direction, selected, peer)
        if grant is None:
            return True
        return _decide(grant.admin, protocol, port, named_ports) not in ("Accept", "Deny")

    def pair_grants(self, src: EndpointKey, dst: EndpointKey) -> tuple[Grant | None, Grant | None]:
        return self.side_grant(EGRESS, src, dst), self.side_grant(INGRESS, dst, src)

    def _decisions(
        self, policies: tuple[ClusterPolicy, ...], direction: str, peer: EndpointKey
    ) -> tuple[Decision, ...]:
        out: list[Decision] = []
        for policy in policies:
            for rule in policy.ingress if direction == INGRESS else policy.egress:
                if any(self._peer_matches_cluster(rule, p, peer) for p in rule.peers):
                    out.append((rule.action, rule.ports))
                    if rule.ports is None:
                        return tuple(out)  # nothing after it is ever reached
        return tuple(out)

    def _peer_matches_cluster(
        self, rule: ClusterRule, peer: ClusterPeer, other: EndpointKey
    ) -> bool:
        if peer.unknown:
            return rule.action != "Accept"  # fail closed
        namespace, labels, ip = other
        if peer.networks:
            return any(self._in_network(cidr, namespace, labels, ip) for cidr in peer.networks)
        if namespace is None or peer.namespace_selector is None:
            return False
        if not peer.namespace_selector.matches(self.namespace_labels(namespace)):
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(dict(labels))

    def _in_network(
        self, cidr: str, namespace: str | None, labels: tuple[tuple[str, str], ...], ip: str | None
    ) -> bool:
        network = self._networks.get(cidr)
        if network is None:
            network = self._networks[cidr] = ipaddress.ip_network(cidr, strict=False)
        if namespace is None:
            addresses: tuple[str, ...] = (ip,) if ip is not None else ()
        else:
            addresses = self._pod_addresses.get((namespace, labels), ())
            if not addresses:
                if network.prefixlen != 0:
                    message = (
                        f"networks {cidr} of a ClusterNetworkPolicy is compared with pods whose "
                        "addresses are unknown (pass -i INVENTORY): they match only a /0"
                    )
                    if message not in self.warnings:
                        self.warnings.append(message)
                return network.prefixlen == 0
        for address in addresses:
            try:
                parsed = ipaddress.ip_address(address)
            except ValueError:
                continue
            if parsed.version == network.version and parsed in network:
                return True
        return False


def cut_policies(cluster_policies: Iterable[ClusterPolicy]) -> list[Policy]:
    """Stand-in NetworkPolicies carrying the ports and CIDRs of ``cluster_policies``: what diff
    needs to cut the port and address spaces where a cluster rule could change its answer."""
    rules = []
    for policy in cluster_policies:
        for rule in (*policy.ingress, *policy.egress):
            peers = tuple(
                Peer(ip_block=IPBlock(cidr)) for peer in rule.peers for cidr in peer.networks
            )
            rules.append(Rule(peers=peers, ports=rule.ports or ()))
    if not rules:
        return []
    return [Policy("cluster-cuts", "", LabelSelector(), ("Ingress",), ingress=tuple(rules))]
