"""Workload identity from the inventory: a pod belongs to the root of its owner chain.

With ``-i``, a workload is what a person would call it: the Deployment (through its ReplicaSet),
the CronJob (through its Job), the StatefulSet or the DaemonSet that owns the pod, not a label
set. Its selector is the smallest label selector that selects all of its pods and no other pod
that the inventory lists in its namespace (not only the pods seen in flows); pods of one
Deployment whose template labels changed between revisions still form one workload, selected by
the labels they share.

NetworkPolicy can only tell pods apart by labels: two owners whose pods carry identical stable
label sets cannot be separated by any selector, so they are treated as one workload, with a
warning.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping

import pandas as pd

from netpolgen.cluster.inventory import Inventory
from netpolgen.identity.workloads import Workloads, minimal_selector, workload_names
from netpolgen.labels import canonical_labels, labels_from_canonical, stable_labels
from netpolgen.selectors import LabelSelector


def inventory_pods(inventory: Inventory) -> pd.DataFrame:
    """The inventory's pods, one row per pod (latest snapshot), with ``key`` and ``workload``.

    ``key`` is ``ns/stable-labels`` (how edges name a pod); ``workload`` is ``ns/Kind/name`` for
    pods with a controller, else the key (a bare pod is grouped by its labels).
    """
    pods = inventory.pods.sort_values("snapshot", kind="stable").drop_duplicates(
        ["namespace", "name"], keep="last"
    )
    labels = pods["labels"].fillna("")
    stable = labels.map({v: stable_labels(v) for v in labels.unique()})
    key = pods["namespace"] + "/" + stable
    owned = pods["workload_name"].notna() & (pods["workload_name"] != "")
    workload = (
        pods["namespace"]
        + "/"
        + pods["workload_kind"].fillna("")
        + "/"
        + pods["workload_name"].fillna("")
    )
    return pd.DataFrame(
        {
            "namespace": pods["namespace"],
            "pod": pods["name"],
            "labels": stable,
            "key": key,
            "workload": workload.where(owned, key),
            "kind": pods["workload_kind"].where(owned, pd.NA),
            "owner": pods["workload_name"].where(owned, pd.NA),
        }
    ).reset_index(drop=True)


def inventory_workloads(endpoints: pd.DataFrame, inventory: Inventory) -> Workloads:
    """Workloads for the pod endpoints of a flow table, identified through ``inventory``.

    Args:
        endpoints: ``identity.pod_endpoints(flows)``: namespace, labels (stable), pod.
        inventory: the cluster's pods (``load_inventory``).

    Returns:
        :class:`Workloads` whose ``members`` map each endpoint key of the flows to its
        workload, and whose selectors are exact against every pod of the inventory.
    """
    pods = inventory_pods(inventory)
    warnings: list[str] = []
    owners_of_key = {
        str(k): tuple(sorted(set(names.astype(str))))
        for k, names in pods.groupby("key")["workload"]
    }
    entity_of_key: dict[str, str] = {}
    for key, owners in owners_of_key.items():
        if len(owners) == 1:
            entity_of_key[str(key)] = owners[0]
        else:
            entity_of_key[str(key)] = str(key)
            names = ", ".join(o.split("/", 1)[1] for o in owners)
            warnings.append(
                f"{names} share the labels {{{str(key).split('/', 1)[1]}}}: no selector can tell "
                "their pods apart, so their policies treat them as one workload"
            )
    pods["entity"] = pods["key"].map(entity_of_key)

    flow_keys = sorted(set(endpoints["namespace"].astype(str) + "/" + endpoints["labels"]))
    members = {k: entity_of_key.get(k, k) for k in flow_keys}
    used = sorted(set(members.values()))

    # Every label set of the namespace, with the entity it belongs to: inventory pods, and pods
    # seen only in flows (not in the inventory, e.g. deleted before the snapshot).
    universe: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for namespace, entity, labels in zip(
        pods["namespace"], pods["entity"], pods["labels"], strict=True
    ):
        universe[str(namespace)][str(entity)].add(str(labels))
    for key in flow_keys:
        namespace, labels = key.split("/", 1)
        universe[namespace][members[key]].add(labels)

    rows = []
    selectors: dict[str, LabelSelector] = {}
    pods_by_entity = {
        str(e): tuple(sorted(names.astype(str))) for e, names in pods.groupby("entity")["pod"]
    }
    first_pod = pods.drop_duplicates("entity").set_index("entity")
    label_sets: dict[str, _LabelSets] = {}
    for workload in used:
        namespace = workload.split("/", 1)[0]
        own_sets = [dict(labels_from_canonical(s)) for s in sorted(universe[namespace][workload])]
        shared = {k: v for k, v in own_sets[0].items() if all(o.get(k) == v for o in own_sets[1:])}
        if namespace not in label_sets:
            label_sets[namespace] = _LabelSets(universe[namespace])
        others = label_sets[namespace].others(workload, shared)
        selector = minimal_selector(shared, others)
        selectors[workload] = selector
        leaks = sorted({canonical_labels(o) for o in others if selector.matches(o)})
        if leaks:
            warnings.append(
                f"the selector of {workload} ({selector.describe()}) also selects pods labelled "
                + "; ".join(leaks[:3])
            )
        in_inventory = workload in first_pod.index
        rows.append(
            {
                "workload": workload,
                "namespace": namespace,
                "labels": canonical_labels(shared),
                "pods": pods_by_entity.get(workload, ()),
                "kind": first_pod.loc[workload, "kind"] if in_inventory else pd.NA,
                "owner": first_pod.loc[workload, "owner"] if in_inventory else pd.NA,
            }
        )
    table = pd.DataFrame(
        rows, columns=["workload", "namespace", "labels", "pods", "kind", "owner"]
    ).set_index("workload", drop=False)
    table["name"] = workload_names(table, selectors) if len(table) else pd.Series(dtype="string")
    return Workloads(table, selectors, members, tuple(warnings))


# The cluster resolver: CoreDNS or kube-dns pods in kube-system. Their labels differ between
# distributions (k8s-app=kube-dns is common, but not universal: IG #5338), so with an inventory
# the selector is computed from the pods themselves.
DNS_NAMESPACE = "kube-system"
DNS_OWNER_NAMES = frozenset({"coredns", "kube-dns", "rke2-coredns-rke2-coredns"})


def dns_selector(inventory: Inventory) -> LabelSelector | None:
    """The exact selector of the cluster resolver's pods in ``kube-system``, if the inventory
    lists them."""
    pods = inventory_pods(inventory)
    pods = pods[pods["namespace"] == DNS_NAMESPACE]
    if pods.empty:
        return None
    is_dns = pods["labels"].str.contains(r"(?:^|,)k8s-app=kube-dns(?:,|$)", regex=True) | pods[
        "owner"
    ].isin(DNS_OWNER_NAMES).fillna(False).astype(bool)
    dns = pods[is_dns.fillna(False).astype(bool)]
    if dns.empty:
        return None
    own = [dict(labels_from_canonical(s)) for s in sorted(set(dns["labels"]))]
    shared = {k: v for k, v in own[0].items() if all(o.get(k) == v for o in own[1:])}
    others = [dict(labels_from_canonical(s)) for s in set(pods.loc[~is_dns, "labels"])]
    return minimal_selector(shared, others)


def address_notes(inventory: Inventory) -> dict[str, str]:
    """What the inventory says an address is, for addresses that policies reach by ipBlock:
    nodes, hostNetwork pods, and the API server's Service."""
    notes: dict[str, str] = {}
    for name, ip in zip(inventory.nodes["name"], inventory.nodes["ip"], strict=True):
        if isinstance(ip, str):
            notes[ip] = f"node {name}"
    pods = inventory.pods[inventory.pods["host_network"].fillna(False).astype(bool)]
    for namespace, name, ip in zip(pods["namespace"], pods["name"], pods["ip"], strict=True):
        if isinstance(ip, str):
            note = f"hostNetwork pod {namespace}/{name}"
            notes[ip] = f"{notes[ip]} ({note})" if ip in notes and note not in notes[ip] else note
    services = inventory.services
    api = services[(services["namespace"] == "default") & (services["name"] == "kubernetes")]
    for ip in api["ip"].dropna():
        notes[str(ip)] = (
            "Kubernetes API server Service (ClusterIP): NetworkPolicy sees the endpoint address "
            "after DNAT, so also allow the addresses of `kubectl get endpoints kubernetes`"
        )
    return notes


