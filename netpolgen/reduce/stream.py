"""Streaming reduction: flow chunks -> edges, endpoints and pods; memory bounded by distinct keys.

:func:`netpolgen.generate` over one flow table and :func:`reduce_chunks` over the same rows
cut into chunks give identical results. Every part of the reduction composes across chunks:

* **Edges** (sum of counts, min/max time per ``src, dst, protocol, dst_port``): sums and extrema
  combine, so each chunk is grouped and the partial tables are merged from time to time.
* **Endpoints** keep the *first* row naming each endpoint (as source, then as destination), so an
  earlier chunk's row wins.
* **Pods** (for identities) are distinct ``(namespace, raw labels, pod)`` triples, and the
  addresses known to be inside the cluster a set.
* **Direction inference** (which records are replies, which stay undecided) is the one
  cross-row rule: :mod:`netpolgen.reduce.direction` keeps its state across chunks as integers and
  decides each chunk as it comes; input far out of order is read twice (collect, then decide).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import NAT
from netpolgen.flows import empty_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.reduce.direction import (
    DENIED_ELSEWHERE,
    DirectionTracker,
    in_two_passes,
    report_examples,
)
from netpolgen.reduce.edges import EdgeOptions, combine_edges, finish_edges, finish_endpoints
from netpolgen.reduce.pods import finish_pod_endpoints
from netpolgen.reduce.summary import ChunkSummary, summarize_chunk


@dataclass
class Reduction:
    """What a stream of flow chunks reduces to: enough to synthesize policies."""

    edges: pd.DataFrame
    endpoints: pd.DataFrame
    pods: pd.DataFrame  # finish_pod_endpoints: namespace, raw_labels, pod, labels
    inside: set[str]  # addresses known to be in the cluster (pipeline.cluster_addresses)


@dataclass
class Partial:
    """A reducer's state before the final steps: what parallel parts hand back to combine."""

    edges: pd.DataFrame  # partial_edges / combine_edges
    src_first: pd.DataFrame  # endpoint_firsts
    dst_first: pd.DataFrame
    pods: pd.DataFrame  # raw_pod_endpoints
    inside: set[str]


class _Pile:
    """Partial tables appended chunk by chunk and compacted when they double."""

    def __init__(self, compact: Callable[[list[pd.DataFrame]], pd.DataFrame]) -> None:
        self._parts: list[pd.DataFrame] = []
        self._rows = 0
        self._compacted = 0
        self._compact = compact

    def add(self, part: pd.DataFrame) -> None:
        self._parts.append(part)
        self._rows += len(part)
        if self._rows > 2 * self._compacted + 50_000:
            self._parts = [self._compact(self._parts)]
            self._rows = self._compacted = len(self._parts[0])

    def result(self) -> pd.DataFrame:
        return self._compact(self._parts)


def _first_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return parts[0] if len(parts) == 1 else pd.concat(parts).drop_duplicates("endpoint")


def _distinct(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True).drop_duplicates()


_INT64_MAX = np.iinfo(np.int64).max


def _summed_edges(chunk: ChunkSummary, rows: np.ndarray, edge: np.ndarray) -> pd.DataFrame:
    """:func:`netpolgen.reduce.edges.partial_edges` of the chunk's ``rows`` (whose edge codes are
    ``edge``), by sorting the codes and reducing each run: same values, same dtypes."""
    by_edge = np.argsort(edge, kind="stable")
    codes = edge[by_edge]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else codes
    time = chunk.time[rows][by_edge]
    table = chunk.edge_table.iloc[codes[starts]].reset_index(drop=True)
    if len(codes):
        count = np.add.reduceat(chunk.count[rows][by_edge], starts)
        # min/max skip NaT, as groupby does: NaT is int64 min, so it loses every max, and it is
        # made int64 max to lose every min; a group of NaT only stays NaT.
        first = np.minimum.reduceat(np.where(time == NAT, _INT64_MAX, time), starts)
        first[first == _INT64_MAX] = NAT
        last = np.maximum.reduceat(time, starts)
    else:
        count = first = last = np.array([], dtype=np.int64)
    table["count"] = pd.array(count, dtype="Int64")
    table["records"] = np.diff(np.r_[starts, len(codes)]).astype(np.int64)
    for name, values in (("first_seen", first), ("last_seen", last)):
        table[name] = pd.Series(values.view("datetime64[ns]")).dt.tz_localize("UTC")
    return table


def _first_per_endpoint(
    table: pd.DataFrame, endpoint_of: np.ndarray, codes: np.ndarray
) -> pd.DataFrame:
    """:func:`netpolgen.reduce.edges.endpoint_firsts` for one side: the ``table`` row of the first
    of ``codes`` (wanted rows, in input order) naming each endpoint key."""
    codes = codes[codes >= 0]
    _, first = np.unique(endpoint_of[codes], return_index=True)
    return table.iloc[codes[np.sort(first)]].reset_index(drop=True)


