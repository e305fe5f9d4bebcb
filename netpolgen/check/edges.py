"""Edges against policies: keys, evaluation and rule usage, shared by verify, diff and migrate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from netpolgen.cluster.inventory import Inventory
from netpolgen.cluster.view import ClusterView, NamedPorts
from netpolgen.errors import NetpolgenError
from netpolgen.ingest.dns import DnsMap, read_dns_map
from netpolgen.labels import labels_from_canonical, stable_labels
from netpolgen.policy.cluster_eval import TieredEvaluator
from netpolgen.policy.cluster_model import ClusterPolicy
from netpolgen.policy.flavors.cilium_read import CiliumContext, entities_from_inventory
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator, port_matches
from netpolgen.reduce.edges import SELECTABLE_KINDS

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


def cilium_context(sources: Sequence[Any], inventory: Inventory | None) -> CiliumContext:
    """How verify and migrate read CiliumNetworkPolicy: the inventory's nodes and API server as
    entities, ``toFQDNs`` through the DNS answers in the flow files (read only when a policy has
    ``toFQDNs``; standard input and open files cannot be read twice, so they give none)."""

    def dns() -> DnsMap:
        paths = [s for s in sources if isinstance(s, str | os.PathLike) and str(s) != "-"]
        try:
            return read_dns_map(paths)
        except (OSError, NetpolgenError):  # globs and URLs of the Dask engine, say
            return DnsMap()

    if inventory is None:
        return CiliumContext(dns=dns)
    return CiliumContext(
        entities=entities_from_inventory(inventory),
        dns=dns,
        namespace_labels=inventory.namespace_labels(),
    )


def make_evaluator(
    policies: Sequence[Policy],
    cluster: ClusterView,
    cluster_policies: Sequence[ClusterPolicy] = (),
) -> Evaluator:
    """The NetworkPolicy evaluator, or, with ClusterNetworkPolicies, the tiered one over it
    (pods' addresses from the inventory, for their ``networks`` peers)."""
    if not cluster_policies:
        return Evaluator(policies, cluster.namespace_labels)
    addresses: dict[tuple[str, tuple[tuple[str, str], ...]], set[str]] = {}
    for pod in cluster.pods:
        if pod.host_network or not pod.ips:
            continue
        for labels in (tuple(sorted(pod.labels)), labels_from_canonical(pod.workload_labels)):
            addresses.setdefault((pod.namespace, labels), set()).update(pod.ips)
    return TieredEvaluator(
        policies,
        cluster_policies,
        cluster.namespace_labels,
        {key: tuple(sorted(ips)) for key, ips in addresses.items()},
    )


def endpoint_columns(flows: pd.DataFrame, side: str) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per row: namespace and labels for pods (NA otherwise), ip for non-pods (NA for pods)."""
    namespace = flows[f"{side}_namespace"]
    # As the generator does (netpolgen.reduce.edges): only pods are reachable by selectors; any
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
    tiered = evaluator if isinstance(evaluator, TieredEvaluator) else None
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
        if tiered is not None:  # a cluster policy's subject is isolated by it too
            egress_iso[i] |= bool(tiered.cluster_subjects(src, EGRESS))
            ingress_iso[i] |= bool(tiered.cluster_subjects(dst, INGRESS))
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
            if isinstance(evaluator, TieredEvaluator) and not evaluator.policies_decide(
                direction, selected, peer, protocol, port_number, named
            ):
                continue  # an Admin rule decided: the NetworkPolicy rules carried nothing
            for i, r, ports in evaluator.matching_rules(ids, direction, peer):
                if not ports or any(
                    port_matches(spec, protocol, port_number, named) for spec in ports
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


def workloads_seen(table: pd.DataFrame) -> dict[tuple[str, str], Workload]:
    """The workloads on either side of a flow table or a checked-edge table, when no inventory
    lists them: pod endpoints grouped by namespace and stable labels.

    A pod endpoint has a namespace and, where the table has kinds (a flow table), kind ``pod``
    (in an edge table only pods keep a namespace, see :func:`endpoint_columns`).
    """
    found: set[tuple[str, str]] = set()
    for side in ("src", "dst"):
        is_pod = table[f"{side}_namespace"].notna()
        if f"{side}_kind" in table:
            is_pod &= table[f"{side}_kind"].isin(SELECTABLE_KINDS).fillna(False).astype(bool)
        pairs = table.loc[is_pod, [f"{side}_namespace", f"{side}_labels"]].drop_duplicates()
        for namespace, labels in pairs.itertuples(index=False):
            found.add((str(namespace), stable_labels("" if pd.isna(labels) else str(labels))))
    return {key: Workload(*key) for key in sorted(found)}


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
