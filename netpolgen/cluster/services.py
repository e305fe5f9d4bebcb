"""Services from the inventory: which pods back each Service address, and on which ports.

A flow recorded before kube-proxy's DNAT names a Service address and port; NetworkPolicy sees
the backend pods and their ports (the ``targetPort``), so the resolver translates both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netpolgen.cluster.inventory import Inventory
from netpolgen.labels import canonical_labels, labels_from_canonical


def service_endpoints(inventory: Inventory) -> pd.DataFrame:
    """One row per Service IP: ip, namespace, labels (shared by all backends), kind.

    ``kind`` is ``pod`` for Services with a selector (``labels`` then select every backend) and
    ``service`` for selector-less ones. The latest snapshot's definition of each Service wins.
    """
    services = _latest_services(inventory)
    columns = ["ip", "namespace", "labels", "kind"]
    if not len(services):
        return pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
    shared, _ = _backend_labels(services, inventory.pods)
    has_selector = services["selector"].notna()
    labels = services.index.to_series().map(shared).astype("string")
    labels = labels.fillna(services["selector"]).where(has_selector)
    return pd.DataFrame(
        {
            "ip": services["ip"],
            "namespace": services["namespace"],
            "labels": labels,
            "kind": np.where(has_selector, "pod", "service"),
        }
    )


def service_ports(inventory: Inventory) -> pd.DataFrame:
    """Service port -> backend port, one row per (Service IP, protocol, port).

    A flow recorded before kube-proxy's DNAT names the Service port; NetworkPolicy ports are the
    pods' ports (the ``targetPort``). A named ``targetPort`` is looked up in the backends' named
    container ports. Columns: ip, protocol, port, target (Int64; NA when the name is unknown).
    """
    services = _latest_services(inventory)
    rows: list[tuple[str, str, int, int | None]] = []
    if not len(services):
        return pd.DataFrame(rows, columns=["ip", "protocol", "port", "target"])
    _, matched_sets = _backend_labels(services, inventory.pods)
    named_by_set: dict[str, dict[tuple[str, str], int]] = {}
    declared = inventory.container_ports()
    declared = declared[~declared["host_network"] & declared["name"].notna()]
    for labels, name, protocol, number in zip(
        declared["labels"], declared["name"], declared["protocol"], declared["port"], strict=True
    ):
        named_by_set.setdefault(str(labels), {})[(str(name), str(protocol))] = int(number)
    ports = services.reset_index().merge(
        inventory.service_ports,
        left_on=["namespace", "name", "snapshot"],
        right_on=["namespace", "service", "snapshot"],
        suffixes=("", "_port"),
    )
    for index, ip, protocol, port, target, target_name in zip(
        ports["index"], ports["ip"], ports["protocol"], ports["port"], ports["target_port"],
        ports["target_name"], strict=True,
    ):  # fmt: skip
        if pd.notna(target):
            rows.append((str(ip), str(protocol), int(port), int(target)))
            continue
        found = {
            named_by_set.get(label_set, {}).get((str(target_name), str(protocol)))
            for label_set in matched_sets.get(index, ())
        } - {None}
        # Backends that disagree on the named port's number: no single translation.
        rows.append((str(ip), str(protocol), int(port), found.pop() if len(found) == 1 else None))
    frame = pd.DataFrame(rows, columns=["ip", "protocol", "port", "target"])
    frame["target"] = frame["target"].astype("Int64")
    return frame


def _latest_services(inventory: Inventory) -> pd.DataFrame:
    services = inventory.services.dropna(subset=["ip"])
    services = services.sort_values("snapshot", kind="stable").drop_duplicates("ip", keep="last")
    return services.reset_index(drop=True)


def _long_labels(frame: pd.DataFrame, key: str, column: str) -> pd.DataFrame:
    """``(key, namespace, label_key, label_value)`` rows for a canonical-labels column."""
    rows = [
        (k, namespace, label_key, label_value)
        for k, namespace, text in zip(frame[key], frame["namespace"], frame[column], strict=True)
        for label_key, label_value in labels_from_canonical(str(text))
    ]
    return pd.DataFrame(rows, columns=[key, "namespace", "label_key", "label_value"])


def _backend_labels(
    services: pd.DataFrame, pods: pd.DataFrame
) -> tuple[dict[Any, str], dict[Any, list[str]]]:
    """Per Service row: the canonical labels common to all pods its selector matches, and the
    label sets of those pods (vectorised: label pairs joined, not pods looped over)."""
    selected = services[services["selector"].notna()]
    pods = pods[~pods["host_network"]].drop_duplicates(["namespace", "labels"])
    if not len(selected) or not len(pods):
        return {}, {}
    sel = _long_labels(selected.assign(_svc=selected.index), "_svc", "selector")
    size = sel.groupby("_svc").size()
    # A label set is keyed by its row number, not by its text: a pod with a million labels
    # would otherwise repeat its whole label text on each of its million rows (issue 21).
    texts = list(pods["labels"])
    pod_long = _long_labels(pods.assign(_set=range(len(pods))), "_set", "labels")
    hits = sel.merge(pod_long, on=["namespace", "label_key", "label_value"])
    per_set = hits.groupby(["_svc", "_set"]).size().rename("n").reset_index()
    matched = per_set[per_set["n"] == per_set["_svc"].map(size)][["_svc", "_set"]]
    if not len(matched):
        return {}, {}
    sets = {svc: [texts[i] for i in group["_set"]] for svc, group in matched.groupby("_svc")}
    sets_per_service = matched.groupby("_svc").size()
    pairs = matched.merge(
        pod_long[["_set", "label_key", "label_value"]].drop_duplicates(), on="_set"
    )
    common = pairs.groupby(["_svc", "label_key", "label_value"]).size().rename("n").reset_index()
    common = common[common["n"] == common["_svc"].map(sets_per_service)]
    shared = {
        svc: canonical_labels(dict(zip(group["label_key"], group["label_value"], strict=True)))
        for svc, group in common.groupby("_svc")
    }
    return shared, sets