class FlowReducer:
    """Reduce flow-table chunks, in input order, to a :class:`Reduction`.

    Filtered records (denied, replies, unidentifiable endpoints, ``--min-count``) are counted in
    ``report`` exactly as :func:`netpolgen.reduce.edges.aggregate_edges` counts them.
    """

    def __init__(
        self,
        options: EdgeOptions,
        report: IngestReport,
        replies: Any = None,
        *,
        start: int = 0,
    ) -> None:
        self.options = options
        self.report = report
        # A DirectionTracker, or anything with its mode, mark_codes and finish (RecordsOnly).
        self.replies: Any = replies if replies is not None else DirectionTracker()
        self._offset = start  # input position of the next row
        self._edges = _Pile(combine_edges)
        self._src_first = _Pile(_first_rows)
        self._dst_first = _Pile(_first_rows)
        self._pods = _Pile(_distinct)
        self._inside: set[str] = set()
        self._chunks = 0

    def add(self, flows: pd.DataFrame | ChunkSummary) -> None:
        """Reduce one chunk (a flow table, or its :class:`~netpolgen.reduce.summary.ChunkSummary`)
        into the running state. The reply tracker only needs ``mode`` and ``mark_codes``."""
        self._add_summary(flows if isinstance(flows, ChunkSummary) else summarize_chunk(flows))

    def _add_summary(self, chunk: ChunkSummary) -> None:
        """:meth:`add` on a chunk's integer form: the same steps, on codes instead of rows."""
        offset = self._offset
        self._offset += chunk.rows
        self._chunks += 1
        if self.replies.mode == "collect":
            self.replies.mark_codes(chunk.tuples, chunk.given, offset, None, chunk.denied)
            return
        denied = chunk.denied & (not self.options.include_denied)
        if not self.options.include_denied:
            self.report.filter("denied verdict", int(denied.sum()))
        keep = ~denied
        directions = self.replies.mark_codes(chunk.tuples, chunk.given, offset, keep, chunk.denied)
        if directions.denied_elsewhere is not None and not self.options.include_denied:
            elsewhere = directions.denied_elsewhere & keep
            self.report.filter(DENIED_ELSEWHERE, int(elsewhere.sum()))
            keep &= ~elsewhere
        replies = directions.replies & keep
        self.report.filter("reply traffic", int(replies.sum()))
        keep &= ~replies
        keep &= ~directions.count(self.report, keep)
        wanted = np.flatnonzero(keep)
        edge = chunk.edge[wanted]
        identified = edge >= 0
        self.report.filter(
            "endpoint without namespace/labels or IP", int(len(wanted) - identified.sum())
        )
        rows = wanted[identified]
        self._edges.add(_summed_edges(chunk, rows, edge[identified]))
        self._src_first.add(
            _first_per_endpoint(chunk.src_table, chunk.endpoint_of_src, chunk.src_endpoint[wanted])
        )
        self._dst_first.add(
            _first_per_endpoint(chunk.dst_table, chunk.endpoint_of_dst, chunk.dst_endpoint[wanted])
        )
        self._pods.add(chunk.pods)
        self._inside |= chunk.inside

    def partial(self) -> Partial:
        """The state so far, to combine with other reducers' (in input order)."""
        if self._chunks == 0:
            self.add(empty_flows())
        self.replies.finish()
        return Partial(
            self._edges.result(),
            self._src_first.result(),
            self._dst_first.result(),
            self._pods.result(),
            self._inside,
        )

    def result(self) -> Reduction:
        """The reduction of every chunk added (an empty flow table if there were none)."""
        part = self.partial()
        edges = finish_edges(part.edges, self.options, self.report)
        endpoints = finish_endpoints(part.src_first, part.dst_first)
        report_examples(self.replies, self.report)
        return Reduction(edges, endpoints, finish_pod_endpoints(part.pods), part.inside)


def reduce_chunks(
    read: Callable[[IngestReport], Iterator[pd.DataFrame | ChunkSummary]],
    options: EdgeOptions,
    report: IngestReport,
) -> Reduction:
    """Reduce the chunks that ``read(report)`` yields; read twice if the input needs it.

    ``read`` must yield the same chunks each time it is called (files, not a pipe: the caller
    spools standard input to a file first). ``report`` receives the accounting of the pass
    that produced the result.
    """

    def run(tracker: DirectionTracker) -> tuple[Reduction, IngestReport]:
        attempt = report.fresh()
        reducer = FlowReducer(options, attempt, tracker)
        for chunk in read(attempt):
            reducer.add(chunk)
        return reducer.result(), attempt

    def collect(tracker: DirectionTracker) -> None:
        collector = FlowReducer(options, report.fresh(), tracker)
        for chunk in read(collector.report):
            collector.add(chunk)

    reduction, attempt = in_two_passes(run, collect)
    report.merge(attempt)
    return reduction
