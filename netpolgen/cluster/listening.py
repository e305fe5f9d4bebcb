"""Where pods listen, from the inventory: the server side of a connection (direction rule b).

A pod listens on its declared ``containerPorts`` (``spec.containers[].ports``; Kubernetes calls
the list informational, so a pod may listen elsewhere too: what is declared is evidence, what is
not is no evidence against) and on the ``targetPort`` of every Service that selects it (the
Service sends its clients there). A flow between a pod's listening port and some other port of
a peer goes from the client to the server, whichever record of the pair it is: this decides the
direction of records that do not carry one (AWS v2 records, UDP in any version), which the
resolver writes into ``is_reply`` (:func:`direct`). See :mod:`netpolgen.reduce.direction` for the
order of the evidence.

Node addresses listen too (:func:`listening_addresses`): kube-proxy opens every NodePort and
LoadBalancer Service's ``nodePort`` on every node ("each node proxies that port into your
Service", Kubernetes Service docs), and a hostNetwork pod's ``containerPorts`` are its node's
ports (the pod shares the node's network namespace: its address is the node's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from netpolgen._kernels import first_of_groups, group_ids
from netpolgen.cluster.inventory import Inventory
from netpolgen.labels import labels_from_canonical

__all__ = ["ListeningPorts", "listening_addresses", "listening_ports"]

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


def listening_addresses(inventory: Inventory) -> pd.DataFrame:
    """One row per (ip, protocol, port) a node address listens on: every ``nodePort`` of the
    latest Service definitions on every node address, and each hostNetwork pod's declared
    container ports on its addresses (which are its node's)."""
    rows: list[pd.DataFrame] = []
    ports = inventory.service_ports.dropna(subset=["node_port"])
    latest = inventory.services.groupby(["namespace", "name"])["snapshot"].max()
    if len(ports) and len(latest):
        current = pd.MultiIndex.from_arrays([ports["namespace"], ports["service"],
                                             ports["snapshot"]])  # fmt: skip
        wanted = pd.MultiIndex.from_arrays(
            [latest.index.get_level_values(0), latest.index.get_level_values(1), latest.to_numpy()]
        )
        ports = ports[current.isin(wanted)]  # fmt: skip
        nodes = pd.DataFrame({"ip": inventory.nodes["ip"].dropna().astype(str).unique()})
        node_ports = ports[["protocol", "node_port"]].rename(columns={"node_port": "port"})
        rows.append(nodes.merge(node_ports.drop_duplicates(), how="cross"))
    declared = inventory.container_ports(latest=True)
    declared = declared[declared["host_network"]]
    if len(declared):
        pods = inventory.pods.dropna(subset=["ip"])[["namespace", "name", "ip"]]
        hosts = declared.merge(pods.rename(columns={"name": "pod"}), on=["namespace", "pod"])
        rows.append(hosts[["ip", "protocol", "port"]])
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        {"ip": [], "protocol": [], "port": []}
    )  # fmt: skip
    frame = frame.astype({"ip": str, "protocol": str, "port": np.int64})
    return frame.drop_duplicates().sort_values(list(frame.columns)).reset_index(drop=True)


class ListeningPorts:
    """:func:`listening_ports` and :func:`listening_addresses` as integer keys, for a
    vectorised lookup per flow side."""

    def __init__(self, inventory: Inventory) -> None:
        table = listening_ports(inventory)
        table = table[table["protocol"].isin(list(_PROTOCOLS))]
        names = table["namespace"] + "/" + table["pod"]
        self._pods = pd.Index(names.drop_duplicates())
        ids = self._pods.get_indexer(pd.Index(names)).astype(np.int64)
        protocol = table["protocol"].map(_PROTOCOLS).to_numpy(dtype=np.int64)
        self._keys = np.unique((ids << 24) | (protocol << 16) | table["port"].to_numpy(np.int64))
        hosts = listening_addresses(inventory)
        hosts = hosts[hosts["protocol"].isin(list(_PROTOCOLS))]
        self._ips = pd.Index(hosts["ip"].drop_duplicates())
        ids = self._ips.get_indexer(pd.Index(hosts["ip"])).astype(np.int64)
        protocol = hosts["protocol"].map(_PROTOCOLS).to_numpy(dtype=np.int64)
        self._ip_keys = np.unique((ids << 24) | (protocol << 16) | hosts["port"].to_numpy(np.int64))

    def __len__(self) -> int:
        return len(self._keys) + len(self._ip_keys)

    def listens(self, flows: pd.DataFrame, side: str) -> np.ndarray:
        """Per row, whether ``side``'s pod (namespace and pod name) listens on its port, or
        ``side``'s address is a node's (or a hostNetwork pod's) that listens there."""
        categories = flows["protocol"].cat.categories
        codes = flows["protocol"].cat.codes.to_numpy()
        lookup = np.array([_PROTOCOLS.get(str(c), 0) for c in categories] + [0], dtype=np.int64)
        protocol = lookup[codes]  # code -1 (no protocol) takes the last: 0
        port = flows[f"{side}_port"].to_numpy(dtype=np.int64, na_value=0)
        parts = [flows[f"{side}_namespace"], flows[f"{side}_pod"]]
        found = _lookup(self._pods, self._keys, parts, protocol, port)
        if len(self._ip_keys) and f"{side}_ip" in flows:
            found |= _lookup(self._ips, self._ip_keys, [flows[f"{side}_ip"]], protocol, port)
        return found


def _lookup(
    index: pd.Index, keys: np.ndarray, parts: list[pd.Series], protocol: np.ndarray,
    port: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Per row: whether (its name: ``parts`` joined by ``/``, protocol, port) is one of
    ``keys``; names are made and looked up once per distinct name (few pods or addresses,
    many rows)."""
    group = group_ids(parts)
    first = first_of_groups(group)
    names = parts[0].iloc[first].fillna("").astype(str)
    for part in parts[1:]:
        names = names + "/" + part.iloc[first].fillna("").astype(str).to_numpy()
    ids = index.get_indexer(pd.Index(names.to_numpy(), dtype=object))
    ids = ids.astype(np.int64)[group]
    key = (ids << 24) | (protocol << 16) | port
    found: np.ndarray = (ids >= 0) & (protocol > 0) & np.isin(key, keys)
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
        f"{s}_{c}" for s in ("src", "dst") for c in ("namespace", "pod", "port", "ip")
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
