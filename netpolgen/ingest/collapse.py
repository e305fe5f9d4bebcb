"""Merging repeated observations of one connection into one record.

The same connection is logged more than once: at several Hubble observation points, by the two
ENIs of an AWS VPC, by both GCP reporters, in Azure's per-NIC blobs. Readers merge such records
on integer codes of the 5-tuple and a time bucket (:func:`collapse_observations`) and drop the
ones an earlier chunk already gave (:class:`SeenConnections`).

Across files, one connection's records are judged together too (:func:`denials_across_files`):
Azure writes one blob per NIC, and a connection refused at the server's NIC is ``D`` there while
the client's NIC logs the attempt going out as ``B``/``E`` (FORMATS.md §4 and "Measured
pitfalls"); a Hubble flow dropped at the destination node is ``FORWARDED`` in the source node's
export. A connection denied at either end is denied: its other records are not allowed traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import NAT, combined_codes, first_positions, hashed_texts, mix
from netpolgen.flows import conform_flows
from netpolgen.ingest.report import IngestReport

_VERDICT_RANK = {"unknown": 0, "allowed": 1, "denied": 2}
_RANK_VERDICT = {rank: verdict for verdict, rank in _VERDICT_RANK.items()}
_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "protocol"]
_FIRST = [
    "src_namespace", "dst_namespace", "src_pod", "dst_pod", "src_labels", "dst_labels",
    "src_kind", "dst_kind", "is_reply",
]  # fmt: skip


def collapse_observations(
    frame: pd.DataFrame,
    report: IngestReport,
    bucket: str = "60s",
    counters: str = "max",
    seen: SeenConnections | None = None,
) -> pd.DataFrame:
    """Merge records of one connection seen several times into one row (``count`` 1 each).

    A connection is the oriented 5-tuple within a time bucket: the same packets traced at several
    observation points (Hubble), logged by the ENIs or VMs at both ends (AWS, GCP ``reporter``),
    or begin/continue/end tuples (Azure). Replies have the reversed 5-tuple, so they stay apart.
    The merged row takes the earliest time, the strongest verdict (a connection dropped at one
    point was denied), the first known identity and direction. ``counters`` says how to merge
    bytes and packets: ``max`` when every record counts the same packets (two ends, two ENIs),
    ``sum`` when records are deltas (Azure's continue/end tuples). Merged records are counted as
    filtered ("duplicate observation of a connection").

    ``frame`` must be conformed; the result is conformed too, with the merged rows in order of
    their connection's first record, then stably sorted by time.

    ``seen``: the file's :class:`SeenConnections`, applied to the merged rows (as calling it on
    the result would), but before their columns are gathered, and on the codes used here.

    Vectorised on integer codes: each key column is factorised (missing values form their own
    group, as ``groupby(dropna=False)`` does), the numbers are reduced per group by ufuncs on
    integers, and the "first known" columns are taken at each group's first row holding a value.
    """
    if len(frame) < 2:
        return frame if seen is None else seen(frame, report)
    connections = _ConnectionCodes(frame, bucket)
    group = connections.groups()
    groups = int(group.max()) + 1
    if groups == len(frame):
        return frame if seen is None else seen(frame, report, connections.keys())

    # The first row of each group holds its key; the numbers are reduced per group by
    # unbuffered ufuncs on integers (missing values as sentinels that never win), which
    # measured several times faster than a groupby of nullable columns.
    earliest = _earliest_nanos(frame["time"], group, groups)
    # The result is in time order (NaT last; ties in order of first record): the groups are
    # renumbered so before anything is gathered, instead of sorting the finished frame (a take
    # of every column, a fifth of this function's time).
    if (earliest == NAT).any() or (np.diff(earliest) < 0).any():
        order = np.lexsort((earliest, earliest == NAT))  # stable: the last key is the first
        renumber = np.empty(groups, dtype=np.int64)
        renumber[order] = np.arange(groups)
        group, earliest = renumber[group], earliest[order]
    first_row = first_positions(group, np.ones(len(frame), dtype=bool), groups)
    report.filter("duplicate observation of a connection", len(frame) - groups)
    # The groups to keep: all, or those not seen in the chunk before (None: all).
    kept = None
    if seen is not None:
        repeated = seen.repeated(connections.keys(first_row), report)
        kept = np.flatnonzero(~repeated) if repeated.any() else None

    def pick(per_group: np.ndarray) -> np.ndarray:
        return per_group if kept is None else per_group[kept]

    merged: dict[str, Any] = {name: frame[name].array.take(pick(first_row)) for name in _KEY}
    merged["time"] = (
        pd.DatetimeIndex(pick(earliest).view("datetime64[ns]")).tz_localize("UTC").array
    )
    for counter in ("count", "bytes", "packets"):
        how = "max" if counter == "count" else counters
        merged[counter] = _merged_counter(frame[counter], group, groups, how, pick)
    # Verdicts by the categorical's codes (three), ranked: no text per row.
    verdict = frame["verdict"]
    names = list(verdict.cat.categories)
    ranks = np.array([*(_VERDICT_RANK[v] for v in names), -1])
    strongest = np.full(groups, -1, dtype=np.int64)
    np.maximum.at(strongest, group, ranks[verdict.cat.codes.to_numpy()])
    # Rank -1: no verdict at all in the group, which is unknown too.
    by_rank = np.array(
        [*(names.index(_RANK_VERDICT[r]) for r in (0, 1, 2)), names.index("unknown")]
    )
    dtype = pd.CategoricalDtype(verdict.cat.categories)
    merged["verdict"] = pd.Categorical.from_codes(by_rank[pick(strongest)], dtype=dtype)
    for name in _FIRST:
        column = frame[name]
        known = column.notna().to_numpy(dtype=bool, copy=True)
        if name in ("src_kind", "dst_kind"):
            # "unknown" is a placeholder: prefer what another observation point knew.
            known &= (column != "unknown").fillna(False).to_numpy(dtype=bool)
        elif not known.any():
            continue  # missing throughout (names in an addresses-only log): conform_flows adds it
        taken = column.array.take(pick(first_positions(group, known, groups)), allow_fill=True)
        if name in ("src_kind", "dst_kind"):
            taken = pd.Series(taken).fillna("unknown").array
        merged[name] = taken
    return conform_flows(pd.DataFrame(merged, copy=False))  # new arrays: nothing to protect


def _earliest_nanos(time: pd.Series, group: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the earliest time as int64 nanoseconds (NaT only where every time is)."""
    nanos = time.to_numpy(dtype="datetime64[ns]").view(np.int64)  # NaT: the smallest int64
    latest = np.iinfo(np.int64).max
    earliest = np.full(groups, latest, dtype=np.int64)
    np.minimum.at(earliest, group, np.where(nanos == NAT, latest, nanos))
    earliest[earliest == latest] = NAT
    return earliest


