"""Streaming reduction: flow chunks -> edges, endpoints and pods; memory bounded by distinct keys.

:func:`netpolgen.generate` over one flow table and :func:`reduce_chunks` over the same rows
cut into chunks give identical results. Every part of the reduction composes across chunks:

* **Edges** (sum of counts, min/max time per ``src, dst, protocol, dst_port``): sums and extrema
  combine, so each chunk is grouped and the partial tables are merged from time to time.
* **Endpoints** keep the *first* row naming each endpoint (as source, then as destination), so an
  earlier chunk's row wins.
* **Pods** (for identities) are distinct ``(namespace, raw labels, pod)`` triples, and the
  addresses known to be inside the cluster a set.
* **Reply inference** is the one cross-row rule: a row without a direction is a reply when the
  *earliest* row with its reversed 5-tuple came before it (by time, then input position). That
  needs state across chunks, kept by :class:`ReplyTracker` as integers: the earliest
  ``(time, position)`` per distinct 5-tuple (two int64s per connection, keyed by one uint64).

The trade-off of reply inference (documented in the README): its state grows with the number of
distinct oriented 5-tuples (about 45 bytes each, in a hash table of integers: a request and its
reply are two; 10 million are ~450 MB), not with the number of records. It is kept whether or not
rows without a direction occur, since one may come later and name any earlier row. A record is
decided when its chunk is read, which is exact as long as no *later* chunk brings an *earlier*
reversed 5-tuple (input roughly in time order, as flow logs are). When that happens the tracker
notices (:class:`InputOutOfOrder`) and the caller reads the input twice instead: first to collect
every 5-tuple's earliest row, then to decide; exact in every case, at twice the parse cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import NAT, first_of_groups
from netpolgen.errors import NetpolgenError
from netpolgen.flows import empty_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.reduce.edges import EdgeOptions, combine_edges, finish_edges, finish_endpoints
from netpolgen.reduce.pods import finish_pod_endpoints
from netpolgen.reduce.summary import (
    ChunkSummary,
    TupleCodes,
    given_replies,
    summarize_chunk,
    tuple_codes,
)

_MAX_IDS = 1 << 24  # endpoint identities per run (packed in 24 bits of a tuple key)


class InputOutOfOrder(Exception):  # noqa: N818 - a signal, not an error the user sees
    """A later chunk brought an earlier reversed 5-tuple: decisions taken so far may be wrong."""


class _Registry:
    """Dense integer ids for values (strings or integers), growing as new values appear."""

    def __init__(self, limit: int) -> None:
        self._index = pd.Index([], dtype=object)
        self._limit = limit

    def __len__(self) -> int:
        return len(self._index)

    def ids(self, values: pd.Series | np.ndarray) -> np.ndarray:
        codes, uniques = pd.factorize(values)
        found = self._index.get_indexer(pd.Index(uniques))
        new = found == -1
        if new.any():
            start = len(self._index)
            self._index = self._index.append(pd.Index(uniques[new], dtype=object))
            found[new] = np.arange(start, start + int(new.sum()))
            if len(self._index) > self._limit:
                raise NetpolgenError(
                    f"more than {self._limit} distinct endpoints: too many for reply inference",
                    hint="give records a direction (is_reply) or split the input",
                )
        return np.asarray(found, dtype=np.int64)[codes]


@dataclass
class _Keys:
    """Per row: the 5-tuple key, the reversed tuple's key, time (int64 ns) and input position."""

    key: np.ndarray
    reverse: np.ndarray
    time: np.ndarray
    order: np.ndarray


