"""Generation under guardrails: denied connections are never allowed (:mod:`.guardrails`).

Two steps, both only when ``--guardrails`` is given:

1. :class:`GuardrailFilter` drops the observed edges a ``deny`` entry covers before synthesis
   (``finish_edges`` calls it, so the records behind them are counted as filtered, ``denied by a
   guardrail``), with one warning per entry that matched, naming an example connection.
2. :func:`enforce_guardrails` checks the synthesized policies against the endpoints generation
   knows (the pods of the flows and the inventory, and the pods each peer selector names): a rule
   that still reaches a denied pair (the DNS rule, a workload selector that also selects pods the
   entry names, a block over a denied network) loses that peer for the denied ports. The policies
   may then allow less than was observed, never more than the guardrails let through; each such
   cut is a warning.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from netpolgen.labels import labels_from_canonical
from netpolgen.policy.guardrails import (
    DNS_NAMESPACE,
    GUARDRAIL_PROTOCOLS,
    Guardrail,
    Guardrails,
    PortRange,
)
from netpolgen.policy.model import IPBlock, Peer, Policy, PortSpec, Rule
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelSelector

GUARDRAIL_REASON = "denied by a guardrail"
GUARDRAILS_ANNOTATION = "netpolgen.io/guardrails"
DNS_ANNOTATION = "netpolgen.io/dns"
_MAX_PORT = 65535


@dataclass(frozen=True)
class KnownPod:
    """A pod generation knows of: its namespace and labels."""

    namespace: str
    labels: tuple[tuple[str, str], ...]


def _key_pod(key: str) -> KnownPod | None:
    if not key.startswith("pod:"):
        return None
    namespace, _, labels = key[4:].partition("/")
    return KnownPod(namespace, labels_from_canonical(labels))


def _side_matches(guardrail: Guardrail, side: str, key: str, guardrails: Guardrails) -> bool:
    target = guardrail.source if side == "src" else guardrail.target
    pod = _key_pod(key)
    if pod is None:
        return key.startswith("ip:") and target.matches_address(key[3:])
    return target.matches_pod(pod.namespace, dict(pod.labels), guardrails.labels_of(pod.namespace))


@dataclass(frozen=True)
class GuardrailFilter:
    """The ``deny`` entries as an edge exclusion (:class:`netpolgen.reduce.edges.EdgeExclusion`)."""

    guardrails: Guardrails
    reason: str = GUARDRAIL_REASON

    def excluded(self, edges: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """Which edges a ``deny`` entry covers, and a warning per entry that covered some."""
        mask = np.zeros(len(edges), dtype=bool)
        messages: list[str] = []
        if not len(edges) or not self.guardrails.deny:
            return mask, messages
        protocol = edges["protocol"].astype("string").fillna("")
        port = pd.to_numeric(edges["dst_port"], errors="coerce").fillna(-1).to_numpy()
        # Match per distinct endpoint key (a few hundred), then take per edge.
        src_keys = edges["src"].astype(str)
        dst_keys = edges["dst"].astype(str)
        for guardrail in self.guardrails.deny:
            src = src_keys.map(
                {k: _side_matches(guardrail, "src", k, self.guardrails) for k in src_keys.unique()}
            ).to_numpy(dtype=bool)
            dst = dst_keys.map(
                {k: _side_matches(guardrail, "dst", k, self.guardrails) for k in dst_keys.unique()}
            ).to_numpy(dtype=bool)
            hit = src & dst
            if guardrail.ports:
                ports = np.zeros(len(edges), dtype=bool)
                for item in guardrail.ports:
                    ports |= (protocol == item.protocol).to_numpy(dtype=bool) & (
                        (port >= item.first) & (port <= item.last)
                    )
                hit &= ports
            new = hit & ~mask
            if new.any():
                first = edges[new].iloc[0]
                flows = int(edges.loc[new, "count"].sum())
                example = (
                    f"{_readable(first['src'])} -> {_readable(first['dst'])} {first['protocol']}"
                    + ("" if pd.isna(first["dst_port"]) else f"/{int(first['dst_port'])}")
                )
                messages.append(
                    f"guardrail {guardrail.describe()} in {self.guardrails.source}: "
                    f"{int(new.sum())} observed connection(s), {flows} flow(s), denied and left "
                    f"out of the policies (e.g. {example})"
                )
            mask |= hit
        return mask, messages


def _readable(key: str) -> str:
    return key[4:] if key.startswith("pod:") else key[3:]


# --- the synthesized policies ------------------------------------------------------------------


def known_pods(
    pods: pd.DataFrame, inventory_pods: pd.DataFrame | None, policies: Iterable[Policy]
) -> list[KnownPod]:
    """The pods generation knows of: the flows' (raw labels), the inventory's, and for each pod
    peer of ``policies`` naming one namespace by ``matchLabels`` the least pod it selects (the
    cluster resolver of the DNS rule, say, which the flows may never show)."""
    found: set[KnownPod] = set()
    for frame, column in ((pods, "raw_labels"), (inventory_pods, "labels")):
        if frame is None or frame.empty:
            continue
        distinct = frame[["namespace", column]].dropna(subset=["namespace"]).drop_duplicates()
        for namespace, labels in distinct.itertuples(index=False):
            found.add(KnownPod(str(namespace), labels_from_canonical(str(labels or ""))))
    for policy in policies:
        for rule in policy.ingress + policy.egress:
            for peer in rule.peers:
                namespace = _peer_namespace(peer, policy.namespace)
                if (
                    peer.pod_selector is not None
                    and namespace
                    and not peer.pod_selector.match_expressions
                ):
                    found.add(KnownPod(namespace, peer.pod_selector.match_labels))
    return sorted(found, key=lambda p: (p.namespace, p.labels))


def _peer_namespace(peer: Peer, own: str) -> str | None:
    if peer.ip_block is not None:
        return None
    if peer.namespace_selector is None:
        return own
    labels = dict(peer.namespace_selector.match_labels)
    if set(labels) == {NAMESPACE_NAME_LABEL} and not peer.namespace_selector.match_expressions:
        return labels[NAMESPACE_NAME_LABEL]
    return None


class _Known:
    """The known pods indexed for the checks: by namespace, and per deny entry and side the
    pods it names (computed once, not once per policy and peer)."""

    def __init__(self, known: Sequence[KnownPod], guardrails: Guardrails) -> None:
        self.guardrails = guardrails
        self.by_namespace: dict[str, list[KnownPod]] = {}
        for pod in known:
            self.by_namespace.setdefault(pod.namespace, []).append(pod)
        self.named: dict[tuple[int, str], frozenset[KnownPod]] = {}
        for index, guardrail in enumerate(guardrails.deny):
            for side, target in (("source", guardrail.source), ("target", guardrail.target)):
                self.named[(index, side)] = frozenset(
                    p
                    for p in known
                    if target.matches_pod(
                        p.namespace, dict(p.labels), guardrails.labels_of(p.namespace)
                    )
                )
        self._peers: dict[tuple[Peer, str], frozenset[KnownPod]] = {}
        self._selected: dict[tuple[str, LabelSelector | None], list[KnownPod]] = {}
        # Per direction, every pod some deny entry names on the side a policy of that
        # direction selects: a policy selecting none of them needs no look at its peers.
        self.exposed = {
            direction: frozenset().union(
                *(self.named[(i, side)] for i in range(len(guardrails.deny)))
            )
            for direction, side in (("egress", "source"), ("ingress", "target"))
        }

    def selected(self, namespace: str, selector: LabelSelector | None) -> list[KnownPod]:
        key = (namespace, selector)
        if key not in self._selected:
            pods = self.by_namespace.get(namespace, [])
            self._selected[key] = (
                pods if selector is None else [p for p in pods if selector.matches(dict(p.labels))]
            )
        return self._selected[key]

    def peer_pods(self, peer: Peer, own: str) -> frozenset[KnownPod]:
        """The known pods a pod peer of a policy in namespace ``own`` selects."""
        key = (peer, own)
        if key not in self._peers:
            if peer.namespace_selector is None:
                namespaces = [own]
            else:
                namespaces = [
                    ns
                    for ns in self.by_namespace
                    if peer.namespace_selector.matches(
                        {**self.guardrails.labels_of(ns), NAMESPACE_NAME_LABEL: ns}
                    )
                ]
            self._peers[key] = frozenset(
                p for ns in namespaces for p in self.selected(ns, peer.pod_selector)
            )
        return self._peers[key]


def _block_meets(block: IPBlock, networks: Iterable[str]) -> bool:
    """Whether ``block`` (outside its excepts) shares an address with one of ``networks``."""
    cidr = ipaddress.ip_network(block.cidr, strict=False)
    excepts = [ipaddress.ip_network(c, strict=False) for c in block.except_]
    for text in networks:
        network = ipaddress.ip_network(text, strict=False)
        if network.version != cidr.version or not network.overlaps(cidr):
            continue
        inner = network if network.subnet_of(cidr) else cidr  # type: ignore[arg-type]
        if not any(inner.version == e.version and inner.subnet_of(e) for e in excepts):  # type: ignore[arg-type]
            return True
    return False


def _denied_ports(
    policy: Policy, direction: str, peer: Peer, subject: frozenset[KnownPod], known: _Known
) -> tuple[list[Guardrail], tuple[PortRange, ...] | None]:
    """The deny entries a rule peer reaches, and their ports (None: every port)."""
    peer_pods = (
        frozenset() if peer.ip_block is not None else known.peer_pods(peer, policy.namespace)
    )
    hits: list[Guardrail] = []
    for index, guardrail in enumerate(known.guardrails.deny):
        ours, theirs = ("source", "target") if direction == "egress" else ("target", "source")
        if subject.isdisjoint(known.named[(index, ours)]):
            continue
        if peer.ip_block is not None:
            side = guardrail.target if theirs == "target" else guardrail.source
            reached = side.is_networks and _block_meets(peer.ip_block, side.networks)
        else:
            reached = not peer_pods.isdisjoint(known.named[(index, theirs)])
        if reached:
            hits.append(guardrail)
    return _ports_of(hits)


def _ports_of(hits: list[Guardrail]) -> tuple[list[Guardrail], tuple[PortRange, ...] | None]:
    if not hits:
        return [], ()
    if any(not g.ports for g in hits):
        return hits, None
    return hits, tuple(dict.fromkeys(r for g in hits for r in g.ports))


def subtract_ports(
    ports: tuple[PortSpec, ...], denied: tuple[PortRange, ...] | None
) -> tuple[PortSpec, ...] | None:
    """``ports`` (empty: every port of every protocol) less ``denied`` (None: every port);
    None when nothing is left. A named port of a protocol with denied ports is dropped (its
    number is the destination pod's to say)."""
    if denied is None:
        return None
    if not denied:
        return ports
    specs = ports or tuple(PortSpec(p) for p in GUARDRAIL_PROTOCOLS)
    out: list[PortSpec] = []
    for spec in specs:
        cuts = sorted((r.first, r.last) for r in denied if r.protocol == spec.protocol)
        if not cuts:
            out.append(spec)
            continue
        if isinstance(spec.port, str):
            continue
        low, high = (1, _MAX_PORT) if spec.port is None else (spec.port, spec.end_port or spec.port)
        for first, last in cuts:
            if last < low or first > high:
                continue
            if first > low:
                out.append(_range(spec.protocol, low, first - 1))
            low = max(low, last + 1)
            if low > high:
                break
        if low <= high:
            out.append(_range(spec.protocol, low, high))
    out = sorted(dict.fromkeys(out), key=lambda s: s.sort_key())
    return tuple(out) or None


def _range(protocol: str, low: int, high: int) -> PortSpec:
    if (low, high) == (1, _MAX_PORT):
        return PortSpec(protocol)
    return PortSpec(protocol, low) if low == high else PortSpec(protocol, low, high)


def enforce_guardrails(
    policies: Iterable[Policy], guardrails: Guardrails, known: Sequence[KnownPod]
) -> tuple[list[Policy], list[str]]:
    """``policies`` with every peer cut that reaches a pair a ``deny`` entry forbids (see the
    module docstring), and a warning per cut."""
    out: list[Policy] = []
    warnings: list[str] = []
    index = _Known(known, guardrails)
    for policy in policies:
        subject = frozenset(index.selected(policy.namespace, policy.pod_selector))
        changed = False
        dns_cut = False
        notes: list[str] = []
        sections: dict[str, tuple[Rule, ...]] = {}
        for direction, rules in (("ingress", policy.ingress), ("egress", policy.egress)):
            if subject.isdisjoint(index.exposed[direction]):
                sections[direction] = rules
                continue
            new_rules: list[Rule] = []
            for rule in rules:
                if not rule.peers:
                    # Every peer: reaches every denied pair the subject is part of.
                    peers: tuple[Peer, ...] = (Peer(),)
                else:
                    peers = rule.peers
                kept: list[Peer] = []
                cut: list[tuple[Peer, tuple[PortSpec, ...] | None, list[Guardrail]]] = []
                for peer in peers:
                    hits, denied = (
                        _denied_all(direction, subject, index)
                        if not rule.peers
                        else _denied_ports(policy, direction, peer, subject, index)
                    )
                    left = subtract_ports(rule.ports, denied) if hits else rule.ports
                    if left == rule.ports:  # no denied pair on these ports
                        kept.append(peer)
                        continue
                    cut.append((peer, left, hits))
                if not cut:
                    new_rules.append(rule)
                    continue
                changed = True
                if kept and rule.peers:
                    new_rules.append(Rule(tuple(kept), rule.ports))
                for peer, left, hits in cut:
                    names = ", ".join(g.name for g in hits)
                    what = f"{'egress to' if direction == 'egress' else 'ingress from'} " + (
                        "every peer" if not rule.peers else _peer_text(peer)
                    )
                    note = (
                        f"{what} removed by guardrail {names}"
                        if left is None
                        else f"{what} narrowed to {', '.join(_port_text(p) for p in left)} by "
                        f"guardrail {names}"
                    )
                    notes.append(note)
                    if _peer_namespace(peer, policy.namespace) == DNS_NAMESPACE:
                        dns_cut = True
                    if left is not None:
                        new_rules.append(Rule((peer,) if rule.peers else (), left))
            sections[direction] = tuple(sorted(new_rules, key=lambda r: r.sort_key()))
        if changed:
            annotations = dict(policy.annotations)
            annotations[GUARDRAILS_ANNOTATION] = "; ".join(notes)
            if dns_cut and DNS_ANNOTATION in annotations:
                annotations[DNS_ANNOTATION] = (
                    "egress to the cluster resolver is denied by a guardrail"
                )
            policy = replace(
                policy,
                ingress=sections["ingress"],
                egress=sections["egress"],
                annotations=tuple(sorted(annotations.items())),
            )
            warnings += [f"{policy.namespace}/{policy.name}: {n}" for n in notes]
        out.append(policy)
    return out, warnings


def _denied_all(
    direction: str, subject: frozenset[KnownPod], known: _Known
) -> tuple[list[Guardrail], tuple[PortRange, ...] | None]:
    """A rule without peers reaches everyone: every deny entry whose subject side matches."""
    ours = "source" if direction == "egress" else "target"
    hits = [
        g
        for i, g in enumerate(known.guardrails.deny)
        if not subject.isdisjoint(known.named[(i, ours)])
    ]
    return _ports_of(hits)


def _peer_text(peer: Peer) -> str:
    if peer.ip_block is not None:
        return peer.ip_block.cidr
    parts = []
    if peer.namespace_selector is not None:
        parts.append(f"namespaces {peer.namespace_selector.describe()}")
    if peer.pod_selector is not None:
        parts.append(f"pods {peer.pod_selector.describe()}")
    return " ".join(parts)


def _port_text(spec: PortSpec) -> str:
    if spec.port is None:
        return f"{spec.protocol} (every port)"
    if spec.end_port is not None:
        return f"{spec.port}-{spec.end_port}/{spec.protocol}"
    return f"{spec.port}/{spec.protocol}"


def denied_networks(guardrails: Guardrails) -> tuple[str, ...]:
    """The networks of ``deny`` entries: widened blocks except them (``protected_networks``)."""
    return tuple(sorted({n for g in guardrails.deny for n in g.target.networks}))


def label_warnings(guardrails: Guardrails) -> list[str]:
    """A warning per ``deny`` entry that selects namespaces by labels other than their name
    while no inventory gave the namespaces' labels: it then matches no namespace."""
    if guardrails.namespace_labels:
        return []
    out = []
    for guardrail in guardrails.deny:
        for side in (guardrail.source, guardrail.target):
            keys = {k for k, _ in side.namespaces.match_labels} | {
                r.key for r in side.namespaces.match_expressions
            }
            if keys - {NAMESPACE_NAME_LABEL}:
                out.append(
                    f"guardrail {guardrail.name} in {guardrails.source} selects namespaces by "
                    "labels, which only an inventory (-i) gives: without one it matches none"
                )
                break
    return out
