"""NetworkPolicy semantics: which connections a set of policies allows, for one or a million flows.

Semantics of ``networking.k8s.io/v1`` followed here
(https://kubernetes.io/docs/concepts/services-networking/network-policies/ and the API reference):

* A policy applies to the pods of its own namespace that its ``podSelector`` selects; the empty
  selector selects every pod of the namespace.
* A pod is *isolated for ingress* when at least one policy selects it and has ``Ingress`` in
  ``policyTypes``; likewise for egress. ``policyTypes`` defaults to ``Ingress``, plus ``Egress``
  when the policy has at least one egress rule (so ``egress: []`` alone isolates nothing).
  Isolation is per direction: a pod isolated only for ingress sends anything.
* For an isolated pod, a connection is allowed when *any* rule of *any* selecting policy of that
  direction allows it (policies are additive; there are no deny rules). A rule allows it when a
  peer matches (no ``from``/``to``, or an empty list, matches every peer) and a port matches (no
  ``ports`` matches every port and protocol).
* A peer's ``podSelector`` alone selects pods in the policy's namespace; ``namespaceSelector``
  alone every pod in the matching namespaces; both together the matching pods in the matching
  namespaces. ``ipBlock`` matches addresses in ``cidr`` but not in any ``except``; here it matches
  only endpoints that are not pods (what a CNI sees for cluster-external traffic), as pod IPs are
  ephemeral and the API leaves their matching to the implementation.
* Selectors: ``matchLabels`` and ``matchExpressions`` are ANDed; ``NotIn`` and ``DoesNotExist``
  match objects that lack the key. Namespaces always carry ``kubernetes.io/metadata.name``.
* A port is a number, a range ``port..endPort``, or a name resolved per destination pod through
  its containers' ``ports`` (name and protocol); a port without a number matches every port of
  its protocol (default TCP).
* A connection between two endpoints needs both: the source's egress and the destination's
  ingress. Endpoints that are not pods are never isolated. Traffic between a pod and its own
  node (flow kind ``host``) is always allowed; other nodes are addresses like any other.

The table entry point is :func:`verify`: it reduces the flows to distinct edges (source endpoint,
destination endpoint, protocol, port) with vectorised pandas/numpy, evaluates each edge once
through an :class:`Evaluator` that caches, per endpoint, the selecting policies and, per (policy
set, peer), the ports the rules grant; then maps the verdicts back to the flows.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from netpolgen.accounting import summary_dict
from netpolgen.aggregate import SELECTABLE_KINDS, mark_replies
from netpolgen.cluster_view import ClusterView, InventoryLike, NamedPorts
from netpolgen.errors import NetpolgenError
from netpolgen.flows import empty_flows, validate_flows
from netpolgen.identity import stable_labels
from netpolgen.ingest import Source, load_flows
from netpolgen.ingest.common import group_ids
from netpolgen.ingest.inventory import Inventory, load_inventory
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.labels import labels_from_canonical
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import NAMESPACE_NAME_LABEL, IPBlock, Peer, Policy, PortSpec
from netpolgen.resolve import resolve_flows

__all__ = [
    "Endpoint",
    "Evaluator",
    "VerificationReport",
    "egress_allows",
    "evaluate_edges",
    "format_report",
    "ingress_allows",
    "is_allowed",
    "rule_usage",
    "verify",
    "verify_files",
]

INGRESS = "Ingress"
EGRESS = "Egress"
Direction = Literal["Ingress", "Egress"]

EndpointKey = tuple[str | None, tuple[tuple[str, str], ...], str | None]
"""``(namespace, labels, ip)``: a pod when ``namespace`` is set (``ip`` unused), else an address."""
RuleMatch = tuple[int, int, tuple[PortSpec, ...]]
"""``(policy index, rule index, the rule's ports)``."""


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
        return any(_port_matches(spec, protocol, port, named_ports) for spec in self.ports)


_NO_GRANT = Grant(False)
_ALL_GRANT = Grant(True)


def _port_matches(spec: PortSpec, protocol: str, port: int | None, named: NamedPorts) -> bool:
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


# --- tables ------------------------------------------------------------------------------------

RULE_COLUMNS = ["policy", "direction", "rule", "flows", "edges"]
EDGE_KEY = [
    "src_namespace",
    "src_labels",
    "src_ip",
    "dst_namespace",
    "dst_labels",
    "dst_ip",
    "protocol",
    "dst_port",
]


@dataclass
class VerificationReport:
    """The result of replaying flows against policies.

    Attributes:
        edges: one row per distinct checked edge (``EDGE_KEY`` columns; ``src_ip``/``dst_ip``
            only for endpoints that are not pods) with ``flows`` (sum of ``count``),
            ``records``, ``egress_isolated``, ``ingress_isolated``, ``egress_allowed``,
            ``ingress_allowed``, ``allowed`` and ``dst_named_ports`` (the destination pod's
            named ports used to resolve ``port: <name>``).
        denied: the denied edges grouped by workload pair and port: ``src``, ``dst`` (display
            names), ``protocol``, ``dst_port``, ``flows``, ``edges``, ``blocked_by``
            (``egress``, ``ingress`` or ``egress+ingress``) and the isolating policies,
            ``egress_policies`` and ``ingress_policies``.
        isolation: per denied endpoint and direction, the policies that isolate it.
        over_permissive: allowed but unused ``(src, dst, protocol, port)`` combinations between
            known workloads (see :func:`verify`).
        flow_allowed: per input row (same index): True/False for checked flows, NA for rows not
            checked (replies, flows the network denied, unresolved endpoints).
        rules: per rule of every policy, the observed flows and edges it admitted
            (:func:`rule_usage`); rules with no flows allowed nothing that was seen.
        counts: flow and edge counts by outcome (see :meth:`summary`).
        warnings: things the user should know (e.g. named ports without an inventory).
        ingest: what reading the flow files did, when they were read by :func:`verify_files`.

    Examples:
        >>> report = verify(flows, result.policies)  # doctest: +SKIP
        >>> report.ok, report.denied  # doctest: +SKIP
    """

    edges: pd.DataFrame
    denied: pd.DataFrame
    isolation: pd.DataFrame
    over_permissive: pd.DataFrame
    flow_allowed: pd.Series
    counts: dict[str, int]
    rules: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=RULE_COLUMNS))
    warnings: list[str] = field(default_factory=list)
    ingest: IngestReport | None = None

    @property
    def ok(self) -> bool:
        """True when every checked (observed, allowed, non-reply) flow is allowed."""
        return self.counts.get("flows_denied", 0) == 0

    def summary(self) -> str:
        """A few lines of plain text with the counts."""
        c = self.counts
        lines = [
            f"flows checked: {c['flows_checked']} ({c['records_checked']} records, "
            f"{c['edges_checked']} distinct edges)",
            f"  allowed: {c['flows_allowed']} flows, {c['edges_allowed']} edges",
            f"  denied:  {c['flows_denied']} flows, {c['edges_denied']} edges",
            f"not checked: {c['records_reply']} reply records, {c['records_denied_verdict']} "
            f"records the network denied, {c['records_unresolved']} records without endpoints, "
            f"{c['records_host']} records with the pod's own node (always allowed)",
        ]
        if c.get("rules"):
            lines.append(
                f"rules: {c['rules_unused']} of {c['rules']} policy rules admitted no observed flow"
            )
        if "combinations_allowed" in c:
            lines.append(
                f"over-permissiveness: {c['combinations_unused']} of "
                f"{c['combinations_allowed']} allowed (src, dst, port) combinations between "
                f"{c['workloads']} known workloads were never used"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: counts, warnings, denied, isolation and over-permissive rows."""
        return {
            "ok": self.ok,
            "counts": dict(self.counts),
            "warnings": list(self.warnings),
            "denied": _records(self.denied),
            "isolation": _records(self.isolation),
            "over_permissive": _records(self.over_permissive),
            "unused_rules": _records(self.rules[self.rules["flows"] == 0]),
            # What reading the flows did: read = used + skipped + filtered, by reason.
            "ingest": None if self.ingest is None else summary_dict(self.ingest),
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.astype(object).where(frame.notna(), None).to_dict(orient="records"):
        out.append({str(k): (int(v) if isinstance(v, np.integer) else v) for k, v in row.items()})
    return out


def _endpoint_columns(flows: pd.DataFrame, side: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per row: namespace and labels for pods (NA otherwise), ip for non-pods (NA for pods)."""
    namespace = flows[f"{side}_namespace"]
    # As the generator does (netpolgen.aggregate): only pods are reachable by selectors; any
    # other kind (node, host, world, service, unknown) only by ipBlock on its address.
    kind = flows[f"{side}_kind"]
    is_pod = namespace.notna() & kind.isin(SELECTABLE_KINDS).fillna(False).astype(bool)
    ns = namespace.where(is_pod, pd.NA).astype("string")
    labels = flows[f"{side}_labels"].fillna("").where(is_pod, pd.NA).astype("string")
    ip = flows[f"{side}_ip"].where(~is_pod, pd.NA).astype("string")
    return ns, labels, ip


def _key(namespace: Any, labels: Any, ip: Any) -> EndpointKey:
    if namespace is not None and not pd.isna(namespace):
        return (str(namespace), labels_from_canonical(str(labels or "")), None)
    return (None, (), None if ip is None or pd.isna(ip) else str(ip))


def describe_endpoint(namespace: Any, labels: Any, ip: Any) -> str:
    """``namespace/labels`` for a pod endpoint, the address for anything else."""
    if namespace is not None and not pd.isna(namespace):
        return f"{namespace}/{labels or '<no labels>'}"
    return str(ip)


def edge_keys(edges: pd.DataFrame) -> tuple[list[EndpointKey], list[EndpointKey]]:
    """The evaluator's endpoint keys for each edge's source and destination."""
    src = [
        _key(n, lbl, ip)
        for n, lbl, ip in zip(
            edges["src_namespace"].tolist(),
            edges["src_labels"].tolist(),
            edges["src_ip"].tolist(),
            strict=True,
        )
    ]
    dst = [
        _key(n, lbl, ip)
        for n, lbl, ip in zip(
            edges["dst_namespace"].tolist(),
            edges["dst_labels"].tolist(),
            edges["dst_ip"].tolist(),
            strict=True,
        )
    ]
    return src, dst


def evaluate_edges(
    edges: pd.DataFrame,
    evaluator: Evaluator,
    keys: tuple[list[EndpointKey], list[EndpointKey]] | None = None,
) -> pd.DataFrame:
    """Evaluate each edge of a :attr:`VerificationReport.edges` table against other policies.

    Returns a frame on the same index with ``egress_isolated``, ``ingress_isolated``,
    ``egress_allowed``, ``ingress_allowed`` and ``allowed``. One Python iteration per distinct
    edge (never per flow); the evaluator caches per endpoint and per (policy set, peer).
    """
    src_keys, dst_keys = keys if keys is not None else edge_keys(edges)
    n = len(edges)
    egress_iso = np.zeros(n, dtype=bool)
    ingress_iso = np.zeros(n, dtype=bool)
    egress_ok = np.ones(n, dtype=bool)
    ingress_ok = np.ones(n, dtype=bool)
    named_column = edges["dst_named_ports"].tolist() if "dst_named_ports" in edges else [()] * n
    for i, (src, dst, proto, port, named) in enumerate(
        zip(
            src_keys,
            dst_keys,
            edges["protocol"].tolist(),
            edges["dst_port"].tolist(),
            named_column,
            strict=True,
        )
    ):
        port_number = None if port is None or pd.isna(port) else int(port)
        protocol = "" if proto is None or pd.isna(proto) else str(proto)
        egress_iso[i] = bool(evaluator.selecting(src, EGRESS))
        ingress_iso[i] = bool(evaluator.selecting(dst, INGRESS))
        egress_ok[i], ingress_ok[i] = evaluator.allows(src, dst, protocol, port_number, named)
    return pd.DataFrame(
        {
            "egress_isolated": egress_iso,
            "ingress_isolated": ingress_iso,
            "egress_allowed": egress_ok,
            "ingress_allowed": ingress_ok,
            "allowed": egress_ok & ingress_ok,
        },
        index=edges.index,
    )


def rule_usage(
    edges: pd.DataFrame,
    evaluator: Evaluator,
    keys: tuple[list[EndpointKey], list[EndpointKey]] | None = None,
) -> pd.DataFrame:
    """How much observed traffic each rule of each policy carried.

    For every allowed edge, every rule that admits it (on the side where its endpoint is
    isolated) is credited with the edge's flows; several rules can share one edge. Rules with
    ``flows == 0`` allowed nothing that was observed: candidates for removal.

    Returns:
        One row per rule: ``policy`` (``namespace/name``), ``direction`` (``ingress`` or
        ``egress``), ``rule`` (its 0-based index in that list), ``flows`` and ``edges``.
    """
    src_keys, dst_keys = keys if keys is not None else edge_keys(edges)
    credit: dict[tuple[int, str, int], list[int]] = {}
    for i, policy in enumerate(evaluator.policies):
        for direction, rules in ((INGRESS, policy.ingress), (EGRESS, policy.egress)):
            if direction in policy.policy_types:
                for r in range(len(rules)):
                    credit[(i, direction, r)] = [0, 0]
    named_column = (
        edges["dst_named_ports"].tolist() if "dst_named_ports" in edges else [()] * len(edges)
    )
    for src, dst, proto, port, named, flows, allowed in zip(
        src_keys, dst_keys, edges["protocol"].tolist(), edges["dst_port"].tolist(),
        named_column, edges["flows"].tolist(), edges["allowed"].tolist(), strict=True,
    ):  # fmt: skip
        if not allowed:
            continue
        port_number = None if port is None or pd.isna(port) else int(port)
        protocol = "" if proto is None or pd.isna(proto) else str(proto)
        for direction, selected, peer in ((EGRESS, src, dst), (INGRESS, dst, src)):
            ids = evaluator.selecting(selected, direction)
            if not ids:
                continue
            for i, r, ports in evaluator.matching_rules(ids, direction, peer):
                if not ports or any(
                    _port_matches(spec, protocol, port_number, named) for spec in ports
                ):
                    entry = credit[(i, direction, r)]
                    entry[0] += int(flows)
                    entry[1] += 1
    rows = [
        (
            f"{evaluator.policies[i].namespace}/{evaluator.policies[i].name}",
            direction.lower(),
            r,
            flows,
            count,
        )
        for (i, direction, r), (flows, count) in credit.items()
    ]
    frame = pd.DataFrame(rows, columns=RULE_COLUMNS)
    return frame.astype({"policy": "string", "direction": "string", "rule": "int64",
                         "flows": "int64", "edges": "int64"})  # fmt: skip


def verify(
    flows: pd.DataFrame,
    policies: Sequence[Policy],
    inventory: InventoryLike = None,
    *,
    over_permissive: bool = True,
    max_workloads: int = 2000,
) -> VerificationReport:
    """Replay observed flows against policies.

    Checked flows are the observed, allowed ones: rows whose ``verdict`` is not ``denied``
    (the network already dropped those, so they are not wanted traffic) that are not replies
    (replies ride on the connection's state). A reply is a row whose ``is_reply`` is true or,
    when NA, whose reversed 5-tuple was seen earlier (``netpolgen.aggregate.mark_replies``, the
    rule the generator uses). Traffic with the pod's own node (kind ``host``) is always allowed
    and not checked, as NetworkPolicy cannot block it. An endpoint is a pod when its kind is
    ``pod`` and it has a namespace; any other endpoint is matched by its IP; rows with an
    endpoint that has neither are counted as unresolved. Rows that are not checked are counted
    in ``counts``.

    Over-permissiveness: the known workloads are the inventory's pods grouped by namespace and
    labels (volatile labels such as ``pod-template-hash`` dropped), or, without an inventory, the
    pod endpoints of the flows. For every (source, destination) pair and every port of the
    destination (ports observed in any flow to it, and its declared container ports), the
    combination is checked; those allowed that no checked flow used are reported.

    Args:
        flows: a flow table (``netpolgen.flows``).
        policies: the policies in force.
        inventory: pods and namespaces, for namespace labels, named ports and the workload list.
        over_permissive: compute the over-permissiveness table.
        max_workloads: skip over-permissiveness (with a warning) above this many workloads.

    Returns:
        A :class:`VerificationReport`.

    Raises:
        SchemaError: when ``flows`` is not a flow table.

    Examples:
        >>> from netpolgen.flows import empty_flows
        >>> verify(empty_flows(), []).ok
        True
    """
    validate_flows(flows)
    cluster = ClusterView.from_inventory(inventory)
    ev = Evaluator(policies, cluster.namespace_labels)
    # Replies: the record's own flag, else inferred from the reversed 5-tuple, as the generator
    # infers them (netpolgen.aggregate.mark_replies).
    is_reply = mark_replies(flows).to_numpy(dtype=bool)
    checker = _Checker(ev, cluster)
    rows, codes = checker.add(flows, is_reply)
    report = checker.report(over_permissive=over_permissive, max_workloads=max_workloads)
    flow_allowed = pd.Series(pd.NA, index=flows.index, dtype="boolean")
    if len(rows):  # one chunk: its edges are the report's, in the same order
        flow_allowed.iloc[rows] = report.edges["allowed"].to_numpy()[codes]
    report.flow_allowed = flow_allowed
    return report


class _Checker:
    """What :func:`verify` needs from flows, reduced chunk by chunk: the checked edges with their
    flow and record counts (in order of first appearance), the row counts by outcome, and the
    ports observed to each destination (for over-permissiveness). Memory follows the number of
    distinct edges, not of rows, so a stream of chunks can be verified in bounded memory; one
    chunk holding every row is :func:`verify` itself."""

    # Partial edge tables are combined when this many rows of them are pending.
    COMBINE_ROWS = 500_000

    def __init__(self, ev: Evaluator, cluster: ClusterView) -> None:
        self.ev = ev
        self.cluster = cluster
        self.named_profiles: list[NamedPorts] = [()]
        self.with_profiles = ev.uses_named_ports and cluster.has_named_ports
        self._edges: list[pd.DataFrame] = []
        self._pending = 0
        self._observed: list[pd.DataFrame] = []
        self.counts = dict.fromkeys(
            ("records", "records_checked", "flows_checked", "records_reply",
             "records_denied_verdict", "records_unresolved", "records_host", "to_services"),
            0,
        )  # fmt: skip

    def add(self, flows: pd.DataFrame, is_reply: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reduce one chunk (``is_reply``: its replies). Returns the checked rows and, per
        checked row, its edge number among this chunk's edges."""
        cluster = self.cluster
        denied_verdict = (flows["verdict"] == "denied").fillna(False).astype(bool).to_numpy()
        src_ns, src_labels, src_ip = _endpoint_columns(flows, "src")
        dst_ns, dst_labels, dst_ip = _endpoint_columns(flows, "dst")
        unresolved = ((src_ns.isna() & src_ip.isna()) | (dst_ns.isna() & dst_ip.isna())).to_numpy()
        # Traffic to and from the pod's own node (kind ``host``: kubelet probes, hostNetwork
        # daemons) is always allowed: NetworkPolicy cannot block a pod's resident node.
        host = flows["src_kind"].isin(["host"]).fillna(False).to_numpy(dtype=bool) | flows[
            "dst_kind"
        ].isin(["host"]).fillna(False).to_numpy(dtype=bool)
        checked = ~is_reply & ~denied_verdict & ~unresolved & ~host
        counts_col = flows["count"].fillna(1).to_numpy(dtype=np.int64)
        to_services = (flows["dst_kind"] == "service").fillna(False).to_numpy() & checked

        profile_col: pd.Series | None = None
        if self.with_profiles:
            profiles: list[NamedPorts] = [()]
            profile_col = _named_port_profiles(flows, dst_ns, cluster, profiles)
            self.named_profiles = profiles  # the same list for every chunk (from the inventory)

        rows = np.flatnonzero(checked)
        key_columns = [src_ns, src_labels, src_ip, dst_ns, dst_labels, dst_ip]
        key_columns += [flows["protocol"].astype("string"), flows["dst_port"]]
        if profile_col is not None:
            key_columns.append(profile_col)
        edges, codes = _reduce_to_edges(key_columns, rows, counts_col, flows["dst_port"].dtype)
        self._edges.append(edges)
        self._pending += len(edges)
        if self._pending > self.COMBINE_ROWS:
            self._edges = [_combine_edges(self._edges)]
            self._pending = len(self._edges[0])

        # Ports observed to each destination workload, in any non-reply flow (allowed or not).
        mask = dst_ns.notna().to_numpy() & ~is_reply & flows["dst_port"].notna().to_numpy()
        self._observed.append(
            pd.DataFrame(
                {
                    "ns": dst_ns[mask].to_numpy(),
                    "labels": dst_labels[mask].to_numpy(),
                    "protocol": flows["protocol"].astype("string")[mask].to_numpy(),
                    "port": flows["dst_port"][mask].to_numpy(),
                }
            ).drop_duplicates()
        )
        if len(self._observed) > 16:
            self._observed = [pd.concat(self._observed, ignore_index=True).drop_duplicates()]

        c = self.counts
        c["records"] += len(flows)
        c["records_checked"] += int(len(rows))
        c["flows_checked"] += int(counts_col[rows].sum())
        c["records_reply"] += int(is_reply.sum())
        c["records_denied_verdict"] += int((denied_verdict & ~is_reply).sum())
        c["records_unresolved"] += int((unresolved & ~is_reply & ~denied_verdict).sum())
        c["records_host"] += int((host & ~unresolved & ~is_reply & ~denied_verdict).sum())
        c["to_services"] += int(to_services.sum())
        return rows, codes

    def report(self, *, over_permissive: bool, max_workloads: int) -> VerificationReport:
        """The report on every chunk added (``flow_allowed`` left empty)."""
        ev, cluster = self.ev, self.cluster
        if not self._edges:  # no chunk at all
            self.add(empty_flows(), np.zeros(0, dtype=bool))
        warnings: list[str] = []
        if ev.uses_namespace_labels and not cluster.namespace_labels:
            warnings.append(
                "policies select namespaces by labels other than kubernetes.io/metadata.name, "
                "but no namespace labels are known: such peers match nothing (pass -i INVENTORY)"
            )
        to_services = self.counts["to_services"]
        if to_services:
            warnings.append(
                f"{to_services} checked records go to Service addresses: NetworkPolicy sees the "
                "backend pod after DNAT, so these are matched as plain addresses (pass -i "
                "INVENTORY when reading flows so that they resolve to pods)"
            )
        if ev.uses_named_ports and not cluster.has_named_ports:
            warnings.append(
                "policies use named ports but no inventory declares any: "
                "named-port rules match nothing (pass -i INVENTORY)"
            )
        edges = _combine_edges(self._edges) if len(self._edges) != 1 else self._edges[0]
        named_profiles = self.named_profiles
        profiles = edges.pop("profile").tolist() if self.with_profiles else [0] * len(edges)
        edges["dst_named_ports"] = pd.Series(
            [named_profiles[p] for p in profiles], index=edges.index, dtype=object
        )
        src_keys, dst_keys = edge_keys(edges)
        verdicts = evaluate_edges(edges, ev, (src_keys, dst_keys))
        for column in verdicts.columns:
            edges[column] = verdicts[column].to_numpy()

        denied, isolation = _denied_tables(edges, src_keys, dst_keys, ev)
        rules = rule_usage(edges, ev, (src_keys, dst_keys))
        n_edges = len(edges)
        c = self.counts
        counts = {
            "records": c["records"],
            "records_checked": c["records_checked"],
            "flows_checked": c["flows_checked"],
            "flows_allowed": int(edges.loc[edges["allowed"], "flows"].sum()),
            "flows_denied": int(edges.loc[~edges["allowed"], "flows"].sum()),
            "edges_checked": n_edges,
            "edges_allowed": int(edges["allowed"].sum()),
            "edges_denied": int((~edges["allowed"]).sum()),
            "records_reply": c["records_reply"],
            "records_denied_verdict": c["records_denied_verdict"],
            "records_unresolved": c["records_unresolved"],
            "records_host": c["records_host"],
            "rules": len(rules),
            "rules_unused": int((rules["flows"] == 0).sum()),
        }
        over = _empty_over_permissive()
        if over_permissive:
            observed = (
                pd.concat(self._observed, ignore_index=True).drop_duplicates()
                if self._observed
                else pd.DataFrame(columns=["ns", "labels", "protocol", "port"])
            )
            over, over_counts = _over_permissiveness(
                ev, cluster, edges, observed, max_workloads, warnings
            )
            counts.update(over_counts)
        return VerificationReport(
            edges=edges,
            denied=denied,
            isolation=isolation,
            over_permissive=over,
            flow_allowed=pd.Series([], dtype="boolean"),
            counts=counts,
            rules=rules,
            warnings=warnings,
        )


def _combine_edges(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Partial edge tables (:func:`_reduce_to_edges`) of consecutive chunks -> one, in order of
    first appearance, with ``flows`` and ``records`` summed."""
    frame = pd.concat(parts, ignore_index=True)
    if not len(frame):
        return frame
    keys = [c for c in frame.columns if c not in ("flows", "records")]
    codes = group_ids([frame[c] for c in keys])
    n_edges = int(codes.max()) + 1
    _, first = np.unique(codes, return_index=True)
    out = frame.iloc[first].reset_index(drop=True)
    for counter in ("flows", "records"):
        weights = frame[counter].to_numpy(dtype=np.int64)
        out[counter] = np.bincount(codes, weights=weights, minlength=n_edges).astype(np.int64)
    return out


def verify_files(
    flow_sources: Iterable[Source],
    policy_path: str | os.PathLike[str],
    inventories: Sequence[str | Path] = (),
    *,
    format: str = "auto",
    strict: bool = False,
    over_permissive: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_chunk: Callable[[str, int], None] | None = None,
    flow_allowed: bool = False,
    workers: int | None = None,
    engine: str = "pandas",
    scheduler: str | None = None,
) -> VerificationReport:
    """Read flow files, policies and inventories, then :func:`verify` (``netpolgen verify``).

    Notes from reading the policies (skipped documents) become report warnings; the ingest
    accounting is in ``report.ingest``.

    The flows are streamed (as by ``from-flows``): each chunk is resolved and reduced to its
    checked edges before the next is read, so memory follows the distinct edges, not the size of
    the input; the report is the same as :func:`verify` over ``load_flows``, except that
    ``flow_allowed`` (one value per input row) is empty unless ``flow_allowed`` is true, which
    loads every flow instead.

    Args:
        flow_sources: flow files, ``-`` for standard input, or open binary files.
        policy_path: a YAML file or a directory of them.
        inventories: inventory snapshot files.
        format: ``auto`` or a flow format name.
        strict: make the first malformed record an error.
        over_permissive: also list allowed but unused combinations.
        max_line_bytes: lines longer than this (line-based formats) are skipped and counted.
        on_chunk: called as ``on_chunk(source, rows)`` after each chunk read (progress; a
            second pass, when reply inference needs one, is reported again).
        flow_allowed: fill ``report.flow_allowed`` (loads every flow into memory).
        workers: processes that parse big files in parallel (None: one per core; see
            ``netpolgen.ingest.parallel``).
        engine: ``pandas``, or ``dask``: the files (paths, globs, fsspec URLs) are read on a
            Dask cluster, the scheduler at ``scheduler`` or a local one (same report).

    Examples:
        >>> report = verify_files(["flows.csv"], "policies/")  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    notes: list[str] = []
    policies = load_policies(policy_path, notes=notes)
    ingest = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    if flow_allowed and engine == "dask":
        raise NetpolgenError("flow_allowed needs every flow in memory: use the pandas engine")
    if flow_allowed:
        flows = load_flows(list(flow_sources), format, report=ingest, on_chunk=on_chunk)
        inventory = load_inventory(list(inventories)) if inventories else None
        if inventory is not None:
            ingest.messages.extend(inventory.warnings)
            # Addresses become pods, services and nodes at each flow's time, as for from-flows.
            flows = resolve_flows(flows, inventory, report=ingest)
        report = verify(flows, policies, inventory, over_permissive=over_permissive)
    else:
        inventory = load_inventory(list(inventories)) if inventories else None
        report = _verify_stream(
            list(flow_sources), policies, inventory, ingest, format=format,
            over_permissive=over_permissive, workers=workers, on_chunk=on_chunk, engine=engine,
            scheduler=scheduler,
        )  # fmt: skip
    report.warnings[:0] = notes
    report.ingest = ingest
    return report


def _verify_stream(
    sources: list[Source],
    policies: Sequence[Policy],
    inventory: Inventory | None,
    ingest: IngestReport,
    *,
    format: str,
    over_permissive: bool,
    workers: int | None,
    on_chunk: Callable[[str, int], None] | None = None,
    engine: str = "pandas",
    scheduler: str | None = None,
) -> VerificationReport:
    """:func:`verify` over the flows of ``sources``, chunk by chunk (:func:`verify_chunks`),
    read in this process (and its workers) or on a Dask cluster (``engine``)."""
    from netpolgen.ingest.parallel import chunk_reader, spooled
    from netpolgen.pipeline import STREAM_CHUNK_SIZE
    from netpolgen.resolve import Resolver

    resolver = Resolver(inventory) if inventory is not None else None
    if engine == "dask":
        from netpolgen.engine.dask import dask_chunk_reader

        names = [str(source) for source in sources]
        with dask_chunk_reader(
            names, format, resolver=resolver, on_chunk=on_chunk, scheduler=scheduler,
            chunk_size=STREAM_CHUNK_SIZE,
        ) as chunks:  # fmt: skip
            report = verify_chunks(
                chunks, policies, inventory, ingest, over_permissive=over_permissive
            )
    else:
        with spooled(sources) as paths:
            chunks = chunk_reader(
                paths, format, chunk_size=STREAM_CHUNK_SIZE, workers=workers, resolver=resolver,
                on_chunk=on_chunk,
            )  # fmt: skip
            report = verify_chunks(
                chunks, policies, inventory, ingest, over_permissive=over_permissive
            )
    if inventory is not None:
        ingest.messages.extend(inventory.warnings)  # after the reading's, as load_flows has it
    if resolver is not None:
        resolver.report_to(ingest)
    return report


def verify_chunks(
    read: Callable[[IngestReport], Iterator[pd.DataFrame]],
    policies: Sequence[Policy],
    inventory: InventoryLike,
    ingest: IngestReport,
    *,
    over_permissive: bool = True,
    max_workloads: int = 2000,
) -> VerificationReport:
    """:func:`verify` over the chunks that ``read(report)`` yields (the same each time it is
    called: it may be called twice), without ``flow_allowed``; ``ingest`` receives the
    accounting of the pass that produced the result.

    Replies are inferred across chunks by :class:`netpolgen.stream.ReplyTracker`, as from-flows
    does; input far out of time order is read twice (collect, then decide), still exact.
    """
    from netpolgen.stream import InputOutOfOrder, ReplyTracker

    cluster = ClusterView.from_inventory(inventory)
    ev = Evaluator(policies, cluster.namespace_labels)

    def run(tracker: ReplyTracker, attempt: IngestReport) -> _Checker:
        checker = _Checker(ev, cluster)
        offset = 0
        for chunk in read(attempt):
            validate_flows(chunk)
            is_reply = tracker.mark(chunk, offset).to_numpy(dtype=bool)
            offset += len(chunk)
            checker.add(chunk, is_reply)
        return checker

    attempt = ingest.fresh()
    try:
        checker = run(ReplyTracker(), attempt)
    except InputOutOfOrder:
        tracker = ReplyTracker()
        tracker.mode = "collect"
        offset = 0
        for chunk in read(ingest.fresh()):
            tracker.mark(chunk, offset)
            offset += len(chunk)
        tracker.mode = "decide"
        attempt = ingest.fresh()
        checker = run(tracker, attempt)
    ingest.merge(attempt)
    return checker.report(over_permissive=over_permissive, max_workloads=max_workloads)


def _reduce_to_edges(
    key_columns: Sequence[pd.Series], rows: np.ndarray, counts: np.ndarray, port_dtype: Any
) -> tuple[pd.DataFrame, np.ndarray]:
    """Group the ``rows`` of a flow table by ``key_columns``, vectorised.

    Returns the edge table (the first ``len(EDGE_KEY)`` key columns under their names, then
    ``profile`` if a ninth key column was given, ``flows`` and ``records``) and, per row in
    ``rows``, its edge number.
    """
    sub = [c.iloc[rows].reset_index(drop=True) for c in key_columns]
    if len(rows):
        codes = group_ids(sub)
        n_edges = int(codes.max()) + 1
        _, first = np.unique(codes, return_index=True)
    else:
        codes = np.zeros(0, dtype=np.int64)
        n_edges = 0
        first = np.zeros(0, dtype=np.int64)
    edges = pd.DataFrame({name: sub[i].iloc[first].to_numpy() for i, name in enumerate(EDGE_KEY)})
    for name in EDGE_KEY:
        edges[name] = edges[name].astype(port_dtype if name == "dst_port" else "string")
    if len(sub) > len(EDGE_KEY):
        edges["profile"] = sub[len(EDGE_KEY)].iloc[first].to_numpy().astype(np.int64)
    edges["flows"] = np.bincount(codes, weights=counts[rows], minlength=n_edges).astype(np.int64)
    edges["records"] = np.bincount(codes, minlength=n_edges).astype(np.int64)
    return edges, codes


def _named_port_profiles(
    flows: pd.DataFrame, dst_ns: pd.Series, cluster: ClusterView, profiles: list[NamedPorts]
) -> pd.Series:
    """Per row, an index into ``profiles``: the destination pod's named ports (0 = none)."""
    index: dict[NamedPorts, int] = {(): 0}
    by_pod: dict[str, int] = {}
    by_ip: dict[str, int] = {}
    for pod in cluster.pods:
        if pod.named_ports not in index:
            index[pod.named_ports] = len(profiles)
            profiles.append(pod.named_ports)
        by_pod[f"{pod.namespace}/{pod.name}"] = index[pod.named_ports]
        for ip in pod.ips:
            by_ip[ip] = index[pod.named_ports]
    # Resolve by pod name when the flow names the pod, else by the destination IP.
    named_pod = (dst_ns + "/" + flows["dst_pod"]).map(by_pod)
    by_address = flows["dst_ip"].map(by_ip)
    result = named_pod.fillna(by_address).fillna(0).where(dst_ns.notna(), 0)
    return result.astype(np.int64)


def _denied_tables(
    edges: pd.DataFrame, src_keys: list[EndpointKey], dst_keys: list[EndpointKey], ev: Evaluator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    mask = ~edges["allowed"].to_numpy()
    positions = np.flatnonzero(mask)
    if not len(positions):
        return _empty_denied(), pd.DataFrame(
            {"endpoint": [], "direction": [], "policies": []}, dtype="string"
        )
    rows = []
    isolation: dict[tuple[str, str], str] = {}
    stable_cache: dict[str, str] = {}

    def stable(labels: Any) -> Any:
        if labels is None or pd.isna(labels):
            return labels
        if labels not in stable_cache:
            stable_cache[labels] = stable_labels(str(labels))
        return stable_cache[labels]

    picked = edges.iloc[positions]
    columns = {c: picked[c].tolist() for c in picked.columns}
    for j, i in enumerate(positions.tolist()):
        # Workloads: namespace and stable labels, so replicas of every revision group together.
        src_name = describe_endpoint(
            columns["src_namespace"][j], stable(columns["src_labels"][j]), columns["src_ip"][j]
        )
        dst_name = describe_endpoint(
            columns["dst_namespace"][j], stable(columns["dst_labels"][j]), columns["dst_ip"][j]
        )
        blocked = []
        egress_policies = ingress_policies = ""
        if not columns["egress_allowed"][j]:
            blocked.append("egress")
            egress_policies = ", ".join(ev.isolating_names(src_keys[i], EGRESS))
            isolation[(src_name, "egress")] = egress_policies
        if not columns["ingress_allowed"][j]:
            blocked.append("ingress")
            ingress_policies = ", ".join(ev.isolating_names(dst_keys[i], INGRESS))
            isolation[(dst_name, "ingress")] = ingress_policies
        rows.append(
            {
                "src": src_name,
                "dst": dst_name,
                "protocol": columns["protocol"][j],
                "dst_port": columns["dst_port"][j],
                "flows": int(columns["flows"][j]),
                "edges": 1,
                "blocked_by": "+".join(blocked),
                "egress_policies": egress_policies,
                "ingress_policies": ingress_policies,
            }
        )
    frame = pd.DataFrame(rows)
    frame["dst_port"] = pd.array(
        [None if v is None or pd.isna(v) else int(v) for v in frame["dst_port"]], dtype="UInt16"
    )
    # Edges that differ only in the destination's named-port profile fold into one row.
    denied = (
        frame.groupby(
            [
                "src",
                "dst",
                "protocol",
                "dst_port",
                "blocked_by",
                "egress_policies",
                "ingress_policies",
            ],
            dropna=False,
            sort=True,
        )[["flows", "edges"]]
        .sum()
        .reset_index()
        .sort_values(["flows", "src", "dst"], ascending=[False, True, True], kind="stable")
        .reset_index(drop=True)
    )
    denied = denied[
        ["src", "dst", "protocol", "dst_port", "flows", "edges", "blocked_by",
         "egress_policies", "ingress_policies"]
    ]  # fmt: skip
    iso = pd.DataFrame(
        [{"endpoint": k[0], "direction": k[1], "policies": v} for k, v in sorted(isolation.items())]
    )
    return denied, iso


def _empty_denied() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "src": pd.Series(dtype="string"),
            "dst": pd.Series(dtype="string"),
            "protocol": pd.Series(dtype="string"),
            "dst_port": pd.Series(dtype="UInt16"),
            "flows": pd.Series(dtype="int64"),
            "edges": pd.Series(dtype="int64"),
            "blocked_by": pd.Series(dtype="string"),
            "egress_policies": pd.Series(dtype="string"),
            "ingress_policies": pd.Series(dtype="string"),
        }
    )


OVER_COLUMNS = ["src_namespace", "src_labels", "dst_namespace", "dst_labels", "protocol", "port"]


def _empty_over_permissive() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "port" else "string")
                         for c in OVER_COLUMNS})  # fmt: skip


