"""What a verification finds beyond allowed/denied: denied flows by edge, unused and
over-permissive rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netpolgen.check.edges import (
    describe_endpoint,
    workloads_from_cluster,
    workloads_seen,
)
from netpolgen.cluster.view import ClusterView, NamedPorts
from netpolgen.labels import stable_labels
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator


def named_port_profiles(
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


def denied_tables(
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


def empty_over_permissive() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "port" else "string")
                         for c in OVER_COLUMNS})  # fmt: skip


def over_permissiveness(
    ev: Evaluator,
    cluster: ClusterView,
    edges: pd.DataFrame,
    observed: pd.DataFrame,
    max_workloads: int,
    warnings: list[str],
) -> tuple[pd.DataFrame, dict[str, int]]:
    """``observed``: the distinct ``ns, labels, protocol, port`` of the destination workloads in
    non-reply flows (allowed or not), as :class:`_Checker` collects them."""
    workloads = workloads_from_cluster(cluster) or workloads_seen(edges)
    if len(workloads) > max_workloads:
        warnings.append(
            f"over-permissiveness skipped: {len(workloads)} workloads (limit {max_workloads})"
        )
        return empty_over_permissive(), {}

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
    over = pd.DataFrame(rows, columns=OVER_COLUMNS) if rows else empty_over_permissive()
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
