"""IP -> endpoint, time-aware: fill each flow's identities from a cluster :class:`Inventory`.

Rules (in this order, per side of each flow):

1. A side that already carries a namespace and labels (CSV, Hubble) is left alone, and so is one
   the source marked ``host`` (Cilium's own node). A ``node`` mark (Cilium ``remote-node``, GKE
   details with only ``cluster``) is a hint: a cloud log says where a packet was seen (GCP
   ``*_instance`` is the VM hosting a pod's alias IP, FORMATS.md §3.4), the inventory what the
   address is then: a pod (rule 2), a node or hostNetwork pod (rule 4), else it stays ``node``.
2. **Pod IPs, time-aware.** An IP maps to the pod that held it *at the flow's time*: the pod whose
   interval ``[start, end)`` contains the time. ``start`` is ``status.startTime`` (set by the
   kubelet before the sandbox, hence before the pod gets its IP). ``end`` is the earliest of: the
   pod's containers' ``finishedAt`` (Succeeded/Failed pods release their IP), the first snapshot
   taken after the last one that lists the pod (it was deleted in between), and the start of the
   next pod holding the same IP (an IP has one owner at a time, so the earlier pod was gone by
   then). A flow is therefore never attributed to a later owner of its IP. Flows without a time
   take the IP's latest owner.
3. **Service IPs** (ClusterIP, external and load-balancer IPs), seen when a flow is recorded
   before kube-proxy's DNAT: the Service's backends, the pods its selector matches. The side gets
   the Service's namespace and the labels *all* its backends share (the selector at least), so a
   rule built from it selects every backend, whichever workload (a Service over several
   Deployments, e.g. canary and stable, becomes their common labels), and the Service port
   becomes the backends' ``targetPort`` (named ports looked up in the backends' containers), the
   port a NetworkPolicy must name. A selector-less Service (``default/kubernetes``, ExternalName,
   manual Endpoints) becomes kind ``service``.
4. **Node IPs** and the IPs of hostNetwork pods (which are their node's IP): kind ``node``.
   NetworkPolicy cannot select host-network pods, only address their node by ``ipBlock``.
5. Otherwise an outside peer, kind ``world`` — unless the IP lies inside a node's pod CIDR: then
   it is a pod the inventory does not know, kind ``unknown`` (a pod address is recycled, so it
   makes a poor ``ipBlock``; the report counts these addresses).

A side that names its pod (GCP ``gke_details``, Hubble with field-masked labels) takes the labels
of the pod of that name (latest snapshot) before any address lookup: the source knew the pod at
the flow's time, while an inventory only samples it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import first_of_groups, group_ids, select_text
from netpolgen.cluster.inventory import Inventory
from netpolgen.cluster.listening import ListeningPorts, direct
from netpolgen.cluster.services import service_endpoints, service_ports
from netpolgen.flows import COPY_ON_WRITE, conform_flows, validate_flows
from netpolgen.ingest.report import IngestReport

__all__ = ["pod_ip_intervals", "resolve_flows"]

_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
_FAR_FUTURE = pd.Timestamp("2200-01-01", tz="UTC")


def resolve_flows(
    flows: pd.DataFrame, inventory: Inventory, *, report: IngestReport | None = None
) -> pd.DataFrame:
    """Fill ``src_``/``dst_`` namespace, pod, labels and kind from the inventory.

    Args:
        flows: a flow table (``load_flows``).
        inventory: pods, services and nodes (``load_inventory``), one or more snapshots.
        report: if given, a note on how many addresses matched nothing is added to its messages.

    Returns:
        A new flow table; the input is not modified. See the module docstring for the rules.

    Examples:
        >>> inventory = load_inventory("pods.json")  # doctest: +SKIP
        >>> flows = resolve_flows(load_flows("vpc.log"), inventory)  # doctest: +SKIP
    """
    resolver = Resolver(inventory)
    out = resolver(flows)
    if report is not None:
        resolver.report_to(report)
    return out


class Resolver:
    """:func:`resolve_flows` for a stream: the inventory's tables are built once, chunks are
    resolved one by one (rows are independent), and the notes are written once at the end."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.owners = pod_ip_intervals(inventory)
        self.services = service_endpoints(inventory)
        self.ports = service_ports(inventory)
        self.node_ips = _node_ips(inventory)
        self.cidrs = _pod_cidrs(inventory)
        self.by_name = _pods_by_name(inventory)
        self.listening = ListeningPorts(inventory)  # where pods listen: direction rule (b)
        self.service_ips = set(self.services["ip"].dropna().astype(str))
        self.bounds = _time_bounds(self.owners)
        # Answers of earlier chunks by distinct input (_resolve_distinct), for every later chunk.
        self._answers: pd.DataFrame | None = None
        self._answer_rows: dict[tuple[Any, ...], int] = {}
        self.clear()

    def __copy__(self) -> Resolver:
        # The tables are shared; the answer cache is not: a copy that extends its answers must
        # not leave the original's row numbers pointing past the original's table.
        twin = object.__new__(Resolver)
        twin.__dict__.update(self.__dict__)
        twin._answer_rows = dict(self._answer_rows)
        return twin

    def clear(self) -> None:
        """Forget what earlier chunks noted (a new pass over the input)."""
        self.unmatched: set[str] = set()
        self.untranslated = 0
        self.first: pd.Timestamp | None = None
        self.last: pd.Timestamp | None = None

    def notes(self) -> tuple[set[str], int, pd.Timestamp | None, pd.Timestamp | None]:
        """What the chunks resolved so far noted, for :meth:`absorb` in another process."""
        return self.unmatched, self.untranslated, self.first, self.last

    def absorb(self, notes: tuple[set[str], int, pd.Timestamp | None, pd.Timestamp | None]) -> None:
        """Add the :meth:`notes` of a copy that resolved other chunks (a worker process)."""
        unmatched, untranslated, first, last = notes
        self.unmatched |= unmatched
        self.untranslated += untranslated
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)

    def report_to(self, report: IngestReport) -> None:
        """Add the notes (addresses matched nothing, snapshots far from the flows) to ``report``."""
        if self.unmatched:
            report.unmatched_addresses |= self.unmatched
            report.messages.append(
                f"inventory: {len(self.unmatched)} address(es) matched no pod, service or node "
                "at the flow's time; they are treated as outside peers (or unknown pods inside "
                "pod CIDRs)"
            )
        if self.untranslated:
            report.messages.append(
                f"inventory: {self.untranslated} flow(s) to a Service port whose backend port "
                "(targetPort) is unknown keep the Service port"
            )
        report.messages.extend(_window_warnings(self.first, self.last, self.inventory))

    def __call__(self, flows: pd.DataFrame) -> pd.DataFrame:
        """Resolve one flow table (a chunk); the input is not modified."""
        validate_flows(flows)
        out = flows.copy()
        if not len(out):
            return out
        times = flows["time"].dropna()
        if len(times):
            first, last = times.min(), times.max()
            self.first = first if self.first is None else min(self.first, first)
            self.last = last if self.last is None else max(self.last, last)
        at_service = {side: np.zeros(len(out), dtype=bool) for side in ("src", "dst")}
        for side in ("src", "dst"):
            namespace = out[f"{side}_namespace"]
            labels = out[f"{side}_labels"]
            kind = out[f"{side}_kind"]  # categorical: text only for the distinct inputs
            known = namespace.notna() & labels.notna()
            need = (~known & ~kind.eq("host")).fillna(False).astype(bool)
            if not need.any():
                continue
            # Every row (an addresses-only log): the columns as they are, no selection.
            rows_needed = slice(None) if need.all() else need
            part = pd.DataFrame(
                {
                    "time": out.loc[rows_needed, "time"],
                    "ip": out.loc[rows_needed, f"{side}_ip"],
                    "namespace": namespace[rows_needed],
                    "pod": out.loc[rows_needed, f"{side}_pod"],
                    "labels": labels[rows_needed],
                    "kind": kind[rows_needed],
                    "port": out.loc[rows_needed, f"{side}_port"].astype("Int64"),
                    "protocol": out.loc[rows_needed, "protocol"],
                },
                copy=not COPY_ON_WRITE,
            )
            rows, at_side = self._resolve_distinct(part)
            # Each row's answer, taken once per column from the small answer table (-1: the row
            # keeps its own values); whole-column selects (Arrow's if_else), not masked
            # assignment, which pandas does value by value on Arrow-backed text.
            need_np = need.to_numpy(dtype=bool)
            answer = np.full(len(out), -1, dtype=np.int64)
            answer[need_np] = rows
            table = self._answers
            assert table is not None

            def taken(column: str) -> pd.Series:
                values = table[column].array.take(answer, allow_fill=True)  # noqa: B023
                return pd.Series(values, index=out.index)

            service = at_service[side]
            service[need_np] = at_side
            port = taken("port").where(service, out[f"{side}_port"].astype("Int64"))
            out[f"{side}_port"] = out[f"{side}_port"].mask(need, port.astype("UInt16"))
            for column in ("namespace", "pod", "labels"):
                out[f"{side}_{column}"] = select_text(
                    need_np, taken(column), out[f"{side}_{column}"]
                )
            out[f"{side}_kind"] = _kinds(need_np, table["kind"], answer, kind)
            unmatched = np.flatnonzero(table["_unmatched"].to_numpy(dtype=bool)[rows])
            if len(unmatched):  # the address of one row per answer: an answer has one address
                _, first = np.unique(rows[unmatched], return_index=True)
                self.unmatched |= set(part["ip"].iloc[unmatched[first]].dropna())
            self.untranslated += int(table["_untranslated"].to_numpy(dtype=bool)[rows].sum())
        # Direction from the inventory where the record gave none (netpolgen.reduce.direction, b).
        return direct(conform_flows(out), self.listening, at_service)

    def _resolve_distinct(self, part: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """:func:`_resolve` once per distinct input instead of once per row: per row of
        ``part``, its row in the answer table, and whether its address is a Service's.

        A row's answer depends on its address, the source's names, kind and protocol, its port
        only at a Service address (translation), and its time only through which pod-address
        intervals it falls in: times between the same two interval bounds resolve alike. So rows
        are grouped by those, one row per group is resolved, and the answers are spread back.
        """
        ip = part["ip"]
        at_service = ip.isin(self.service_ips).fillna(False).astype(bool).to_numpy()
        nanos = part["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        segment = np.searchsorted(self.bounds, nanos, side="right").astype(np.int64)
        segment[part["time"].isna().to_numpy()] = -1
        group = group_ids(
            [
                segment,
                ip,
                part["namespace"],
                part["pod"],
                part["labels"],
                part["kind"],
                part["protocol"],
                part["port"].where(at_service),
            ]
        )
        first = first_of_groups(group)
        sample = part.iloc[first].reset_index(drop=True)
        for name in ("kind", "protocol"):  # categorical per row, text for the resolution
            sample[name] = sample[name].astype("string")
        service_port = part["port"].where(at_service)
        keys = list(
            zip(
                segment[first].tolist(),
                *(sample[name].tolist() for name in _INPUTS),
                service_port.iloc[first].tolist(),
                strict=True,
            )
        )
        answers = self._answers_for(sample, keys)
        return answers[group], at_service

    def _answers_for(self, sample: pd.DataFrame, keys: list[tuple[Any, ...]]) -> np.ndarray:
        """The rows of the answer table that hold :func:`_resolve` of each row of ``sample``
        (whose inputs are ``keys``): earlier chunks' answers where there are some; only the new
        inputs are resolved and added."""
        rows = np.fromiter((self._answer_rows.get(key, -1) for key in keys), np.int64, len(keys))
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            if len(self._answer_rows) + len(missing) > _MAX_ANSWERS:
                self._answers, self._answer_rows = None, {}  # a bound, not an LRU
                rows[:] = -1
                missing = np.arange(len(keys))
            new = _resolve(
                sample.iloc[missing].reset_index(drop=True), self.owners, self.services,
                self.ports, self.node_ips, self.cidrs, self.by_name,
            )  # fmt: skip
            start = 0 if self._answers is None else len(self._answers)
            self._answers = (
                new if self._answers is None else pd.concat([self._answers, new], ignore_index=True)
            )
            for offset, position in enumerate(missing.tolist()):
                self._answer_rows[keys[position]] = start + offset
            rows[missing] = np.arange(start, start + len(missing))
        return rows


# What a side's answer depends on besides its time segment and (at a Service) its port.
_INPUTS = ("ip", "namespace", "pod", "labels", "kind", "protocol")
_MAX_ANSWERS = 1_000_000


def _time_bounds(owners: pd.DataFrame) -> np.ndarray:
    """The sorted distinct starts and ends of the pod-address intervals (int64 ns)."""
    if not len(owners):
        return np.array([], dtype=np.int64)
    values = pd.concat([owners["start"], owners["end"]]).dropna()
    stamps = pd.to_datetime(values, utc=True).to_numpy(dtype="datetime64[ns]").view(np.int64)
    return np.unique(stamps)


def _kinds(where: np.ndarray, answers: pd.Series, rows: np.ndarray, own: pd.Series) -> pd.Series:
    """The kind column: the answer table's kind (text) at ``rows`` where ``where``, else the
    row's own (categorical); built from codes, since text per row would only be converted back.
    """
    position, used = pd.factorize(rows[where])
    categories = own.cat.categories
    code_of = {name: code for code, name in enumerate(categories)}  # a handful of kinds
    answer_codes = np.array([code_of.get(k, -1) for k in answers.iloc[used].tolist()], np.int64)
    codes = own.cat.codes.to_numpy().copy()
    codes[where] = answer_codes[position]
    dtype = pd.CategoricalDtype(categories)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=own.index)


# Snapshots farther than this from every flow say little about who held an address then.
_SNAPSHOT_DISTANCE = pd.Timedelta(days=1)


def _window_warnings(
    first: pd.Timestamp | None, last: pd.Timestamp | None, inventory: Inventory
) -> list[str]:
    if first is None or last is None or not inventory.snapshots:
        return []
    snapshots = sorted(inventory.snapshots)
    if snapshots[-1] < first - _SNAPSHOT_DISTANCE or snapshots[0] > last + _SNAPSHOT_DISTANCE:
        return [
            f"inventory: snapshots taken {snapshots[0]:%Y-%m-%d %H:%M} to "
            f"{snapshots[-1]:%Y-%m-%d %H:%M} UTC, flows from {first:%Y-%m-%d %H:%M} to "
            f"{last:%Y-%m-%d %H:%M} UTC: pod addresses may have changed hands in between; "
            "take inventory snapshots during the flow window"
        ]
    return []


def pod_ip_intervals(inventory: Inventory) -> pd.DataFrame:
    """One row per (pod, IP) with the interval ``[start, end)`` the pod held the IP.

    Columns: ip, start, end (NaT: still holding it at the last snapshot), namespace, pod, labels,
    uid. hostNetwork pods are left out (their IP is the node's). See the module docstring.
    """
    pods = inventory.pods
    pods = pods[~pods["host_network"] & pods["ip"].notna()]
    columns = ["ip", "start", "end", "namespace", "pod", "labels", "uid"]
    if not len(pods):
        return pd.DataFrame({c: pd.Series(dtype="string") for c in columns}).assign(
            start=pd.Series(dtype="datetime64[ns, UTC]"), end=pd.Series(dtype="datetime64[ns, UTC]")
        )
    pods = pods.sort_values("snapshot", kind="stable")
    grouped = pods.groupby(["uid", "ip"], sort=False)
    table = grouped.agg(
        start=("start", "min"),
        last_seen=("snapshot", "max"),
        finished=("finished", "min"),
        namespace=("namespace", "last"),
        pod=("name", "last"),
        labels=("labels", "last"),
    ).reset_index()
    table["start"] = table["start"].fillna(_EPOCH)
    snapshots = np.array(sorted({pd.Timestamp(s).value for s in inventory.snapshots}), dtype="i8")
    later = np.searchsorted(snapshots, table["last_seen"].astype("int64").to_numpy(), "right")
    # The first snapshot after the last one listing the pod: it was gone by then.
    nanos = np.where(later < len(snapshots), snapshots[np.minimum(later, len(snapshots) - 1)], 0)
    inferred = pd.Series(pd.to_datetime(nanos, utc=True), index=table.index).where(
        later < len(snapshots)
    )
    end = table["finished"].where(
        table["finished"].notna() & (inferred.isna() | (table["finished"] < inferred)), inferred
    )
    table = table.assign(end=end).sort_values(["ip", "start"], kind="stable")
    next_start = table.groupby("ip", sort=False)["start"].shift(-1)
    truncate = next_start.notna() & (table["end"].isna() | (next_start < table["end"]))
    table["end"] = table["end"].mask(truncate, next_start)
    return table[columns].reset_index(drop=True)


def _node_ips(inventory: Inventory) -> set[str]:
    host_pods = inventory.pods[inventory.pods["host_network"]]["ip"].dropna()
    return set(inventory.nodes["ip"].dropna()) | set(host_pods)


def _pod_cidrs(inventory: Inventory) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for text in inventory.nodes["pod_cidrs"].dropna().unique():
        for cidr in str(text).split(","):
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                continue
    return networks


def _pods_by_name(inventory: Inventory) -> pd.DataFrame:
    pods = inventory.pods.sort_values("snapshot", kind="stable")
    latest = pods.drop_duplicates(["namespace", "name"], keep="last")
    return latest.loc[~latest["host_network"], ["namespace", "name", "labels"]].rename(
        columns={"name": "pod", "labels": "_name_labels"}
    )


def _resolve(
    part: pd.DataFrame,
    owners: pd.DataFrame,
    services: pd.DataFrame,
    ports: pd.DataFrame,
    node_ips: set[str],
    cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    by_name: pd.DataFrame,
) -> pd.DataFrame:
    """Resolve one side of the flows that need it (see the module docstring for the order)."""
    result = part.copy()
    result["_unmatched"] = False
    result["_untranslated"] = False
    done = pd.Series(False, index=part.index)

    # 1. A side the source named (GKE details, Hubble with field-masked labels): the source knew
    # the pod at the flow's time, so its name beats an address lookup; labels come by name.
    named = part["namespace"].notna() & part["pod"].notna()
    if named.any() and len(by_name):
        lookup = part.loc[named, ["namespace", "pod"]].reset_index()
        hit = lookup.merge(by_name, on=["namespace", "pod"]).set_index(lookup.columns[0])
        if len(hit):
            result.loc[hit.index, "labels"] = hit["_name_labels"]
            result.loc[hit.index, "kind"] = "pod"
            done.loc[hit.index] = True

    # 2. pod IPs at the flow's time: the latest owner that started at or before the time.
    with_ip = part[~done & part["ip"].notna()]
    if len(with_ip) and len(owners):
        left = pd.DataFrame(
            {
                "_row": with_ip.index,
                "ip": with_ip["ip"].astype(str).to_numpy(),
                "_time": with_ip["time"].fillna(_FAR_FUTURE).to_numpy(),
                "_untimed": with_ip["time"].isna().to_numpy(),
            }
        ).sort_values("_time", kind="stable")
        right = owners.assign(ip=owners["ip"].astype(str)).sort_values("start", kind="stable")
        matched = pd.merge_asof(
            left, right, left_on="_time", right_on="start", by="ip", direction="backward"
        )
        ok = matched["start"].notna() & (
            matched["_untimed"] | matched["end"].isna() | (matched["_time"] < matched["end"])
        )
        matched = matched[ok].set_index("_row")
        result.loc[matched.index, "namespace"] = matched["namespace"]
        result.loc[matched.index, "pod"] = matched["pod"]
        result.loc[matched.index, "labels"] = matched["labels"]
        result.loc[matched.index, "kind"] = "pod"
        done.loc[matched.index] = True

    # 3. Service IPs -> the Service's backends.
    rest = part[~done & part["ip"].notna()]
    if len(rest) and len(services):
        lookup = rest[["ip"]].reset_index()
        hit = lookup.merge(services, on="ip").set_index(lookup.columns[0])
        if len(hit):
            result.loc[hit.index, "namespace"] = hit["namespace"]
            result.loc[hit.index, "pod"] = pd.NA
            result.loc[hit.index, "labels"] = hit["labels"]
            result.loc[hit.index, "kind"] = hit["kind"]
            done.loc[hit.index] = True
            # The Service port -> the backends' port (targetPort), which policies must name.
            asked = part.loc[hit.index, ["ip", "protocol", "port"]].reset_index()
            translated = (
                asked.merge(ports.astype({"port": "Int64"}), on=["ip", "protocol", "port"])
                .set_index(asked.columns[0])["target"]
                .dropna()
            )
            result.loc[translated.index, "port"] = translated
            # A selector Service whose port has no known backend port: the policy would name
            # the Service port, which the pods may not listen on. Say so.
            kept = hit.index[(hit["kind"] == "pod").to_numpy()].difference(translated.index)
            result.loc[kept[part.loc[kept, "port"].notna().to_numpy()], "_untranslated"] = True

    # 4. Node IPs and hostNetwork pods.
    is_node = ~done & part["ip"].isin(node_ips).fillna(False).astype(bool)
    result.loc[is_node, ["namespace", "pod", "labels"]] = pd.NA
    result.loc[is_node, "kind"] = "node"
    done |= is_node

    # 5. Everything else with an address is outside, or an unknown pod; a node mark stays.
    rest_mask = ~done & part["ip"].notna() & ~part["kind"].isin(["pod", "node"]).fillna(False)
    if rest_mask.any():
        ips = part.loc[rest_mask, "ip"]
        inside = {ip: _in_cidrs(str(ip), cidrs) for ip in ips.unique()}
        result.loc[rest_mask, "kind"] = ips.map(inside).map({True: "unknown", False: "world"})
        result.loc[rest_mask, "_unmatched"] = True
    return result


def _in_cidrs(ip: str, cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address.version == net.version and address in net for net in cidrs)