@dataclass(frozen=True)
class Workload:
    """A known workload for over-permissiveness and diffs: namespace and stable labels."""

    namespace: str
    labels: str
    named_ports: NamedPorts = ()
    ports: tuple[tuple[str, int], ...] = ()

    @property
    def key(self) -> EndpointKey:
        return (self.namespace, labels_from_canonical(self.labels), None)


def workloads_from_cluster(cluster: ClusterView) -> dict[tuple[str, str], Workload]:
    """Group the cluster's pods (hostNetwork ones excepted) into workloads."""
    grouped: dict[tuple[str, str], tuple[set[tuple[str, str, int]], set[tuple[str, int]]]] = {}
    for pod in cluster.pods:
        if pod.host_network:
            continue
        named, declared = grouped.setdefault((pod.namespace, pod.workload_labels), (set(), set()))
        named.update(pod.named_ports)
        declared.update(pod.container_ports)
    return {
        key: Workload(key[0], key[1], tuple(sorted(named)), tuple(sorted(declared)))
        for key, (named, declared) in sorted(grouped.items())
    }


def _over_permissiveness(
    ev: Evaluator,
    cluster: ClusterView,
    edges: pd.DataFrame,
    observed: pd.DataFrame,
    max_workloads: int,
    warnings: list[str],
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``observed``: the distinct ``ns, labels, protocol, port`` of the destination workloads in
    non-reply flows (allowed or not), as :class:`_Checker` collects them."""
    workloads = workloads_from_cluster(cluster)
    if not workloads:
        seen: set[tuple[str, str]] = set()
        for side in ("src", "dst"):
            pods = edges[edges[f"{side}_namespace"].notna()]
            pairs = pods[[f"{side}_namespace", f"{side}_labels"]].drop_duplicates()
            for ns, labels in pairs.itertuples(index=False):
                seen.add((str(ns), stable_labels(str(labels))))
        workloads = {k: Workload(*k) for k in sorted(seen)}
    if len(workloads) > max_workloads:
        warnings.append(
            f"over-permissiveness skipped: {len(workloads)} workloads (limit {max_workloads})"
        )
        return _empty_over_permissive(), {}

    ports: dict[tuple[str, str], set[tuple[str, int]]] = {
        k: set(w.ports) for k, w in workloads.items()
    }
    for ns, labels, protocol, port in observed.itertuples(index=False):
        key = (str(ns), stable_labels(str(labels)))
        if key in ports:
            ports[key].add((str(protocol), int(port)))

    used: set[tuple[str, str, str, str, str, int]] = set()
    pods_edges = edges[edges["src_namespace"].notna() & edges["dst_namespace"].notna()]
    pods_edges = pods_edges[pods_edges["dst_port"].notna()]
    distinct = pods_edges[
        ["src_namespace", "src_labels", "dst_namespace", "dst_labels", "protocol", "dst_port"]
    ].drop_duplicates()
    for sn, sl, dn, dl, protocol, port in distinct.itertuples(index=False):
        used.add(
            (str(sn), stable_labels(str(sl)), str(dn), stable_labels(str(dl)),
             str(protocol), int(port))
        )  # fmt: skip

    rows = []
    allowed_count = 0
    for src in workloads.values():
        for dst_key, dst in workloads.items():
            for protocol, port in sorted(ports[dst_key]):
                egress, ingress = ev.allows(src.key, dst.key, protocol, port, dst.named_ports)
                if not (egress and ingress):
                    continue
                allowed_count += 1
                if (src.namespace, src.labels, dst.namespace, dst.labels, protocol, port) in used:
                    continue
                rows.append((src.namespace, src.labels, dst.namespace, dst.labels, protocol, port))
    over = pd.DataFrame(rows, columns=OVER_COLUMNS) if rows else _empty_over_permissive()
    if rows:
        for column in OVER_COLUMNS[:-1]:
            over[column] = over[column].astype("string")
        over["port"] = over["port"].astype("int64")
    return over, {
        "workloads": len(workloads),
        "combinations_checked": sum(len(ports[k]) for k in workloads) * len(workloads),
        "combinations_allowed": allowed_count,
        "combinations_unused": len(rows),
    }


# --- rendering ---------------------------------------------------------------------------------

ReportFormat = Literal["table", "json", "markdown"]


def format_report(report: VerificationReport, fmt: str = "table", *, limit: int = 50) -> str:
    """Render a report as plain text tables, JSON, or Markdown.

    Args:
        report: the report to render.
        fmt: ``table``, ``json`` or ``markdown``.
        limit: at most this many rows per table in text and Markdown (JSON has them all).

    Examples:
        >>> print(format_report(verify(flows, policies), "markdown"))  # doctest: +SKIP
    """
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False, default=str) + "\n"
    markdown = fmt == "markdown"
    parts = []
    if markdown:
        parts.append("# netpolgen verify\n")
        parts.append("```\n" + report.summary() + "\n```\n")
    else:
        parts.append(report.summary() + "\n")
    for warning in report.warnings:
        parts.append(("- warning: " if markdown else "warning: ") + warning + "\n")
    sections = [
        ("Denied flows (by workload pair and port)", report.denied),
        ("Policies isolating denied endpoints", report.isolation),
        ("Policy rules that admitted no observed flow", report.rules[report.rules["flows"] == 0]),
        ("Allowed but never used (over-permissive)", report.over_permissive),
    ]
    for title, frame in sections:
        if frame.empty:
            continue
        parts.append(("\n## " if markdown else "\n") + title + ("\n" if markdown else ":\n"))
        parts.append(render_table(frame, markdown=markdown, limit=limit))
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


def render_table(frame: pd.DataFrame, *, markdown: bool = False, limit: int = 50) -> str:
    """A DataFrame as an aligned text table or a Markdown table (first ``limit`` rows)."""
    shown = frame.head(limit)
    header = [str(c) for c in shown.columns]
    body = [
        ["" if pd.isna(v) else str(v) for v in row]
        for row in shown.astype(object).itertuples(index=False)
    ]
    more = f"... {len(frame) - limit} more rows\n" if len(frame) > limit else ""
    if markdown:

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in body]
        return "\n".join(lines) + "\n" + more
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines) + "\n" + more
