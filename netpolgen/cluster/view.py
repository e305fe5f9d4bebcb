"""What the evaluator needs to know about a cluster: pods, their ports, and namespace labels.

NetworkPolicy semantics depend on more than labels: ``namespaceSelector`` matches the labels of a
namespace, and a named port (``port: http``) resolves to a number per destination pod, from its
containers' ``ports``. :class:`ClusterView` holds exactly that, read from the JSON of
``kubectl get pods,services,namespaces,nodes -A -o json`` (a ``List``; several snapshots merge,
later ones winning), or built by hand in tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard, Union

import pandas as pd

from netpolgen.cluster.inventory import Inventory, inventory_from_documents, load_inventory
from netpolgen.errors import InventoryError
from netpolgen.labels import canonical_labels, is_volatile, labels_from_canonical
from netpolgen.selectors import NAMESPACE_NAME_LABEL

NamedPorts = tuple[tuple[str, str, int], ...]
"""A pod's named container ports as sorted ``(name, protocol, number)`` triples."""


@dataclass(frozen=True)
class PodRecord:
    """One pod: identity, addresses and declared container ports."""

    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[str, ...] = ()
    named_ports: NamedPorts = ()
    container_ports: tuple[tuple[str, int], ...] = ()
    host_network: bool = False
    # The root of the pod's owner chain (a Deployment's name, say) when the inventory's tables
    # name it; reports show workloads by it (netpolgen.check.tables.workload_names).
    owner: str = ""

    @property
    def workload_labels(self) -> str:
        """Canonical labels without the volatile ones: the pod's workload identity."""
        return canonical_labels({k: v for k, v in self.labels if not is_volatile(k)})


@dataclass
class ClusterView:
    """Pods and namespace labels, indexed for the evaluator."""

    pods: list[PodRecord] = field(default_factory=list)
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_name: dict[tuple[str, str], PodRecord] = {}
        self._by_ip: dict[str, PodRecord] = {}
        for pod in self.pods:
            self._index(pod)

    def _index(self, pod: PodRecord) -> None:
        self._by_name[(pod.namespace, pod.name)] = pod
        if not pod.host_network:  # a hostNetwork pod's IP is its node's
            for ip in pod.ips:
                self._by_ip[ip] = pod

    def add_pod(self, pod: PodRecord) -> None:
        """Add (or replace, by namespace and name) a pod."""
        old = self._by_name.get((pod.namespace, pod.name))
        if old is not None:
            self.pods.remove(old)
        self.pods.append(pod)
        self._index(pod)

    def pod(self, namespace: str, name: str) -> PodRecord | None:
        """The pod called ``name`` in ``namespace``, if known."""
        return self._by_name.get((namespace, name))

    def pod_by_ip(self, ip: str) -> PodRecord | None:
        """The (last seen) pod holding ``ip``, if known."""
        return self._by_ip.get(ip)

    def labels_of_namespace(self, namespace: str) -> dict[str, str]:
        """A namespace's labels; ``kubernetes.io/metadata.name`` is always set, as the API does."""
        labels = dict(self.namespace_labels.get(namespace, {}))
        labels.setdefault(NAMESPACE_NAME_LABEL, namespace)
        return labels

    @property
    def namespaces(self) -> list[str]:
        """Every namespace known from namespace objects or pods, sorted."""
        return sorted(set(self.namespace_labels) | {p.namespace for p in self.pods})

    @property
    def has_named_ports(self) -> bool:
        return any(p.named_ports for p in self.pods)

    @classmethod
    def from_inventory(cls, inventory: InventoryLike) -> ClusterView:
        """Build a view from an inventory (see :data:`InventoryLike`).

        Raises:
            InventoryError: when a file cannot be read or is not a Kubernetes object list.
        """
        if isinstance(inventory, ClusterView):
            return inventory
        view = cls()
        if inventory is None:
            return view
        if _is_inventory_table(inventory):
            view._merge_inventory(inventory)
            return view
        if isinstance(inventory, str | os.PathLike) or (
            isinstance(inventory, list | tuple)
            and inventory
            and all(isinstance(i, str | os.PathLike) for i in inventory)
        ):
            # Files: read by the inventory ingester (JSON or YAML, several snapshots).
            paths = [inventory] if isinstance(inventory, str | os.PathLike) else inventory
            view._merge_inventory(load_inventory([Path(p) for p in paths]))
            return view
        # Parsed JSON: the same parser as files, one snapshot per document (later ones win).
        view._merge_inventory(inventory_from_documents(list(_documents(inventory))))
        return view

    def _merge_inventory(self, inventory: Inventory) -> None:
        """Take pods and namespaces from an inventory: each pod as its latest snapshot shows it."""
        self.namespace_labels.update(
            {str(k): dict(v) for k, v in inventory.namespace_labels().items()}
        )
        pods = inventory.pods.sort_values("snapshot", kind="stable")
        latest = pods.drop_duplicates(["namespace", "name"], keep="last")
        pods = pods.merge(latest[["namespace", "name", "snapshot"]])  # the latest rows only
        declared = inventory.container_ports(latest=True)
        ports_of = {key: rows for key, rows in declared.groupby(["namespace", "pod"], sort=False)}
        for (namespace, name), rows in pods.groupby(["namespace", "name"], sort=True):
            last = rows.iloc[-1]
            own = ports_of.get((namespace, name))
            named: set[tuple[str, str, int]] = set()
            container_ports: set[tuple[str, int]] = set()
            if own is not None:
                for port_name, protocol, number in zip(
                    own["name"], own["protocol"], own["port"], strict=True
                ):
                    container_ports.add((str(protocol), int(number)))
                    if pd.notna(port_name):
                        named.add((str(port_name), str(protocol), int(number)))
            self.add_pod(
                PodRecord(
                    namespace=str(namespace),
                    name=str(name),
                    labels=labels_from_canonical(_text(last.get("labels"))),
                    ips=tuple(str(ip) for ip in rows["ip"].dropna()),
                    named_ports=tuple(sorted(named)),
                    container_ports=tuple(sorted(container_ports)),
                    host_network=bool(last.get("host_network")),
                    owner=_text(last.get("workload_name")),
                )
            )


InventoryLike = Union[
    None, str, "os.PathLike[str]", Mapping[str, Any], ClusterView, Inventory, Iterable[Any]
]
"""An inventory: a path to ``kubectl ... -o json`` output, its parsed JSON, a
:class:`ClusterView`, a ``netpolgen.cluster.inventory.Inventory``, or a list of paths or parsed
JSON documents (snapshots)."""


def _text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def _is_inventory_table(inventory: Any) -> TypeGuard[Inventory]:
    return isinstance(inventory, Inventory)


def _documents(inventory: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(inventory, str | os.PathLike):
        raise InventoryError("pass inventory files on their own, not mixed with documents")
    elif isinstance(inventory, Mapping):
        yield inventory
    elif isinstance(inventory, Iterable):
        for item in inventory:
            if isinstance(item, ClusterView) or _is_inventory_table(item):
                raise InventoryError(
                    "pass a ClusterView or an Inventory on its own, not inside a list"
                )
            yield from _documents(item)
    else:
        raise InventoryError(f"unsupported inventory type {type(inventory).__name__}")
