"""Readable names for endpoints and edges: ``namespace/workload`` or the address."""

from __future__ import annotations

import pandas as pd

from netpolgen.identity.workloads import Workloads

EDGE_TABLE_COLUMNS = (
    "src",
    "dst",
    "src_namespace",
    "dst_namespace",
    "src_kind",
    "dst_kind",
    "protocol",
    "dst_port",
    "port",
    "flows",
    "first_seen",
    "last_seen",
)


def endpoint_names(endpoints: pd.DataFrame, workloads: Workloads) -> pd.Series:
    """Readable names for endpoint keys: ``ns/name`` for workloads, the address otherwise.

    A pod endpoint's key is ``pod:ns/stable-labels``; its workload is that key without inventory,
    or its owner (``ns/Deployment/name``, through ``workloads.members``) with one. Each workload
    is named ``namespace/name`` exactly once; a key no workload lists keeps ``ns/labels``, which
    already carries its namespace.
    """
    keys = endpoints.index.to_series()
    is_pod = keys.str.startswith("pod:")
    endpoint_keys = keys.str.slice(4)
    table = workloads.table
    qualified = table["namespace"].astype("string") + "/" + table["name"].astype("string")
    members = pd.Series(dict(workloads.members), dtype="string")
    workload_ids = endpoint_keys.map(members).astype("string").fillna(endpoint_keys)
    # As text even when no key maps (no workloads at all: an addresses-only log).
    pod_names = workload_ids.map(qualified).astype("string").fillna(endpoint_keys)
    readable = pod_names.where(is_pod, keys.str.slice(3))
    return readable.astype("string")


def named_edges(edges: pd.DataFrame, endpoints: pd.DataFrame, workloads: Workloads) -> pd.DataFrame:
    """The edge-table columns for ``edges``, on the same index (unsorted)."""
    names = endpoint_names(endpoints, workloads)
    kinds = endpoints["kind"].astype("string")
    namespaces = endpoints["namespace"].astype("string")
    port = edges["dst_port"].astype("string")
    return pd.DataFrame(
        {
            "src": edges["src"].map(names).astype("string"),
            "dst": edges["dst"].map(names).astype("string"),
            "src_namespace": edges["src"].map(namespaces).astype("string"),
            "dst_namespace": edges["dst"].map(namespaces).astype("string"),
            "src_kind": edges["src"].map(kinds).astype("string"),
            "dst_kind": edges["dst"].map(kinds).astype("string"),
            "protocol": edges["protocol"].astype("string"),
            "dst_port": edges["dst_port"],
            "port": (edges["protocol"].astype("string") + "/" + port.fillna("*")),
            "flows": edges["count"].astype("Int64"),
            "first_seen": edges["first_seen"],
            "last_seen": edges["last_seen"],
        },
        index=edges.index,
    )
