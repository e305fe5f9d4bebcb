"""Semantic diff of two policy sets: which connections one allows and the other does not.

A text diff of YAML says little: reordered rules, a peer moved to another policy, or a selector
rewritten with ``matchExpressions`` change text but not behaviour, while one added ``podSelector``
key silently changes who may talk. This module compares *behaviour*: for every pair of known
workloads and every class of ports, it evaluates both sets with the evaluator of
:mod:`netpolgen.verify` and reports where they differ.

Ports are compared exactly, not by sampling: the numbers that appear in either set (``port``,
``endPort + 1``, and named ports resolved on each known workload) cut 1-65535 into intervals within
which every rule behaves the same, so one probe per interval decides the whole interval, per
protocol (TCP, UDP and SCTP, the protocols NetworkPolicy can name). Adjacent intervals with the
same outcome are merged in the report.

Known workloads come from an inventory (pods grouped by namespace and stable labels), else from
flows, else from the policies themselves (each ``podSelector`` with only ``matchLabels`` and a
known namespace stands for a workload with exactly those labels). Outside addresses are compared
the same way: the ``cidr`` and ``except`` entries of every ``ipBlock`` cut the IPv4 space (and
the IPv6 space, when a block is IPv6) into classes whose addresses every rule treats alike, and
each class is compared as a source (ingress) and a destination (egress) of every workload.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from netpolgen.check.edges import (
    Workload,
    make_evaluator,
    workloads_from_cluster,
    workloads_seen,
)
from netpolgen.check.tables import render_table, with_workload_names, workload_names
from netpolgen.cluster.inventory import Inventory, load_inventory
from netpolgen.cluster.view import ClusterView, InventoryLike, NamedPorts
from netpolgen.errors import NoPoliciesError
from netpolgen.labels import canonical_labels
from netpolgen.policy.cluster_eval import TieredEvaluator, cut_policies
from netpolgen.policy.cluster_model import ClusterPolicy
from netpolgen.policy.flavors.cilium_read import CiliumContext, entities_from_inventory
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator, Grant
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelSelector

__all__ = ["DIFF_PROTOCOLS", "PolicyDiff", "diff_files", "diff_policies", "format_diff"]

DIFF_PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_PORT = 65535
CHANGE_COLUMNS = [
    "change",
    "src_namespace",
    "src_labels",
    "src_addresses",
    "dst_namespace",
    "dst_labels",
    "dst_addresses",
    "protocol",
    "port_from",
    "port_to",
]


@dataclass
class PolicyDiff:
    """What differs between two policy sets.

    Attributes:
        changes: one row per (source, destination, protocol, port range) whose verdict
            differs: ``change`` is ``added`` (NEW allows it, OLD does not) or ``removed`` (OLD
            allows it, NEW does not). A side is a workload (``*_namespace``, ``*_labels``) or a
            range of outside addresses (``*_addresses``); see ``CHANGE_COLUMNS``.
        policies_added, policies_removed, policies_changed: ``namespace/name`` of policies
            present only in NEW, only in OLD, or in both with a different spec.
        workloads: how many workloads were compared, and from where (``workload_source``).
        warnings: caveats (e.g. workloads guessed from selectors).
        policies_loaded: how many policies OLD and NEW hold.

    Examples:
        >>> diff = diff_files("policies-old/", "policies-new/")  # doctest: +SKIP
        >>> diff.changes[diff.changes["change"] == "removed"]  # doctest: +SKIP
    """

    changes: pd.DataFrame
    policies_added: list[str]
    policies_removed: list[str]
    policies_changed: list[str]
    workloads: int
    workload_source: str
    warnings: list[str] = field(default_factory=list)
    # namespace/labels -> namespace/name, how the text report names workloads (check.tables).
    names: dict[str, str] = field(default_factory=dict)
    policies_loaded: tuple[int, int] = (0, 0)

    @property
    def same(self) -> bool:
        """True when both sets allow exactly the same connections between known workloads."""
        return self.changes.empty

    def summary(self) -> str:
        added = int((self.changes["change"] == "added").sum())
        removed = int((self.changes["change"] == "removed").sum())
        old, new = self.policies_loaded
        return (
            f"policies loaded: {old} old, {new} new; "
            f"{self.workloads} workloads compared (from {self.workload_source}): "
            f"{added} connection ranges newly allowed, {removed} no longer allowed; policies "
            f"{len(self.policies_added)} added, {len(self.policies_removed)} removed, "
            f"{len(self.policies_changed)} changed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "policies_loaded": {"old": self.policies_loaded[0], "new": self.policies_loaded[1]},
            "workloads": self.workloads,
            "workload_source": self.workload_source,
            "policies_added": self.policies_added,
            "policies_removed": self.policies_removed,
            "policies_changed": self.policies_changed,
            "warnings": self.warnings,
            "changes": [
                {str(k): (int(v) if str(k).startswith("port") else v) for k, v in row.items()}
                for row in self.changes.astype(object).to_dict(orient="records")
            ],
        }


def diff_policies(
    old: Sequence[Policy],
    new: Sequence[Policy],
    inventory: InventoryLike = None,
    *,
    flows: pd.DataFrame | None = None,
    protocols: Iterable[str] = DIFF_PROTOCOLS,
    old_cluster: Sequence[ClusterPolicy] = (),
    new_cluster: Sequence[ClusterPolicy] = (),
) -> PolicyDiff:
    """Compare what two policy sets allow between known workloads.

    Args:
        old: the policies before.
        new: the policies after.
        inventory: pods and namespaces (workloads, namespace labels, named ports).
        flows: a flow table whose pod endpoints are the workloads when there is no inventory.
        protocols: the protocols to compare.
        old_cluster, new_cluster: the ClusterNetworkPolicies of each side; with any, both sides
            are decided through the tiers (:mod:`netpolgen.policy.cluster_eval`).

    Returns:
        A :class:`PolicyDiff`; ``changes`` is empty when the sets behave the same.

    Examples:
        >>> diff_policies([], []).same
        True
    """
    cluster = ClusterView.from_inventory(inventory)
    warnings: list[str] = []
    workloads = workloads_from_cluster(cluster)
    source = "inventory"
    if not workloads and flows is not None:
        workloads = workloads_seen(flows)
        source = "flows"
    if not workloads:
        workloads = _workloads_from_policies([*old, *new])
        source = "policy selectors"
        if workloads:
            warnings.append(
                "no inventory: workloads were guessed from the policies' podSelectors "
                "(pass -i INVENTORY for an exact comparison)"
            )
    before = make_evaluator(old, cluster, old_cluster)
    after = make_evaluator(new, cluster, new_cluster)
    # The cluster policies' ports and networks cut the spaces too.
    cuts = [*old, *new, *cut_policies([*old_cluster, *new_cluster])]
    intervals = {
        protocol: _port_intervals(cuts, workloads.values(), protocol) for protocol in protocols
    }
    pods = [_Side(w.key, w.namespace, w.labels, None, w.named_ports) for w in workloads.values()]
    classes = _address_classes(cuts)

    def compare(src: _Side, dst: _Side) -> list[tuple[str, str, int, int]]:
        was_grants = before.pair_grants(src.key, dst.key)
        now_grants = after.pair_grants(src.key, dst.key)
        if was_grants == now_grants:
            return []  # the same grants allow the same ports: nothing to compare
        return [
            (protocol, change, low, high)
            for protocol, spans in intervals.items()
            for change, low, high in _changed_ranges(
                was_grants, now_grants, protocol, spans, dst.named_ports
            )
        ]

    rows: list[tuple[Any, ...]] = []

    def emit(src: _Side, dst: _Side, found: list[tuple[str, str, int, int]]) -> None:
        for protocol, change, low, high in found:
            rows.append((change, src.namespace, src.labels, src.addresses, dst.namespace,
                         dst.labels, dst.addresses, protocol, low, high))  # fmt: skip

    for src in pods:
        for dst in pods:
            emit(src, dst, compare(src, dst))
    for pod in pods:
        # Egress to and ingress from outside addresses; neighbouring classes with the same
        # changes are reported as one range.
        for outbound in (True, False):
            direction = EGRESS if outbound else INGRESS
            if _same_policies(before, after, pod.key, direction):
                continue  # outside addresses are never isolated: the pod's side decides alone
            run: tuple[list[tuple[str, str, int, int]], int, int, int] | None = None
            for version, low, high in classes:
                side = _Side((None, (), _address(version, low)), None, None, None, ())
                found = compare(pod, side) if outbound else compare(side, pod)
                if run is not None and run[0] == found and run[1] == version and run[3] + 1 == low:
                    run = (found, version, run[2], high)
                    continue
                if run is not None and run[0]:
                    _emit_range(emit, pod, outbound, run)
                run = (found, version, low, high)
            if run is not None and run[0]:
                _emit_range(emit, pod, outbound, run)
    changes = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    changes = changes.astype({c: "string" for c in CHANGE_COLUMNS[:8]})
    changes = changes.astype({"port_from": "int64", "port_to": "int64"})
    for ev in (before, after):
        if isinstance(ev, TieredEvaluator):
            warnings.extend(w for w in ev.warnings if w not in warnings)
    old_by: dict[tuple[str, str], object] = {(p.namespace, p.name): p for p in old}
    new_by: dict[tuple[str, str], object] = {(p.namespace, p.name): p for p in new}
    # Cluster-scoped objects under a name no namespace can have.
    old_by.update({("ClusterNetworkPolicy", p.name): p for p in old_cluster})
    new_by.update({("ClusterNetworkPolicy", p.name): p for p in new_cluster})
    return PolicyDiff(
        changes=changes,
        policies_added=[f"{n}/{m}" for n, m in sorted(new_by.keys() - old_by.keys())],
        policies_removed=[f"{n}/{m}" for n, m in sorted(old_by.keys() - new_by.keys())],
        policies_changed=[
            f"{n}/{m}"
            for n, m in sorted(old_by.keys() & new_by.keys())
            if old_by[(n, m)] != new_by[(n, m)]
        ],
        workloads=len(workloads),
        workload_source=source if workloads else "nowhere",
        names=workload_names(cluster),
        warnings=warnings,
        policies_loaded=(len(old) + len(old_cluster), len(new) + len(new_cluster)),
    )


def diff_files(
    old_path: str | os.PathLike[str],
    new_path: str | os.PathLike[str],
    inventories: Sequence[str | Path] = (),
) -> PolicyDiff:
    """Read two policy sets (files or directories) and :func:`diff_policies` them.

    Args:
        old_path: the policies in force (a YAML file or a directory of them).
        new_path: the proposed policies.
        inventories: inventory snapshots that list the workloads to compare.

    Returns:
        A :class:`PolicyDiff` (what ``netpolgen diff`` prints).

    Examples:
        >>> print(format_diff(diff_files("old/", "new/")))  # doctest: +SKIP
    """
    notes: list[str] = []
    inventory = load_inventory(list(inventories)) if inventories else None
    cilium = _cilium_context(inventory)
    old_cluster: list[ClusterPolicy] = []
    new_cluster: list[ClusterPolicy] = []
    old = load_policies(old_path, notes=notes, cilium=cilium, cluster=old_cluster)
    new = load_policies(new_path, notes=notes, cilium=cilium, cluster=new_cluster)
    for side, path, loaded in (
        ("OLD", old_path, [*old, *old_cluster]),
        ("NEW", new_path, [*new, *new_cluster]),
    ):
        if not loaded:
            # A diff against nothing reads as "every connection removed" (or added): most often
            # a wrong path, or the output of a run that wrote nothing.
            raise NoPoliciesError(
                f"{side} {path}: no NetworkPolicy loaded (0 policies)"
                + (f"; {len(notes)} document(s) skipped" if notes else ""),
                hint="name a policy file or a directory of them"
                + ("; the skipped documents are named with -v" if notes else ""),
            )
    diff = diff_policies(old, new, inventory, old_cluster=old_cluster, new_cluster=new_cluster)
    diff.warnings[:0] = notes
    return diff


def _cilium_context(inventory: Inventory | None) -> CiliumContext:
    """Entities from the inventory; no DNS answers here (a ``toFQDNs`` is read through the
    policy's own ``netpolgen.io/fqdns`` annotation, see ``cilium_read``)."""
    if inventory is None:
        return CiliumContext()
    return CiliumContext(
        entities=entities_from_inventory(inventory), namespace_labels=inventory.namespace_labels()
    )


@dataclass(frozen=True)
class _Side:
    """One end of a compared connection: a workload, or a class of outside addresses."""

    key: EndpointKey
    namespace: str | None
    labels: str | None
    addresses: str | None
    named_ports: NamedPorts


def _changed_ranges(
    was: tuple[Grant | None, Grant | None],
    now: tuple[Grant | None, Grant | None],
    protocol: str,
    spans: list[tuple[int, int]],
    named: NamedPorts,
) -> list[tuple[str, int, int]]:
    """``(added|removed, first port, last port)`` runs where the two verdicts differ."""
    out: list[tuple[str, int, int]] = []
    current: tuple[str, int, int] | None = None
    for low, high in spans:
        before = _allows(was, protocol, low, named)
        after = _allows(now, protocol, low, named)
        change = "" if before == after else ("added" if after else "removed")
        if current is not None and current[0] == change:
            current = (change, current[1], high)
            continue
        if current is not None and current[0]:
            out.append(current)
        current = (change, low, high)
    if current is not None and current[0]:
        out.append(current)
    return out


def _same_policies(before: Evaluator, after: Evaluator, pod: EndpointKey, direction: str) -> bool:
    """Whether the same policies (equal objects) isolate ``pod`` in ``direction`` in both sets."""

    def selecting(ev: Evaluator) -> list[Policy | ClusterPolicy]:
        found: list[Policy | ClusterPolicy] = [ev.policies[i] for i in ev.selecting(pod, direction)]
        found.sort(key=lambda p: (getattr(p, "namespace", ""), p.name))
        if isinstance(ev, TieredEvaluator):  # the tiers decide around them (in their order)
            found.extend(ev.cluster_subjects(pod, direction))
        return found

    return selecting(before) == selecting(after)


def _address_classes(policies: Sequence[Policy]) -> list[tuple[int, int, int]]:
    """Cut the address space where any ``ipBlock`` (or its ``except``) starts or ends.

    Every address of one class is matched by exactly the same blocks, so its first address
    decides for all. IPv4 always; IPv6 when a block is IPv6. Returns ``(version, first, last)``
    with addresses as integers, in order.
    """
    networks = [
        ipaddress.ip_network(cidr, strict=False)
        for policy in policies
        for rule in (*policy.ingress, *policy.egress)
        for peer in rule.peers
        if peer.ip_block is not None
        for cidr in (peer.ip_block.cidr, *peer.ip_block.except_)
    ]
    classes: list[tuple[int, int, int]] = []
    for version, bits in ((4, 32), (6, 128)):
        mine = [n for n in networks if n.version == version]
        if version == 6 and not mine:
            continue
        cuts = {0, 2**bits}
        for network in mine:
            cuts.add(int(network.network_address))
            cuts.add(int(network.broadcast_address) + 1)
        edges = sorted(cuts)
        classes += [(version, low, high - 1) for low, high in zip(edges, edges[1:], strict=False)]
    return classes


def _address(version: int, value: int) -> str:
    if version == 4:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


def _range_label(version: int, low: int, high: int) -> str:
    first = ipaddress.ip_address(_address(version, low))
    last = ipaddress.ip_address(_address(version, high))
    blocks = list(ipaddress.summarize_address_range(first, last))
    return str(blocks[0]) if len(blocks) == 1 else f"{first}-{last}"


def _emit_range(
    emit: Any, pod: _Side, outbound: bool, run: tuple[list[Any], int, int, int]
) -> None:
    found, version, low, high = run
    side = _Side((None, (), None), None, None, _range_label(version, low, high), ())
    if outbound:
        emit(pod, side, found)
    else:
        emit(side, pod, found)


def _allows(
    grants: tuple[Grant | None, Grant | None], protocol: str, port: int, named: NamedPorts
) -> bool:
    return all(g is None or g.allows(protocol, port, named) for g in grants)


def _port_intervals(
    policies: Sequence[Policy], workloads: Iterable[Workload], protocol: str
) -> list[tuple[int, int]]:
    """Cut 1..65535 where any rule of ``protocol`` could change its answer."""
    cuts = {1, MAX_PORT + 1}
    for policy in policies:
        for rule in (*policy.ingress, *policy.egress):
            for spec in rule.ports:
                if spec.protocol != protocol or spec.port is None or isinstance(spec.port, str):
                    continue
                cuts.add(spec.port)
                cuts.add((spec.end_port if spec.end_port is not None else spec.port) + 1)
    for workload in workloads:
        for _name, port_protocol, number in workload.named_ports:
            if port_protocol == protocol:
                cuts.update((number, number + 1))
    edges = sorted(c for c in cuts if 1 <= c <= MAX_PORT + 1)
    return [(low, high - 1) for low, high in zip(edges, edges[1:], strict=False)]


def _workloads_from_policies(policies: Sequence[Policy]) -> dict[tuple[str, str], Workload]:
    found: set[tuple[str, str]] = set()

    def add(namespace: str | None, selector: LabelSelector | None) -> None:
        if namespace is None or selector is None or selector.match_expressions:
            return
        found.add((namespace, canonical_labels(dict(selector.match_labels))))

    for policy in policies:
        add(policy.namespace, policy.pod_selector)
        for rule in (*policy.ingress, *policy.egress):
            for peer in rule.peers:
                if peer.ip_block is not None:
                    continue
                if peer.namespace_selector is None:
                    add(policy.namespace, peer.pod_selector)
                else:
                    named = dict(peer.namespace_selector.match_labels).get(NAMESPACE_NAME_LABEL)
                    add(named, peer.pod_selector or LabelSelector())
    return {key: Workload(*key) for key in sorted(found)}


def _display(changes: pd.DataFrame, names: dict[str, str]) -> pd.DataFrame:
    """Compact columns for text: ``src``, ``dst`` (workload names, else labels, or addresses)
    and ``ports``."""

    def side(prefix: str) -> list[str]:
        return [
            f"{ns}/{labels or '<no labels>'}" if not pd.isna(ns) else str(addresses)
            for ns, labels, addresses in zip(
                changes[f"{prefix}_namespace"], changes[f"{prefix}_labels"],
                changes[f"{prefix}_addresses"], strict=True,
            )
        ]  # fmt: skip

    ports = [
        str(low) if low == high else f"{low}-{high}"
        for low, high in zip(changes["port_from"], changes["port_to"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "change": changes["change"],
            "src": side("src"),
            "dst": side("dst"),
            "protocol": changes["protocol"],
            "ports": ports,
        }
    )
    return with_workload_names(table, names)


def format_diff(
    diff: PolicyDiff, fmt: str = "table", *, limit: int | None = 200, plain: bool = False
) -> str:
    """Render a diff as plain text, JSON or Markdown.

    Args:
        diff: what :func:`diff_policies` or :func:`diff_files` returned.
        fmt: ``table``, ``json`` or ``markdown``.
        limit: at most this many rows per table in text and Markdown (``None``: all).
        plain: the table as tab-separated lines (for a pipe or a file: nothing wraps).

    Examples:
        >>> print(format_diff(diff, "markdown"))  # doctest: +SKIP
    """
    if fmt == "json":
        return json.dumps(diff.to_dict(), indent=2) + "\n"
    markdown = fmt == "markdown"
    parts = ["# netpolgen diff\n" if markdown else "", diff.summary() + "\n"]
    for warning in diff.warnings:
        parts.append(("- warning: " if markdown else "warning: ") + warning + "\n")
    for title, names in (
        ("Policies added", diff.policies_added),
        ("Policies removed", diff.policies_removed),
        ("Policies changed", diff.policies_changed),
    ):
        if names:
            parts.append(("\n## " if markdown else "\n") + title + ("\n" if markdown else ":\n"))
            parts.append("".join(f"- {n}\n" if markdown else f"  {n}\n" for n in names))
    if not diff.changes.empty:
        title = "Connections that differ (added: only NEW allows; removed: only OLD allows)"
        parts.append(("\n## " if markdown else "\n") + title + ("\n" if markdown else ":\n"))
        parts.append(
            render_table(
                _display(diff.changes, diff.names), markdown=markdown, limit=limit, plain=plain
            )
        )
    return "".join(parts)
