"""Grouping endpoints that carry no labels by how they communicate (scikit-learn).

Where flows carry only IPs and no inventory resolves them (VMs, another cluster, a logs-only
investigation), netpolgen still wants roles: "the three addresses that accept TCP 5432 from the
app tier" are one peer group, and a reviewer should see them as one.

Algorithm (deterministic):

1. Each address gets a binary behaviour vector: ``in:<proto>/<port>`` for ports it accepted
   connections on, ``out:<proto>/<port>`` for ports it connected to.
2. Addresses with identical vectors are collapsed first (this bounds the pairwise step by the
   number of distinct behaviours, not addresses).
3. Agglomerative clustering (average linkage) on the Jaccard distance between vectors, cut at
   ``distance_threshold`` (0 = identical behaviour only, 1 = everything in one group).
4. A second round adds the peers' groups to the features (``out:<group>:<proto>/<port>``), so
   that two tiers using the same port towards *different* groups are told apart.

Agglomerative clustering has no random initialisation, so ``random_state`` is accepted for
scikit-learn-style API consistency and is not needed for determinism; group names come from
content (the ports that define the group), never from cluster indices.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from netpolgen.errors import NetpolgenError

DEFAULT_THRESHOLD = 0.5


def _behaviour(edges: pd.DataFrame, addresses: pd.Index, groups: pd.Series | None) -> pd.DataFrame:
    port = edges["protocol"].astype(str) + "/" + edges["dst_port"].astype("string").fillna("*")
    parts = []
    for direction, own, other in (("in", "dst", "src"), ("out", "src", "dst")):
        if groups is None:
            feature = direction + ":" + port
        else:
            peer = edges[other].map(groups).fillna(edges[other].str.slice(0, 4))
            feature = direction + ":" + peer.astype(str) + ":" + port
        parts.append(pd.DataFrame({"endpoint": edges[own], "feature": feature}))
    table = pd.concat(parts)
    table = table[table["endpoint"].isin(addresses)]
    matrix = pd.crosstab(table["endpoint"], table["feature"]).clip(upper=1)
    return matrix.reindex(addresses, fill_value=0)


def _cluster(matrix: pd.DataFrame, threshold: float) -> pd.Series:
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import pairwise_distances

    signatures = matrix.astype(str).agg("".join, axis=1)
    unique = matrix[~signatures.duplicated()]
    if len(unique) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        distances = pairwise_distances(unique.to_numpy().astype(bool), metric="jaccard")
        model = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage="average",
            distance_threshold=threshold + 1e-9,  # merge at <= threshold
        )
        labels = model.fit_predict(distances)
    by_signature = dict(zip(signatures[unique.index], labels, strict=True))
    return signatures.map(by_signature)


def _group_names(matrix: pd.DataFrame, labels: pd.Series) -> pd.Series:
    names: dict[int, str] = {}
    for label, members in labels.groupby(labels):
        features = matrix.loc[members.index]
        shared = features.columns[(features == 1).all()].tolist()
        listening = sorted(f[3:].replace("/", "-") for f in shared if f.startswith("in:"))
        calling = sorted(f[4:].replace("/", "-") for f in shared if f.startswith("out:"))
        if listening:
            base = "serves-" + "-".join(listening[:3])
        elif calling:
            base = "calls-" + "-".join(calling[:3])
        else:
            base = "mixed"
        digest = hashlib.sha256(",".join(sorted(members.index)).encode()).hexdigest()[:4]
        names[int(label)] = f"{base.lower()}-{digest}"
    return labels.map(names)


def cluster_endpoints(
    edges: pd.DataFrame,
    endpoints: pd.DataFrame,
    *,
    distance_threshold: float = DEFAULT_THRESHOLD,
    random_state: int = 0,
) -> pd.DataFrame:
    """Group the IP-only endpoints of an edge table by behaviour.

    Args:
        edges: the edge table of ``aggregate_edges``.
        endpoints: its endpoint table; rows whose key starts with ``ip:`` are grouped.
        distance_threshold: Jaccard distance at which groups stop merging, in [0, 1].
        random_state: accepted for API consistency; the algorithm is deterministic.

    Returns:
        One row per address: ``endpoint``, ``ip``, ``group`` (a name made from the group's
        defining ports), sorted by group then address.
    """
    del random_state
    if not 0 <= distance_threshold <= 1:
        raise NetpolgenError(f"distance threshold must be in [0, 1], not {distance_threshold}")
    addresses = pd.Index(sorted(k for k in endpoints.index if str(k).startswith("ip:")))
    if addresses.empty:
        return pd.DataFrame({"endpoint": [], "ip": [], "group": []}, dtype="string")
    first = _behaviour(edges, addresses, None)
    labels = _cluster(first, distance_threshold)
    names = _group_names(first, labels)
    second = _behaviour(edges, addresses, names)
    labels = _cluster(pd.concat([first, second], axis=1), distance_threshold)
    names = _group_names(first, labels)
    out = pd.DataFrame(
        {"endpoint": addresses, "ip": addresses.str.slice(3), "group": names.to_numpy()}
    ).astype("string")
    return out.sort_values(["group", "endpoint"]).reset_index(drop=True)
