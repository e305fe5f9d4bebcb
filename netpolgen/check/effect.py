"""What a policy set would do to observed traffic: each edge allowed or denied, and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from netpolgen.cluster.inventory import Inventory
from netpolgen.flows import validate_flows
from netpolgen.identity.naming import named_edges
from netpolgen.identity.workloads import identify_workloads
from netpolgen.labels import stable_labels
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Endpoint, egress_allows, ingress_allows
from netpolgen.reduce.edges import EdgeOptions, aggregate_edges


def policy_effect(
    flows: pd.DataFrame,
    policies: Iterable[Policy],
    *,
    inventory: Inventory | None = None,
    namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """What ``policies`` would do to the traffic in ``flows``, edge by edge.

    Every observed connection type counts here, denied ones included (so a probe that the
    network dropped shows whether the new policies would still block it). Replies are left
    out: they ride on the connection's state. Each distinct edge is judged by the evaluator of
    :func:`netpolgen.verify` (``egress_allows``/``ingress_allows``), so both agree on what a
    policy set allows; ``verify`` itself checks only the flows the network let through.

    Args:
        flows: a flow table.
        policies: the policies to evaluate (``result.policies`` or policies read from YAML).
        inventory: the cluster (``load_inventory``): its namespace labels, and the container
            port names that ``port: <name>`` rules refer to.
        namespace_labels: labels of each namespace, for ``namespaceSelector`` terms other than
            ``kubernetes.io/metadata.name`` (which every namespace has); overrides the
            inventory's.

    Returns:
        The :func:`edge_table` columns plus ``observed`` (``allowed``/``denied``: what the
        network did), ``egress_allowed``, ``ingress_allowed`` and ``allowed`` (both sides
        admit it under ``policies``).

    Examples:
        >>> effect = policy_effect(flows, result.policies)  # doctest: +SKIP
        >>> effect[~effect["allowed"]]  # doctest: +SKIP
    """
    validate_flows(flows)
    policies = list(policies)
    if namespace_labels is None:
        namespace_labels = inventory.namespace_labels() if inventory is not None else {}
    ports = _named_ports(inventory) if inventory is not None else {}
    workloads = identify_workloads(flows)
    denied = (flows["verdict"] == "denied").fillna(False).astype(bool)
    parts = []
    for verdict, subset in (("allowed", flows[~denied]), ("denied", flows[denied])):
        edges, endpoints = aggregate_edges(subset, EdgeOptions(include_denied=True))
        table = named_edges(edges, endpoints, workloads)
        egress, ingress = _evaluate(edges, endpoints, policies, namespace_labels, ports)
        table["observed"] = verdict
        table["egress_allowed"] = pd.array(egress, dtype="boolean")
        table["ingress_allowed"] = pd.array(ingress, dtype="boolean")
        table["allowed"] = table["egress_allowed"] & table["ingress_allowed"]
        parts.append(table)
    effect = pd.concat(parts, ignore_index=True)
    return effect.sort_values(
        ["allowed", "flows", "src", "dst", "port"],
        ascending=[True, False, True, True, True],
        kind="stable",
    ).reset_index(drop=True)


def _evaluate(
    edges: pd.DataFrame,
    endpoints: pd.DataFrame,
    policies: list[Policy],
    namespace_labels: Mapping[str, Mapping[str, str]],
    ports: Mapping[str, Mapping[tuple[str, str], int]],
) -> tuple[list[bool], list[bool]]:
    """Evaluate each distinct edge (one Python step per edge type, never per flow)."""
    cache: dict[str, Endpoint] = {}

    def endpoint(key: str) -> Endpoint:
        if key not in cache:
            if key.startswith("pod:"):
                namespace, _, labels = key[4:].partition("/")
                pairs = dict(p.split("=", 1) for p in labels.split(",") if p)
                cache[key] = Endpoint(
                    namespace=namespace,
                    labels=pairs,
                    namespace_labels=dict(namespace_labels.get(namespace, {})),
                    named_ports=dict(ports.get(key, {})),
                )
            else:
                cache[key] = Endpoint(ip=key[3:])
        return cache[key]

    egress: list[bool] = []
    ingress: list[bool] = []
    for src, dst, protocol, port in zip(
        edges["src"], edges["dst"], edges["protocol"], edges["dst_port"], strict=True
    ):
        number = None if pd.isna(port) else int(port)
        a, b = endpoint(str(src)), endpoint(str(dst))
        egress.append(egress_allows(policies, a, b, str(protocol), number))
        ingress.append(ingress_allows(policies, a, b, str(protocol), number))
    return egress, ingress


def _named_ports(inventory: Inventory) -> dict[str, dict[tuple[str, str], int]]:
    """Container port names per pod endpoint key (``pod:<ns>/<stable labels>``).

    Kubernetes resolves ``port: <name>`` on each destination pod; pods of one workload come from
    one template, so the latest snapshot's pods speak for the workload.
    """
    declared = inventory.container_ports()
    declared = declared[declared["name"].notna()]
    out: dict[str, dict[tuple[str, str], int]] = {}
    # Pod by pod in snapshot order: the last pod of a workload speaks for it.
    for (_, namespace, _), rows in declared.groupby(["snapshot", "namespace", "pod"], sort=False):
        labels = rows["labels"].iloc[0]
        key = f"pod:{namespace}/{stable_labels(str(labels) if pd.notna(labels) else '')}"
        out[key] = {
            (str(name), str(protocol)): int(number)
            for name, protocol, number in zip(
                rows["name"], rows["protocol"], rows["port"], strict=True
            )
        }
    return out
