"""Replaying a stream of flow chunks against policies without holding the flows.

``verify_files`` reads flows as ``from-flows`` does (chunked, resolved per chunk, replies inferred
across chunks) and keeps per chunk only the checked edges with their counts, the row counts by
outcome and the ports seen per destination; the report equals ``verify`` on the whole table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import group_ids
from netpolgen.check.edges import (
    EDGE_KEY,
    edge_keys,
    endpoint_columns,
    evaluate_edges,
    make_evaluator,
    rule_usage,
)
from netpolgen.check.findings import (
    denied_tables,
    empty_over_permissive,
    named_port_profiles,
    over_permissiveness,
)
from netpolgen.check.report import VerificationReport
from netpolgen.check.tables import workload_names
from netpolgen.cluster.inventory import Inventory
from netpolgen.cluster.view import ClusterView, InventoryLike, NamedPorts
from netpolgen.flows import empty_flows, validate_flows
from netpolgen.ingest import Source
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.cluster_eval import TieredEvaluator
from netpolgen.policy.cluster_model import ClusterPolicy
from netpolgen.policy.model import Policy
from netpolgen.policy.semantics import Evaluator


class Checker:
    """What :func:`verify` needs from flows, reduced chunk by chunk: the checked edges with their
    flow and record counts (in order of first appearance), the row counts by outcome, and the
    ports observed to each destination (for over-permissiveness). Memory follows the number of
    distinct edges, not of rows, so a stream of chunks can be verified in bounded memory; one
    chunk holding every row is :func:`verify` itself."""

    # Partial edge tables are combined when this many rows of them are pending.
    COMBINE_ROWS = 500_000

    def __init__(self, ev: Evaluator, cluster: ClusterView) -> None:
        self.ev = ev
        self.cluster = cluster
        self.named_profiles: list[NamedPorts] = [()]
        self.with_profiles = ev.uses_named_ports and cluster.has_named_ports
        self._edges: list[pd.DataFrame] = []
        self._pending = 0
        self._observed: list[pd.DataFrame] = []
        self.counts = dict.fromkeys(
            ("records", "records_checked", "flows_checked", "records_reply",
             "records_denied_verdict", "records_unresolved", "records_host", "to_services",
             "records_direction_undecided"),
            0,
        )  # fmt: skip

    def add(
        self,
        flows: pd.DataFrame,
        is_reply: np.ndarray,
        undecided: np.ndarray | None = None,
        denied_elsewhere: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reduce one chunk (``is_reply``: its replies; ``undecided``: rows whose direction is
        undecided, not checked and counted apart). Returns the checked rows and, per checked
        row, its edge number among this chunk's edges."""
        undecided_count = 0
        if undecided is not None and undecided.any():
            undecided = undecided & ~is_reply
            undecided_count = int(undecided.sum())
            self.counts["records_direction_undecided"] += undecided_count
            is_reply = is_reply | undecided
        cluster = self.cluster
        denied_verdict = (flows["verdict"] == "denied").fillna(False).astype(bool).to_numpy()
        if denied_elsewhere is not None:  # the other ENI logged the connection denied
            denied_verdict = denied_verdict | denied_elsewhere
        src_ns, src_labels, src_ip = endpoint_columns(flows, "src")
        dst_ns, dst_labels, dst_ip = endpoint_columns(flows, "dst")
        unresolved = ((src_ns.isna() & src_ip.isna()) | (dst_ns.isna() & dst_ip.isna())).to_numpy()
        # Traffic to and from the pod's own node (kind ``host``: kubelet probes, hostNetwork
        # daemons) is always allowed: NetworkPolicy cannot block a pod's resident node.
        host = flows["src_kind"].isin(["host"]).fillna(False).to_numpy(dtype=bool) | flows[
            "dst_kind"
        ].isin(["host"]).fillna(False).to_numpy(dtype=bool)
        checked = ~is_reply & ~denied_verdict & ~unresolved & ~host
        counts_col = flows["count"].fillna(1).to_numpy(dtype=np.int64)
        to_services = (flows["dst_kind"] == "service").fillna(False).to_numpy() & checked

        profile_col: pd.Series | None = None
        if self.with_profiles:
            profiles: list[NamedPorts] = [()]
            profile_col = named_port_profiles(flows, dst_ns, cluster, profiles)
            self.named_profiles = profiles  # the same list for every chunk (from the inventory)

        rows = np.flatnonzero(checked)
        key_columns = [src_ns, src_labels, src_ip, dst_ns, dst_labels, dst_ip]
        key_columns += [flows["protocol"].astype("string"), flows["dst_port"]]
        if profile_col is not None:
            key_columns.append(profile_col)
        edges, codes = _reduce_to_edges(key_columns, rows, counts_col, flows["dst_port"].dtype)
        self._edges.append(edges)
        self._pending += len(edges)
        if self._pending > self.COMBINE_ROWS:
            self._edges = [_combine_edges(self._edges)]
            self._pending = len(self._edges[0])

        # Ports observed to each destination workload, in any non-reply flow (allowed or not).
        mask = dst_ns.notna().to_numpy() & ~is_reply & flows["dst_port"].notna().to_numpy()
        self._observed.append(
            pd.DataFrame(
                {
                    "ns": dst_ns[mask].to_numpy(),
                    "labels": dst_labels[mask].to_numpy(),
                    "protocol": flows["protocol"].astype("string")[mask].to_numpy(),
                    "port": flows["dst_port"][mask].to_numpy(),
                }
            ).drop_duplicates()
        )
        if len(self._observed) > 16:
            self._observed = [pd.concat(self._observed, ignore_index=True).drop_duplicates()]

        c = self.counts
        c["records"] += len(flows)
        c["records_checked"] += int(len(rows))
        c["flows_checked"] += int(counts_col[rows].sum())
        c["records_reply"] += int(is_reply.sum()) - undecided_count
        c["records_denied_verdict"] += int((denied_verdict & ~is_reply).sum())
        c["records_unresolved"] += int((unresolved & ~is_reply & ~denied_verdict).sum())
        c["records_host"] += int((host & ~unresolved & ~is_reply & ~denied_verdict).sum())
        c["to_services"] += int(to_services.sum())
        return rows, codes

    def report(self, *, over_permissive: bool, max_workloads: int) -> VerificationReport:
        """The report on every chunk added (``flow_allowed`` left empty)."""
        ev, cluster = self.ev, self.cluster
        if not self._edges:  # no chunk at all
            self.add(empty_flows(), np.zeros(0, dtype=bool))
        warnings: list[str] = []
        if ev.uses_namespace_labels and not cluster.namespace_labels:
            warnings.append(
                "policies select namespaces by labels other than kubernetes.io/metadata.name, "
                "but no namespace labels are known: such peers match nothing (pass -i INVENTORY)"
            )
        to_services = self.counts["to_services"]
        if to_services:
            warnings.append(
                f"{to_services} checked records go to Service addresses: NetworkPolicy sees the "
                "backend pod after DNAT, so these are matched as plain addresses (pass -i "
                "INVENTORY when reading flows so that they resolve to pods)"
            )
        if ev.uses_named_ports and not cluster.has_named_ports:
            warnings.append(
                "policies use named ports but no inventory declares any: "
                "named-port rules match nothing (pass -i INVENTORY)"
            )
        edges = _combine_edges(self._edges) if len(self._edges) != 1 else self._edges[0]
        named_profiles = self.named_profiles
        profiles = edges.pop("profile").tolist() if self.with_profiles else [0] * len(edges)
        edges["dst_named_ports"] = pd.Series(
            [named_profiles[p] for p in profiles], index=edges.index, dtype=object
        )
        src_keys, dst_keys = edge_keys(edges)
        verdicts = evaluate_edges(edges, ev, (src_keys, dst_keys))
        for column in verdicts.columns:
            edges[column] = verdicts[column].to_numpy()

        denied, isolation = denied_tables(edges, src_keys, dst_keys, ev)
        rules = rule_usage(edges, ev, (src_keys, dst_keys))
        n_edges = len(edges)
        c = self.counts
        counts = {
            "policies": len(ev.policies),
            "records": c["records"],
            "records_checked": c["records_checked"],
            "flows_checked": c["flows_checked"],
            "flows_allowed": int(edges.loc[edges["allowed"], "flows"].sum()),
            "flows_denied": int(edges.loc[~edges["allowed"], "flows"].sum()),
            "edges_checked": n_edges,
            "edges_allowed": int(edges["allowed"].sum()),
            "edges_denied": int((~edges["allowed"]).sum()),
            "records_reply": c["records_reply"],
            "records_denied_verdict": c["records_denied_verdict"],
            "records_unresolved": c["records_unresolved"],
            "records_host": c["records_host"],
            # only when some were: reports of inputs with directions stay as they were
            **(
                {"records_direction_undecided": c["records_direction_undecided"]}
                if c["records_direction_undecided"]
                else {}
            ),
            "rules": len(rules),
            "rules_unused": int((rules["flows"] == 0).sum()),
        }
        if isinstance(ev, TieredEvaluator):  # only then: other reports stay as they were
            counts["cluster_policies"] = len(ev.cluster_policies)
        over = empty_over_permissive()
        if over_permissive:
            observed = (
                pd.concat(self._observed, ignore_index=True).drop_duplicates()
                if self._observed
                else pd.DataFrame(columns=["ns", "labels", "protocol", "port"])
            )
            over, over_counts = over_permissiveness(
                ev, cluster, edges, observed, max_workloads, warnings
            )
            counts.update(over_counts)
        if isinstance(ev, TieredEvaluator):  # reading and deciding the cluster policies
            warnings.extend(w for w in ev.warnings if w not in warnings)
        return VerificationReport(
            edges=edges,
            denied=denied,
            isolation=isolation,
            over_permissive=over,
            flow_allowed=pd.Series([], dtype="boolean"),
            counts=counts,
            rules=rules,
            warnings=warnings,
            names=workload_names(cluster),
        )


