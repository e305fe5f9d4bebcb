"""Where pods listen, from the inventory: the server side of a connection (direction rule b).

A pod listens on its declared ``containerPorts`` (``spec.containers[].ports``; Kubernetes calls
the list informational, so a pod may listen elsewhere too: what is declared is evidence, what is
not is no evidence against) and on the ``targetPort`` of every Service that selects it (the
Service sends its clients there). A flow between a pod's listening port and some other port of
a peer goes from the client to the server, whichever record of the pair it is: this decides the
direction of records that do not carry one (AWS v2 records, UDP in any version), which the
resolver writes into ``is_reply`` (:func:`direct`). See :mod:`netpolgen.reduce.direction` for the
order of the evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from netpolgen._kernels import first_of_groups, group_ids
from netpolgen.cluster.inventory import Inventory
from netpolgen.labels import labels_from_canonical

__all__ = ["ListeningPorts", "listening_ports"]

_PROTOCOLS = {"TCP": 1, "UDP": 2, "SCTP": 3}


def listening_ports(inventory: Inventory) -> pd.DataFrame:
    """One row per (namespace, pod, protocol, port) a pod listens on: its declared container
    ports and the numeric ``targetPort`` of each Service selecting it (latest definitions).
    hostNetwork pods are left out (their address is the node's)."""
    pods = inventory.pods[~inventory.pods["host_network"]]
    declared = inventory.container_ports()
    declared = declared[~declared["host_network"]]
    rows: list[tuple[str, str, str, int]] = list(
        zip(
            declared["namespace"].astype(str), declared["pod"].astype(str),
            declared["protocol"].astype(str), declared["port"].astype(int), strict=True,
        )
    )  # fmt: skip
    services = inventory.services.dropna(subset=["selector"])
    services = services.sort_values("snapshot", kind="stable").drop_duplicates(
        ["namespace", "name"], keep="last"
    )
    numbered = inventory.service_ports.dropna(subset=["target_port"])
    targets_of: dict[tuple[str, str, object], list[tuple[str, int]]] = {}
    for namespace, service, snapshot, protocol, target in zip(
        numbered["namespace"], numbered["service"], numbered["snapshot"], numbered["protocol"],
        numbered["target_port"], strict=True,
    ):  # fmt: skip
        targets_of.setdefault((str(namespace), str(service), snapshot), []).append(
            (str(protocol), int(target))
        )
    if len(services) and len(pods):
        # Per distinct (namespace, labels) of the pods: the pods; a selector matches a set
        # when every one of its labels is in it (label sets are few: one per ReplicaSet).
        by_set: dict[tuple[str, str], list[str]] = {}
        for namespace, labels, name in zip(pods["namespace"], pods["labels"], pods["name"],
                                           strict=True):  # fmt: skip
            by_set.setdefault((str(namespace), str(labels)), []).append(str(name))
        sets = {key: set(labels_from_canonical(key[1])) for key in by_set}
        for namespace, service, snapshot, selector in zip(
            services["namespace"], services["name"], services["snapshot"], services["selector"],
            strict=True,
        ):  # fmt: skip
            wanted = set(labels_from_canonical(str(selector)))
            targets = targets_of.get((str(namespace), str(service), snapshot), [])
            if not targets or not wanted:
                continue
            for key, labels in sets.items():
                if key[0] == namespace and wanted <= labels:
                    rows.extend((key[0], name, p, t) for name in by_set[key] for p, t in targets)
    frame = pd.DataFrame(rows, columns=["namespace", "pod", "protocol", "port"])
    return frame.drop_duplicates().sort_values(list(frame.columns)).reset_index(drop=True)


class ListeningPorts:
    """:func:`listening_ports` as integer keys, for a vectorised lookup per flow side."""

    def __init__(self, inventory: Inventory) -> None:
        table = listening_ports(inventory)
        table = table[table["protocol"].isin(list(_PROTOCOLS))]
        names = table["namespace"] + "/" + table["pod"]
        self._pods = pd.Index(names.drop_duplicates())
        ids = self._pods.get_indexer(pd.Index(names)).astype(np.int64)
        protocol = table["protocol"].map(_PROTOCOLS).to_numpy(dtype=np.int64)
        self._keys = np.unique((ids << 24) | (protocol << 16) | table["port"].to_numpy(np.int64))

    def __len__(self) -> int:
        return len(self._keys)

    def listens(self, flows: pd.DataFrame, side: str) -> np.ndarray:
        """Per row, whether ``side``'s pod (namespace and pod name) listens on its port."""
        namespace, pod = flows[f"{side}_namespace"], flows[f"{side}_pod"]
        group = group_ids([namespace, pod])
        first = first_of_groups(group)
        names = (namespace.iloc[first].fillna("") + "/" + pod.iloc[first].fillna("")).to_numpy()
        ids = self._pods.get_indexer(pd.Index(names, dtype=object)).astype(np.int64)[group]
        categories = flows["protocol"].cat.categories
        codes = flows["protocol"].cat.codes.to_numpy()
        lookup = np.array([_PROTOCOLS.get(str(c), 0) for c in categories] + [0], dtype=np.int64)
        protocol = lookup[codes]  # code -1 (no protocol) takes the last: 0
        port = flows[f"{side}_port"].to_numpy(dtype=np.int64, na_value=0)
        key = (ids << 24) | (protocol << 16) | port
        found: np.ndarray = (ids >= 0) & (protocol > 0) & np.isin(key, self._keys)
        return found


def direct(
    flows: pd.DataFrame, listening: ListeningPorts, at_service: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Fill ``is_reply`` where the record does not say and exactly one side is a server: a
    pod's listening port (:class:`ListeningPorts`), or a Service address (``at_service``: its
    port is the Service's, where kube-proxy listens for its backends). ``flows`` is resolved."""
    if not len(listening) and not (at_service["src"].any() or at_service["dst"].any()):
        return flows  # nothing is known to listen: no evidence (and no work per row)
    unknown = flows["is_reply"].isna() & flows["src_port"].notna() & flows["dst_port"].notna()
    unknown_np = unknown.to_numpy(dtype=bool)
    if not unknown_np.any():
        return flows
    rows = np.flatnonzero(unknown_np)
    columns = ["protocol"] + [
        f"{s}_{c}" for s in ("src", "dst") for c in ("namespace", "pod", "port")
    ]
    part = flows[columns].iloc[rows]
    server = {}
    for side in ("src", "dst"):
        found = listening.listens(part, side) if len(listening) else np.zeros(len(rows), bool)
        server[side] = found | at_service[side][rows]
    request = server["dst"] & ~server["src"]
    reply = server["src"] & ~server["dst"]
    if not (request.any() or reply.any()):
        return flows
    said = np.full(len(flows), -1, dtype=np.int8)
    said[rows[request]] = 0
    said[rows[reply]] = 1
    is_reply = flows["is_reply"].mask(said == 0, False).mask(said == 1, True)
    return flows.assign(is_reply=is_reply)