def named_ports(inventory: Inventory, workloads: Workloads) -> dict[tuple[str, str, int], str]:
    """``(workload, protocol, port) -> name`` where every pod of the workload in the inventory
    names that container port the same way (named ports resolve per destination pod, so a name
    is only safe when all selected pods agree)."""
    pods = inventory_pods(inventory)
    declared = inventory.container_ports(latest=True)
    declared = declared[declared["name"].notna()]
    names_of: dict[str, dict[tuple[str, int], str]] = {}
    for namespace, pod, name, protocol, port in zip(
        declared["namespace"], declared["pod"], declared["name"], declared["protocol"],
        declared["port"], strict=True,
    ):  # fmt: skip
        names_of.setdefault(f"{namespace}/{pod}", {})[(str(protocol), int(port))] = str(name)
    pods["entity"] = pods["key"].map(lambda k: workloads.workload_of(str(k)))
    out: dict[tuple[str, str, int], str] = {}
    for workload, group in pods.groupby("entity"):
        if workload not in workloads.selectors:
            continue
        maps = [
            names_of.get(f"{namespace}/{pod}", {})
            for namespace, pod in zip(group["namespace"], group["pod"], strict=True)
        ]
        for (protocol, port), name in maps[0].items():
            if all(m.get((protocol, port)) == name for m in maps[1:]):
                out[(str(workload), protocol, port)] = name
    return out