def _combine_edges(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Partial edge tables (:func:`_reduce_to_edges`) of consecutive chunks -> one, in order of
    first appearance, with ``flows`` and ``records`` summed."""
    frame = pd.concat(parts, ignore_index=True)
    if not len(frame):
        return frame
    keys = [c for c in frame.columns if c not in ("flows", "records")]
    codes = group_ids([frame[c] for c in keys])
    n_edges = int(codes.max()) + 1
    _, first = np.unique(codes, return_index=True)
    out = frame.iloc[first].reset_index(drop=True)
    for counter in ("flows", "records"):
        weights = frame[counter].to_numpy(dtype=np.int64)
        out[counter] = np.bincount(codes, weights=weights, minlength=n_edges).astype(np.int64)
    return out


def verify_stream(
    sources: list[Source],
    policies: Sequence[Policy],
    inventory: Inventory | None,
    ingest: IngestReport,
    *,
    format: str,
    over_permissive: bool,
    workers: int | None,
    on_chunk: Callable[[str, int], None] | None = None,
    engine: str = "pandas",
    scheduler: str | None = None,
    cluster_policies: Sequence[ClusterPolicy] = (),
) -> VerificationReport:
    """:func:`verify` over the flows of ``sources``, chunk by chunk (:func:`verify_chunks`),
    read in this process (and its workers) or on a Dask cluster (``engine``)."""
    from netpolgen.engine import open_chunks
    from netpolgen.engine.local import STREAM_CHUNK_SIZE
    from netpolgen.resolve import Resolver

    resolver = Resolver(inventory) if inventory is not None else None
    with open_chunks(
        list(sources), format, engine=engine, scheduler=scheduler, workers=workers,
        resolver=resolver, on_chunk=on_chunk, chunk_size=STREAM_CHUNK_SIZE,
    ) as chunks:  # fmt: skip
        report = verify_chunks(
            chunks, policies, inventory, ingest, over_permissive=over_permissive,
            cluster_policies=cluster_policies,
        )  # fmt: skip
    if inventory is not None:
        ingest.messages.extend(inventory.warnings)  # after the reading's, as load_flows has it
    if resolver is not None:
        resolver.report_to(ingest)
    return report


def verify_chunks(
    read: Callable[[IngestReport], Iterator[pd.DataFrame]],
    policies: Sequence[Policy],
    inventory: InventoryLike,
    ingest: IngestReport,
    *,
    over_permissive: bool = True,
    max_workloads: int = 2000,
    cluster_policies: Sequence[ClusterPolicy] = (),
) -> VerificationReport:
    """:func:`verify` over the chunks that ``read(report)`` yields (the same each time it is
    called: it may be called twice), without ``flow_allowed``; ``ingest`` receives the
    accounting of the pass that produced the result.

    Directions are inferred across chunks by :mod:`netpolgen.reduce.direction`, as from-flows
    does; records left undecided are not checked (as they are not wanted traffic there);
    input far out of time order is read twice (collect, then decide), still exact.
    """
    from netpolgen.reduce.direction import DirectionTracker, in_two_passes

    cluster = ClusterView.from_inventory(inventory)
    ev = make_evaluator(policies, cluster, cluster_policies)

    def run(tracker: DirectionTracker) -> tuple[Checker, IngestReport]:
        attempt = ingest.fresh()
        checker = Checker(ev, cluster)
        offset = 0
        for chunk in read(attempt):
            validate_flows(chunk)
            directions = tracker.mark(chunk, offset)
            offset += len(chunk)
            checker.add(
                chunk, directions.replies, directions.undecided > 0, directions.denied_elsewhere
            )
        tracker.finish()
        return checker, attempt

    def collect(tracker: DirectionTracker) -> None:
        offset = 0
        for chunk in read(ingest.fresh()):
            tracker.mark(chunk, offset)
            offset += len(chunk)

    checker, attempt = in_two_passes(run, collect)
    ingest.merge(attempt)
    return checker.report(over_permissive=over_permissive, max_workloads=max_workloads)


def _reduce_to_edges(
    key_columns: Sequence[pd.Series], rows: np.ndarray, counts: np.ndarray, port_dtype: Any
) -> tuple[pd.DataFrame, np.ndarray]:
    """Group the ``rows`` of a flow table by ``key_columns``, vectorised.

    Returns the edge table (the first ``len(EDGE_KEY)`` key columns under their names, then
    ``profile`` if a ninth key column was given, ``flows`` and ``records``) and, per row in
    ``rows``, its edge number.
    """
    sub = [c.iloc[rows].reset_index(drop=True) for c in key_columns]
    if len(rows):
        codes = group_ids(sub)
        n_edges = int(codes.max()) + 1
        _, first = np.unique(codes, return_index=True)
    else:
        codes = np.zeros(0, dtype=np.int64)
        n_edges = 0
        first = np.zeros(0, dtype=np.int64)
    edges = pd.DataFrame({name: sub[i].iloc[first].to_numpy() for i, name in enumerate(EDGE_KEY)})
    for name in EDGE_KEY:
        edges[name] = edges[name].astype(port_dtype if name == "dst_port" else "string")
    if len(sub) > len(EDGE_KEY):
        edges["profile"] = sub[len(EDGE_KEY)].iloc[first].to_numpy().astype(np.int64)
    edges["flows"] = np.bincount(codes, weights=counts[rows], minlength=n_edges).astype(np.int64)
    edges["records"] = np.bincount(codes, minlength=n_edges).astype(np.int64)
    return edges, codes
