"""From flows to edges: drop what must never become a rule, then count per connection type.

An *edge* is one (source endpoint, destination endpoint, protocol, destination port) with the
number of flows behind it and when it was first and last seen. Endpoints are keyed as
``pod:<namespace>/<stable labels>`` (a workload) or ``ip:<address>`` (anything NetworkPolicy can
only reach by ``ipBlock``: outside addresses, nodes, unresolved IPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from netpolgen.flows import validate_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.labels import stable_labels
from netpolgen.reduce.direction import (
    DENIED_ELSEWHERE,
    DirectionTracker,
    mark_directions,
    report_examples,
)
from netpolgen.reduce.summary import inside_kinds

EDGE_COLUMNS = ("src", "dst", "protocol", "dst_port", "count", "first_seen", "last_seen")
# Endpoint kinds that a podSelector can name; everything else is addressed by IP.
SELECTABLE_KINDS = frozenset({"pod"})


class EdgeExclusion(Protocol):
    """Edges an option leaves out after aggregation (``--guardrails``' deny entries): their
    records are counted as filtered for ``reason``, with the returned warnings."""

    @property
    def reason(self) -> str: ...

    def excluded(self, edges: pd.DataFrame) -> tuple[np.ndarray, list[str]]: ...


@dataclass(frozen=True)
class EdgeOptions:
    """What counts as wanted traffic (see ``GenerateOptions`` for the user-facing options)."""

    include_denied: bool = False
    min_count: int = 1
    exclude: EdgeExclusion | None = None


def endpoint_keys(flows: pd.DataFrame, side: str) -> pd.Series:
    """The endpoint key of each row's ``side`` (``src`` or ``dst``); NA when unidentifiable."""
    namespace = flows[f"{side}_namespace"]
    is_pod = (flows[f"{side}_kind"] == "pod").fillna(False).astype(bool) & namespace.notna()
    is_pod_np = is_pod.to_numpy(dtype=bool)
    # Keys are built once per distinct (namespace, labels) or address and taken per row: string
    # concatenation per row costs more than all the rest.
    codes = np.full(len(flows), -1, dtype=np.int64)
    keys: list[str] = []
    pods = np.flatnonzero(is_pod_np)
    if len(pods):
        ns_codes, ns_uniques = pd.factorize(namespace.iloc[pods])
        label_codes, label_uniques = pd.factorize(flows[f"{side}_labels"].iloc[pods].fillna(""))
        stable = [stable_labels(v) for v in label_uniques]
        combined = ns_codes.astype(np.int64) * (len(label_uniques) + 1) + label_codes
        distinct, inverse = np.unique(combined, return_inverse=True)
        width = len(label_uniques) + 1
        keys = [f"pod:{ns_uniques[c // width]}/{stable[c % width]}" for c in distinct]
        codes[pods] = inverse
    others = np.flatnonzero(~is_pod_np)
    if len(others):
        ip_codes, ip_uniques = pd.factorize(flows[f"{side}_ip"].iloc[others])
        start = len(keys)
        keys += [f"ip:{ip}" for ip in ip_uniques]
        codes[others] = np.where(ip_codes >= 0, ip_codes + start, -1)
    table = pd.array(keys, dtype="string")
    return pd.Series(table.take(codes, allow_fill=True), index=flows.index).astype("string")


def mark_replies(flows: pd.DataFrame) -> pd.Series:
    """Which rows are replies (:func:`netpolgen.reduce.direction.mark_directions`, the one
    direction inference: the record's word, the inventory's, the whole input's, the earlier
    reversed 5-tuple). Rows left undecided are not replies, and not wanted either."""
    return pd.Series(mark_directions(flows).replies, index=flows.index)


def tuple_identity(flows: pd.DataFrame, side: str) -> pd.Series:
    """The most specific name of one end available: IP, else pod, else namespace/labels."""
    identity = flows[f"{side}_ip"].fillna(flows[f"{side}_pod"])
    missing = identity.isna()
    if missing.any():  # build the namespace/labels text only for the rows that need it
        part = flows.loc[missing]
        fallback = part[f"{side}_namespace"].fillna("") + "/" + part[f"{side}_labels"].fillna("")
        identity = identity.fillna(fallback)
    return identity


def wanted_flows(
    flows: pd.DataFrame, options: EdgeOptions, report: IngestReport | None = None
) -> pd.DataFrame:
    """The rows that policies must allow: not denied (unless asked), not replies."""
    validate_flows(flows)
    report = report if report is not None else IngestReport()
    keep = pd.Series(True, index=flows.index)
    if not options.include_denied:
        denied = (flows["verdict"] == "denied").fillna(False).astype(bool)
        report.filter("denied verdict", int(denied.sum()))
        keep &= ~denied
    tracker = DirectionTracker()
    directions = tracker.mark(flows, 0, keep)
    keep_np = keep.to_numpy(dtype=bool, copy=True)
    if directions.denied_elsewhere is not None and not options.include_denied:
        elsewhere = directions.denied_elsewhere & keep_np
        report.filter(DENIED_ELSEWHERE, int(elsewhere.sum()))
        keep_np &= ~elsewhere
    replies = directions.replies & keep_np
    report.filter("reply traffic", int(replies.sum()))
    keep_np &= ~replies
    keep_np &= ~directions.count(report, keep_np)
    report_examples(tracker, report)
    return flows[keep_np]


EDGE_KEYS = ["src", "dst", "protocol", "dst_port"]


def edge_rows(
    wanted: pd.DataFrame, report: IngestReport
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Wanted flows -> ``(rows, src keys, dst keys)``: one row per flow, keyed by edge.

    Rows whose endpoints cannot be keyed are counted as filtered and left out of ``rows``; the
    keys are returned for every wanted row, for :func:`endpoint_firsts`.
    """
    src = endpoint_keys(wanted, "src")
    dst = endpoint_keys(wanted, "dst")
    frame = pd.DataFrame(
        {
            "src": src,
            "dst": dst,
            "protocol": wanted["protocol"].astype("string"),
            "dst_port": wanted["dst_port"],
            "count": wanted["count"].fillna(1),
            "time": wanted["time"],
        }
    )
    unidentified = frame["src"].isna() | frame["dst"].isna()
    report.filter("endpoint without namespace/labels or IP", int(unidentified.sum()))
    return frame[~unidentified], src, dst


def partial_edges(rows: pd.DataFrame) -> pd.DataFrame:
    """Group edge rows (from :func:`edge_rows`) into edges with ``count``, first and last seen.

    Also combines partial results: ``partial_edges(concat of partials renamed back to rows)``.
    Sums, minima and maxima compose, so reducing chunk by chunk gives the same edges.
    """
    return (
        rows.groupby(EDGE_KEYS, dropna=False, observed=True)
        .agg(
            count=("count", "sum"),
            # Records (rows) per edge: --min-count's accounting counts records, not ``count``.
            records=("count", "size"),
            first_seen=("time", "min"),
            last_seen=("time", "max"),
        )
        .reset_index()
    )


def combine_edges(partials: list[pd.DataFrame]) -> pd.DataFrame:
    """Merge edge tables of several chunks into one (same columns as :func:`partial_edges`)."""
    if len(partials) == 1:
        return partials[0]
    frame = pd.concat(partials, ignore_index=True)
    return (
        frame.groupby(EDGE_KEYS, dropna=False, observed=True)
        .agg(
            count=("count", "sum"),
            records=("records", "sum"),
            first_seen=("first_seen", "min"),
            last_seen=("last_seen", "max"),
        )
        .reset_index()
    )


def finish_edges(edges: pd.DataFrame, options: EdgeOptions, report: IngestReport) -> pd.DataFrame:
    """Apply ``--min-count``, the canonical order and ``exclude`` to a complete edge table."""
    if options.min_count > 1:
        rare = edges["count"] < options.min_count
        # The accounting counts records (rows), not the flows a row stands for (``count``).
        report.filter("edge below --min-count", int(edges.loc[rare, "records"].sum()))
        edges = edges[~rare]
    edges = edges.sort_values(EDGE_KEYS).reset_index(drop=True)
    if options.exclude is not None:
        out, messages = options.exclude.excluded(edges)
        report.filter(options.exclude.reason, int(edges.loc[out, "records"].sum()))
        report.messages.extend(messages)
        edges = edges[~out].reset_index(drop=True)
    return edges[list(EDGE_COLUMNS)]


def aggregate_edges(
    flows: pd.DataFrame, options: EdgeOptions | None = None, report: IngestReport | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reduce a flow table to ``(edges, endpoints)``.

    ``edges`` has the columns of :data:`EDGE_COLUMNS`, sorted; ``endpoints`` one row per endpoint
    key with ``kind``, ``namespace``, ``labels`` (stable), ``ip``.

    Args:
        flows: a flow table (``load_flows``).
        options: what counts as wanted traffic (denied flows, a minimum count).
        report: an ingest report in which the records left out are counted, by reason.

    Returns:
        ``(edges, endpoints)``. ``netpolgen.edge_table`` shows the edges with readable names.

    Examples:
        >>> edges, endpoints = aggregate_edges(load_flows("flows.csv"))  # doctest: +SKIP
        >>> edges.groupby("dst")["count"].sum().nlargest(5)  # doctest: +SKIP
    """
    options = options or EdgeOptions()
    report = report if report is not None else IngestReport()
    wanted = wanted_flows(flows, options, report)
    rows, src, dst = edge_rows(wanted, report)
    edges = finish_edges(partial_edges(rows), options, report)
    return edges, finish_endpoints(*endpoint_firsts(wanted, src, dst))


def endpoint_firsts(
    flows: pd.DataFrame, src: pd.Series, dst: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first row naming each endpoint key, as source and as destination (in input order).

    Chunks of a stream combine by keeping the earlier chunk's row for a key seen in both.
    """
    parts = []
    for side, keys in (("src", src), ("dst", dst)):
        part = pd.DataFrame(
            {
                "endpoint": keys,
                "kind": flows[f"{side}_kind"].astype("string"),
                "namespace": flows[f"{side}_namespace"],
                "ip": flows[f"{side}_ip"],
            }
        )
        parts.append(part.dropna(subset=["endpoint"]).drop_duplicates("endpoint"))
    return parts[0], parts[1]


def finish_endpoints(src_part: pd.DataFrame, dst_part: pd.DataFrame) -> pd.DataFrame:
    """The endpoint table from first occurrences (a source's row wins over a destination's)."""
    endpoints = (
        pd.concat([src_part, dst_part])
        .drop_duplicates("endpoint")
        .set_index("endpoint")
        .sort_index()
    )
    is_pod = endpoints.index.str.startswith("pod:")
    endpoints.loc[~is_pod, "namespace"] = pd.NA
    endpoints["labels"] = pd.Series(
        [k.split("/", 1)[1] if k.startswith("pod:") else pd.NA for k in endpoints.index],
        index=endpoints.index,
        dtype="string",
    )
    endpoints.loc[~is_pod, "kind"] = endpoints.loc[~is_pod, "kind"].replace(
        {"pod": "world", "unknown": "world"}
    )
    return endpoints


def cluster_addresses(flows: pd.DataFrame) -> set[str]:
    """Addresses known to be inside the cluster (pods, nodes, services) from the flows.

    A set, so that the addresses of several chunks combine by union.
    """
    inside = []
    for side in ("src", "dst"):
        known = inside_kinds(flows[f"{side}_kind"])
        inside.append(flows[f"{side}_ip"][known].dropna().unique())
    return {str(address) for part in inside for address in part}