def _merged_counter(
    values: pd.Series,
    group: np.ndarray,
    groups: int,
    how: str,
    pick: Callable[[np.ndarray], np.ndarray],
) -> Any:
    """Per group (those ``pick`` keeps), the largest or the sum of a counter (non-negative; NA
    where none is known)."""
    known = values.notna().to_numpy(dtype=bool)
    numbers = values.to_numpy(dtype=np.int64, na_value=0)
    if how == "sum":
        out = np.zeros(groups, dtype=np.int64)
        np.add.at(out, group, numbers)
    else:
        out = np.full(groups, -1, dtype=np.int64)
        np.maximum.at(out, group, np.where(known, numbers, -1))
    seen = np.zeros(groups, dtype=np.int64)
    np.add.at(seen, group, known.astype(np.int64))
    out, seen = pick(out), pick(seen)
    return pd.array(out, dtype="Int64") if seen.all() else _with_missing(out, seen == 0)


def _with_missing(values: np.ndarray, missing: np.ndarray) -> Any:
    array = pd.array(values, dtype="Int64")
    array[missing] = pd.NA  # a sum of nothing is 0: none known is missing
    return array


class _ConnectionCodes:
    """A frame's connection columns (the oriented 5-tuple and the time bucket) as integer codes,
    factorised once: for numbering its connections (:meth:`groups`) and for their 64-bit keys
    (:meth:`keys`), which :class:`SeenConnections` remembers across chunks."""

    def __init__(self, frame: pd.DataFrame, bucket: str) -> None:
        self.addresses = [
            pd.factorize(frame[name], use_na_sentinel=False) for name in ("src_ip", "dst_ip")
        ]
        # Ports: missing as -1.
        self.ports = [
            frame[p].to_numpy(dtype=np.int64, na_value=-1) for p in ("src_port", "dst_port")
        ]
        protocol = frame["protocol"]
        self.protocol = protocol.cat.codes.to_numpy().astype(np.int64)  # -1: missing
        self.protocols = [str(name) for name in protocol.cat.categories]
        nanos = frame["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        self.nat = nanos == NAT
        self.step = pd.Timedelta(bucket).value
        self.buckets = nanos // self.step  # floored, as Series.dt.floor

    def groups(self) -> np.ndarray:
        """Per row, its connection's number, in order of first appearance (exact: the codes are
        combined by :func:`combined_codes`, whole rows are not hashed)."""
        return combined_codes(
            [
                *((np.asarray(codes), len(values)) for codes, values in self.addresses),
                *((port + 1, 65537) for port in self.ports),  # 0-65535, or missing
                (self.protocol + 1, len(self.protocols) + 1),
                self._bucket_codes(),
            ]
        )

    def _bucket_codes(self) -> tuple[np.ndarray, int]:
        """The buckets numbered from the chunk's first, NaT after the last; how many."""
        if self.nat.all():
            return np.zeros(len(self.nat), dtype=np.int64), 1
        first, last = (int(f(self.buckets[~self.nat])) for f in (np.min, np.max))
        codes = self.buckets - first
        codes[self.nat] = last - first + 1
        return codes, last - first + 2

    def keys(self, rows: np.ndarray | None = None, *, timed: bool = True) -> np.ndarray:
        """One 64-bit hash per row (of ``rows``, or all) of its connection (``timed``: with its
        time bucket; else the oriented 5-tuple alone).

        Text (addresses, the protocol) is hashed once per distinct value and taken by code,
        numbers are hashed as integers, and the per-column hashes are mixed: no text per row.
        """

        def at(values: np.ndarray) -> np.ndarray:
            return values if rows is None else values[rows]

        mixed = np.zeros(len(self.nat) if rows is None else len(rows), dtype=np.uint64)
        for codes, values in self.addresses:
            mixed = mix(mixed, hashed_texts(list(values))[at(np.asarray(codes))])
        for port in self.ports:
            mixed = mix(mixed, pd.util.hash_array(at(port)))
        mixed = mix(mixed, hashed_texts([*self.protocols, None])[at(self.protocol)])
        if not timed:
            return mixed
        floored = np.where(at(self.nat), NAT, at(self.buckets) * self.step)
        return mix(mixed, pd.util.hash_array(floored))


# Connection keys (64-bit hashes) remembered across chunks.
REMEMBERED = 50_000


class SeenConnections:
    """The most recent connections of a file, so that a connection whose observations fall on
    both sides of a chunk boundary still counts once (results do not depend on chunk size).

    Only the last :data:`REMEMBERED` connection keys are kept, which bounds memory: observations
    of one connection lie close together in a log.
    """

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._previous: pd.Index = pd.Index([], dtype="uint64")

    def __call__(
        self,
        frame: pd.DataFrame,
        report: IngestReport,
        keys: pd.Series | np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Filter the rows of ``frame`` already seen in the previous chunk; remember the rest.

        ``keys``: the rows' :func:`connection_keys`, when a worker process computed them.
        """
        if not len(frame):
            return frame
        if keys is None:
            keys = connection_keys(frame, self.bucket)
        repeated = self.repeated(keys.to_numpy() if isinstance(keys, pd.Series) else keys, report)
        if repeated.any():  # conformed again: a protocol whose rows all went is no category
            frame = conform_flows(frame[~repeated].reset_index(drop=True))
        return frame

    def repeated(self, keys: np.ndarray, report: IngestReport) -> np.ndarray:
        """Which of ``keys`` (a chunk's, in order) were seen in the chunk before; remember the
        others, and count the repeated ones as filtered."""
        repeated = np.asarray(pd.Index(keys).isin(self._previous))
        recent = self._previous.append(pd.Index(pd.unique(keys[~repeated])))
        self._previous = recent[-REMEMBERED:]
        if repeated.any():
            report.filter("duplicate observation of a connection", int(repeated.sum()))
        return repeated


def connection_keys(frame: pd.DataFrame, bucket: str) -> pd.Series:
    """One 64-bit hash per row of its oriented 5-tuple and time bucket (vectorised; see
    :meth:`_ConnectionCodes.keys`)."""
    return pd.Series(_ConnectionCodes(frame, bucket).keys(), index=frame.index)


# Records of one connection at its two ends lie this close in time: Azure's blobs are per hour,
# AWS and GCP aggregate over at most 10 and 15 minutes (FORMATS.md §2-§4).
DENIAL_WINDOW = pd.Timedelta("3600s")
# Denied connections remembered across files (16 bytes each): the bound on the state.
MAX_DENIED = 20_000_000


class DeniedConnections:
    """The denied connections of a whole input, to judge every file's records by them.

    A connection is the oriented 5-tuple (the request direction: each end logs the request's
    packets with the same source and destination) at a time; a record of it that is not denied
    (the client's side of a refused connection) lies within :data:`DENIAL_WINDOW` of the
    denial. State: one key and one time (16 bytes) per distinct denied record, at most
    :data:`MAX_DENIED`; records without addresses (CSV with labels only) are not matched.
    """

    def __init__(self) -> None:
        self._parts: list[pd.DataFrame] = []
        self._table: pd.DataFrame | None = None
        self.size = 0
        self.overflow = False

    def collect(self, chunk: pd.DataFrame) -> None:
        """Remember the denied records of ``chunk`` (a conformed flow table)."""
        rows = np.flatnonzero(_denied(chunk) & _addressed(chunk))
        if not len(rows) or self.overflow:
            return
        part = _keyed(chunk, rows).drop_duplicates()
        if self.size + len(part) > MAX_DENIED:
            self.overflow = True
            return
        self._parts.append(part)
        self.size += len(part)
        self._table = None

    def absorb(self, other: DeniedConnections) -> None:
        """Add what ``other`` collected (another file's, read by a worker process)."""
        self.overflow |= other.overflow
        for part in other._parts:
            if self.size + len(part) > MAX_DENIED:
                self.overflow = True
                return
            self._parts.append(part)
            self.size += len(part)
        self._table = None

    def apply(self, chunk: pd.DataFrame, report: IngestReport) -> pd.DataFrame:
        """``chunk`` without the records of denied connections that are not denied themselves;
        they are counted as filtered duplicates, so that the connection counts once (as denied).
        """
        if not self._parts or not len(chunk):
            return chunk
        if self._table is None:
            self._table = pd.concat(self._parts, ignore_index=True).drop_duplicates()
            self._parts = [self._table]
        rows = np.flatnonzero(~_denied(chunk) & _addressed(chunk))
        if not len(rows):
            return chunk
        asked = _keyed(chunk, rows).assign(row=rows)
        pairs = asked.merge(self._table, on="key", suffixes=("", "_denied"))
        if not len(pairs):
            return chunk
        t, denied_t = pairs["time"].to_numpy(), pairs["time_denied"].to_numpy()
        near = (t == NAT) | (denied_t == NAT) | (np.abs(t - denied_t) <= DENIAL_WINDOW.value)
        drop = np.unique(pairs["row"].to_numpy()[near])
        if not len(drop):
            return chunk
        report.filter("duplicate observation of a connection", len(drop))
        keep = np.ones(len(chunk), dtype=bool)
        keep[drop] = False
        return conform_flows(chunk[keep].reset_index(drop=True))

    def messages(self) -> list[str]:
        """What the user should know about the state's bound."""
        if not self.overflow:
            return []
        return [
            f"more than {MAX_DENIED} denied connections: records in other files of the later "
            "ones were not checked against them (split the input by time)"
        ]


def _denied(chunk: pd.DataFrame) -> np.ndarray:
    return (chunk["verdict"] == "denied").fillna(False).to_numpy(dtype=bool)


def _addressed(chunk: pd.DataFrame) -> np.ndarray:
    return (chunk["src_ip"].notna() & chunk["dst_ip"].notna()).to_numpy(dtype=bool)


def _keyed(chunk: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    codes = _ConnectionCodes(chunk, "3600s")  # the bucket is not used: untimed keys
    nanos = chunk["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)[rows]
    return pd.DataFrame({"key": codes.keys(rows, timed=False), "time": nanos})


def denials_across_files(
    read: Callable[[IngestReport], Iterator[Any]],
    collect: Callable[[IngestReport], Iterator[Any]],
) -> Callable[[IngestReport], Iterator[Any]]:
    """``read`` (a fresh pass over the input each call) with verdicts judged across its files.

    ``collect`` is a pass over the same input (unresolved: the 5-tuple is all it needs); the
    first call reads it once to gather the :class:`DeniedConnections`, then each pass of
    ``read`` drops the records of those connections that are not denied themselves. Items that
    are not flow tables (chunk summaries of CSV parts) pass as they are. The cost: the input is
    parsed once more; the state is bounded by the denied connections.
    """
    denied: DeniedConnections | None = None

    def wrapped(report: IngestReport) -> Iterator[Any]:
        nonlocal denied
        if denied is None:
            found = DeniedConnections()
            for item in collect(report.fresh()):
                if isinstance(item, pd.DataFrame):
                    found.collect(item)
            denied = found
        for item in read(report):
            yield denied.apply(item, report) if isinstance(item, pd.DataFrame) else item
        report.messages.extend(denied.messages())

    return wrapped