def cluster_networks(inventory: Inventory) -> tuple[str, ...]:
    """Pod CIDRs, node, pod and Service addresses: what a widened ``ipBlock`` must not cover."""
    networks: set[str] = set()
    for text in inventory.nodes["pod_cidrs"].dropna():
        networks.update(c.strip() for c in str(text).split(",") if c.strip())
    for table in (inventory.nodes, inventory.pods, inventory.services):
        networks.update(str(ip) for ip in table["ip"].dropna())
    return tuple(sorted(networks))


def stray_pod_addresses(endpoints: pd.DataFrame, inventory: Inventory) -> list[str]:
    """Warnings for outside peers whose address lies in a node's pod CIDR: a pod the inventory
    does not list (taken too early or too late?) held it, and a ``/32`` for it will admit
    whichever pod gets the address next."""
    cidrs = []
    for text in inventory.nodes["pod_cidrs"].dropna():
        for cidr in str(text).split(","):
            try:
                cidrs.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                continue
    warnings = []
    for key in endpoints.index:
        if not str(key).startswith("ip:"):
            continue
        address = ipaddress.ip_address(str(key)[3:])
        if any(address.version == c.version and address in c for c in cidrs):
            warnings.append(
                f"{address} is in the pod range but no pod of the inventory held it at the time: "
                "it is allowed as a single address, which the next pod to get it inherits "
                "(give an inventory snapshot from the time of the flows)"
            )
    return warnings


class _LabelSets:
    """A namespace's label sets, parsed once, with an index from each label to the sets that
    carry it, so that each workload looks only at the sets it could be confused with.

    The selector of a workload uses only labels its pods share, so a set can match it, or
    matter to :func:`minimal_selector` (which excludes the sets that match a candidate), only
    by carrying one of those labels: the sets carrying none of them are left out, which keeps
    the result the same and turns a loop over every pair of workloads (quadratic: a namespace
    of 10,000 pods took hours) into lookups.
    """

    def __init__(self, entities: Mapping[str, set[str]]) -> None:
        self.entries = [
            (entity, dict(labels_from_canonical(text)))
            for entity, texts in entities.items()
            for text in texts
        ]
        self.index: dict[tuple[str, str], list[int]] = defaultdict(list)
        for number, (_, labels) in enumerate(self.entries):
            for pair in labels.items():
                self.index[pair].append(number)

    def others(self, workload: str, shared: Mapping[str, str]) -> list[dict[str, str]]:
        """The label sets of other workloads that carry one of ``shared`` (all of them when
        ``shared`` is empty: a selector of no label matches every pod), in their order."""
        if shared:
            numbers: Iterable[int] = sorted(
                {n for pair in shared.items() for n in self.index.get(pair, ())}
            )
        else:
            numbers = range(len(self.entries))
        return [self.entries[n][1] for n in numbers if self.entries[n][0] != workload]