class ReplyTracker:
    """Exact cross-chunk reply inference (see the module docstring).

    Modes: ``"stream"`` updates the state and decides each chunk, raising
    :class:`InputOutOfOrder` when a past decision could change; ``"collect"`` only updates the
    state (first pass of the two-pass fallback); ``"decide"`` decides against a complete state.
    """

    def __init__(self) -> None:
        self.mode = "stream"
        self._endpoints = _Registry(_MAX_IDS)
        self._protocols = _Registry(1 << 16)
        self._pairs = _Registry(1 << 32)
        # earliest (time, order) per tuple key
        # Input positions fit 32 bits below 2**31 records (4 bytes a tuple saved, widened past)
        self._earliest = _Table(t=np.int64, o=np.int64, narrow=("o",))
        # rows without a direction already decided, per tuple key: max time, any NaT time
        self._undecided = _Table(t=np.int64, nat=bool)

    @property
    def state_size(self) -> int:
        """Tuples held (for tests and the benchmark)."""
        return len(self._earliest) + len(self._undecided)

    def _keys(self, tuples: TupleCodes, offset: int) -> _Keys:
        ids = self._endpoints.ids(tuples.identities)
        a, b = ids[tuples.src], ids[tuples.dst]
        protocol = self._protocols.ids(tuples.protocols)[tuples.protocol]
        a_u, b_u, p_u = (x.astype(np.uint64) for x in (a, b, protocol))
        forward = self._pairs.ids((a_u << np.uint64(40)) | (b_u << np.uint64(16)) | p_u)
        backward = self._pairs.ids((b_u << np.uint64(40)) | (a_u << np.uint64(16)) | p_u)
        a_port, b_port = tuples.src_port, tuples.dst_port
        thirty_two, sixteen = np.uint64(32), np.uint64(16)
        key = (forward.astype(np.uint64) << thirty_two) | (a_port << sixteen) | b_port
        reverse = (backward.astype(np.uint64) << thirty_two) | (b_port << sixteen) | a_port
        return _Keys(key, reverse, tuples.time, tuples.rows + offset)

    def mark(
        self, flows: pd.DataFrame, offset: int, relevant: pd.Series | None = None
    ) -> pd.Series:
        """Replies among ``flows``, a chunk whose first row is input position ``offset``.

        ``relevant`` restricts the inference to rows whose answer is used (not denied): the
        others may come back False. Rows with a given ``is_reply`` keep it.
        """
        replies = self.mark_codes(
            tuple_codes(flows),
            given_replies(flows),
            offset,
            None if relevant is None else relevant.to_numpy(dtype=bool),
        )
        return pd.Series(replies, index=flows.index)

    def mark_codes(
        self,
        tuples: TupleCodes,
        given: np.ndarray,
        offset: int,
        relevant: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`mark` on a chunk's integer form (:mod:`netpolgen.reduce.summary`): ``given`` is
        ``is_reply`` as 1, 0 or -1 (not said) per row; returns a bool per row."""
        replies: np.ndarray = np.equal(given, 1)
        rows = tuples.rows
        if len(rows) == 0:
            return replies
        keys = self._keys(tuples, offset)
        if self.mode != "decide":
            self._update(keys)
        if self.mode == "collect":
            return replies
        unknown = given[rows] == -1
        if relevant is not None:
            unknown &= relevant[rows]
        if unknown.any():
            picked = np.flatnonzero(unknown)
            inferred = self._earlier_reverse(
                keys.reverse[picked], keys.time[picked], keys.order[picked]
            )
            replies[rows[picked[inferred]]] = True
            if self.mode == "stream":
                self._remember_undecided(keys.key[picked], keys.time[picked])
        return replies

    def _update(self, keys: _Keys) -> None:
        """Merge the chunk's earliest row per tuple; check past decisions still hold."""
        # The earliest row per tuple key, by (time, input position), in that order; positions
        # are unique and increase along the chunk, so a stable sort by time is that order. NaT
        # (int64 min) sorts first. Each key's first row in it: by first appearance, no sort.
        by_time = np.argsort(keys.time, kind="stable")
        earliest = by_time[first_of_groups(pd.factorize(keys.key[by_time])[0])]
        key, reverse = keys.key[earliest], keys.reverse[earliest]
        new_t, new_o = keys.time[earliest], keys.order[earliest]
        position = self._earliest.find(key)
        is_new = position < 0
        earlier = np.zeros(len(key), dtype=bool)
        old = ~is_new
        # Equal times keep the old row: its input position is smaller.
        earlier[old] = new_t[old] < self._earliest.columns["t"].take(position[old])
        changed = is_new | earlier
        if self.mode == "stream" and changed.any() and len(self._undecided):
            self._check(reverse[changed], new_t[changed], is_new[changed])
        self._earliest.columns["t"].put(position[earlier], new_t[earlier])
        self._earliest.columns["o"].put(position[earlier], new_o[earlier])
        self._earliest.append(key[is_new], t=new_t[is_new], o=new_o[is_new])

    def _check(self, reverse: np.ndarray, t_new: np.ndarray, is_new: np.ndarray) -> None:
        """Raise :class:`InputOutOfOrder` if a new earliest row flips a past decision.

        For a tuple whose earliest row changed to ``(t_new, o_new)`` (``o_new`` larger than any
        past position), past rows of the reversed tuple at time ``t``: a NaT on either side
        compares positions only, otherwise times. A new tuple can only turn past rows with
        ``t > t_new`` into replies; an earlier row for a known tuple can also turn past replies
        back (NaT rules), so any NaT involved counts as a conflict.
        """
        position = self._undecided.find(reverse)
        seen = position >= 0
        if not seen.any():
            return
        max_t = self._undecided.columns["t"].take(position[seen])
        has_nat = self._undecided.columns["nat"].take(position[seen])
        t_new, new = t_new[seen], is_new[seen]
        known_t = t_new != NAT
        conflict_new = new & known_t & (max_t > t_new)
        conflict_old = ~new & (~known_t | has_nat | (max_t > t_new))
        if (conflict_new | conflict_old).any():
            raise InputOutOfOrder

    def _earlier_reverse(
        self, reverse: np.ndarray, time: np.ndarray, order: np.ndarray
    ) -> np.ndarray:
        """Whether the earliest row of each reversed tuple came before the row (mark_replies)."""
        position = self._earliest.find(reverse)
        present = position >= 0
        result = np.zeros(len(reverse), dtype=bool)
        if not present.any():
            return result
        t_e = self._earliest.columns["t"].take(position[present])
        o_e = self._earliest.columns["o"].take(position[present])
        t, o = time[present], order[present]
        both = (t_e != NAT) & (t != NAT)
        result[present] = np.where(both, (t_e < t) | ((t_e == t) & (o_e < o)), o_e < o)
        return result

    def _remember_undecided(self, key: np.ndarray, time: np.ndarray) -> None:
        if not len(key):
            return
        # Per distinct key: the latest time and whether any time is NaT (sorted, then reduced).
        by_key = np.argsort(key, kind="stable")
        sorted_keys, sorted_times = key[by_key], time[by_key]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        t = np.maximum.reduceat(sorted_times, starts)
        nat = np.logical_or.reduceat(sorted_times == NAT, starts)
        key = sorted_keys[starts]
        position = self._undecided.find(key)
        old = position >= 0
        columns = self._undecided.columns
        columns["t"].put(position[old], np.maximum(columns["t"].take(position[old]), t[old]))
        columns["nat"].put(position[old], columns["nat"].take(position[old]) | nat[old])
        self._undecided.append(key[~old], t=t[~old], nat=nat[~old])


class _Column:
    """A growable column kept as fixed-size blocks: appending never copies what is stored (a
    doubling array would hold up to twice the data, and both copies while it grows)."""

    BITS = 20  # 1M values a block

    def __init__(self, dtype: type, narrow: bool = False) -> None:
        """``narrow``: hold integers as int32 until a value needs ``dtype`` (then widen all)."""
        self._wide = np.dtype(dtype)
        self.dtype = np.dtype(np.int32) if narrow else self._wide
        self.blocks: list[np.ndarray] = []
        self.size = 0

    def _fit(self, values: np.ndarray) -> None:
        if self.dtype == self._wide or not len(values):
            return
        limits = np.iinfo(np.int32)  # the only narrow type
        if values.max() > limits.max or values.min() < limits.min:
            self.blocks = [block.astype(self._wide) for block in self.blocks]
            self.dtype = self._wide

    def take(self, positions: np.ndarray) -> np.ndarray:
        out = np.empty(len(positions), dtype=self.dtype)
        block_of = positions >> self.BITS
        for block in np.unique(block_of):
            where = block_of == block
            out[where] = self.blocks[block][positions[where] & ((1 << self.BITS) - 1)]
        return out

    def put(self, positions: np.ndarray, values: np.ndarray) -> None:
        self._fit(values)
        block_of = positions >> self.BITS
        for block in np.unique(block_of):
            where = block_of == block
            self.blocks[block][positions[where] & ((1 << self.BITS) - 1)] = values[where]

    def extend(self, values: np.ndarray) -> None:
        self._fit(values)
        start = 0
        while start < len(values):
            offset = self.size & ((1 << self.BITS) - 1)
            if offset == 0:
                self.blocks.append(np.empty(1 << self.BITS, dtype=self.dtype))
            count = min(len(values) - start, (1 << self.BITS) - offset)
            self.blocks[-1][offset : offset + count] = values[start : start + count]
            self.size += count
            start += count


class _Table:
    """Columns keyed by a unique uint64 key, with vectorised lookup.

    The key -> row map is a persistent hash table (pandas' own, the one behind ``Index``), so a
    chunk costs time in proportion to its own size, not to the table's: an ``Index`` rebuilt
    after every append would make a long input quadratic. About 45 bytes per key in all.
    """

    def __init__(self, narrow: tuple[str, ...] = (), **dtypes: type) -> None:
        self._map: Any = _new_hashtable()
        self._size = 0
        self.columns = {name: _Column(dtype, name in narrow) for name, dtype in dtypes.items()}

    def __len__(self) -> int:
        return self._size

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Positions of ``keys`` (-1 where absent)."""
        if self._size == 0 or len(keys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        return np.asarray(self._map.lookup(keys.astype(np.uint64).view(np.int64)), np.int64)

    def append(self, keys: np.ndarray, **values: np.ndarray) -> None:
        """Add rows for keys that are not present yet (and unique among themselves)."""
        count = len(keys)
        if count == 0:
            return
        positions = np.arange(self._size, self._size + count, dtype=np.int64)
        self._map.map_keys_to_values(keys.astype(np.uint64).view(np.int64), positions)
        for name, column in values.items():
            self.columns[name].extend(column)
        self._size += count


def _new_hashtable() -> Any:
    try:  # pandas' int64 hash table: not public API, present in pandas 2 and 3
        from pandas._libs.hashtable import Int64HashTable  # type: ignore[import-not-found]

        return Int64HashTable()
    except ImportError:  # pragma: no cover - a future pandas without it
        return _IndexMap()


class _IndexMap:
    """Fallback key -> position map on ``pd.Index`` (rebuilt on append: slower, same answers)."""

    def __init__(self) -> None:
        self._keys = pd.Index(np.array([], dtype=np.int64))
        self._values = np.array([], dtype=np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        found = np.asarray(self._keys.get_indexer(pd.Index(keys)), dtype=np.int64)
        return np.where(found >= 0, self._values[found], -1)

    def map_keys_to_values(self, keys: np.ndarray, values: np.ndarray) -> None:
        self._keys = self._keys.append(pd.Index(keys))
        self._values = np.concatenate([self._values, values])


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
        replies: ReplyTracker | None = None,
        *,
        start: int = 0,
    ) -> None:
        self.options = options
        self.report = report
        self.replies: Any = replies if replies is not None else ReplyTracker()
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
            self.replies.mark_codes(chunk.tuples, chunk.given, offset)
            return
        denied = chunk.denied & (not self.options.include_denied)
        if not self.options.include_denied:
            self.report.filter("denied verdict", int(denied.sum()))
        keep = ~denied
        replies = self.replies.mark_codes(chunk.tuples, chunk.given, offset, keep) & keep
        self.report.filter("reply traffic", int(replies.sum()))
        wanted = np.flatnonzero(keep & ~replies)
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
    attempt = report.fresh()
    reducer = FlowReducer(options, attempt)
    try:
        for chunk in read(attempt):
            reducer.add(chunk)
        reduction = reducer.result()
    except InputOutOfOrder:
        tracker = ReplyTracker()
        tracker.mode = "collect"
        collector = FlowReducer(options, report.fresh(), tracker)
        for chunk in read(collector.report):
            collector.add(chunk)
        tracker.mode = "decide"
        attempt = report.fresh()
        reducer = FlowReducer(options, attempt, tracker)
        for chunk in read(attempt):
            reducer.add(chunk)
        reduction = reducer.result()
    report.merge(attempt)
    return reduction
