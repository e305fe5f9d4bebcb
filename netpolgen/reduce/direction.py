"""Who opened each connection: the one direction inference that every engine and command uses.

A flow log shows packets both ways; only the requests (client -> server's listening port) are
wanted traffic, a reply rides on the connection's state (NetworkPolicy is stateful: "traffic
that is allowed ... the reply is implicitly allowed", kubernetes.io Network Policies). Each
record's direction is decided from, in this order:

a. **The record's own word**, ``is_reply`` as the reader set it: Hubble's ``is_reply``/``reply``;
   AWS ``tcp-flags`` OR-ed over the window, SYN (2) without ACK the client's side, SYN-ACK (18)
   the server's (FORMATS.md §2.2); Azure v4 tuples, whose source is the initiator.
b. **The inventory**: a side whose port is a declared ``containerPort`` of the pod holding that
   address at the flow's time, or a Service's port/targetPort, is the server. The resolver,
   the one step that knows which pod held an address when, writes it into ``is_reply`` where
   the record said nothing (:meth:`netpolgen.resolve.Resolver.direct`), so it arrives here as (a).
c. **Evidence over the whole input** (:data:`MIN_FAN`, :data:`FAN_RATIO`): an address:port that
   many distinct connections (peer address and port) reach, against an other end seen in a
   few at most, is the server. A client's port is ephemeral, fresh per connection (Linux's
   ``ip_local_port_range``); a server's is shared by all its clients.
d. **The earliest reversed 5-tuple**, only where time really separates the two: a record is a
   reply when its reversed 5-tuple was seen earlier. For points in time (CSV, Hubble) that is
   the earlier row (by time, then input position); for an aggregated log (AWS VPC: request
   and response are two records of one window, either first, their ``start`` up to 60 s late;
   GCP: sampled over a 5 s interval; Azure: a record per minute), the two tuples' first
   records must lie more than the window apart (:data:`netpolgen.flows.TIME_WINDOW_ATTR`).

What stays **undecided** (an aggregated log, both directions in one window or only one seen,
and no evidence above) never becomes a rule on a port in the ephemeral range
(:data:`EPHEMERAL_LOW` and up): such a record is left out and counted by reason, with examples
in the report's details (printed with ``-v``). An undecided record to a port below the range is
kept as a request: its reverse, to the ephemeral port, is the one left out.

Exactness across chunks: the state (earliest row per 5-tuple, connections per end) is kept as
integers (:mod:`netpolgen.reduce.keyed`; a tuple and its reverse in one entry,
:mod:`netpolgen.reduce.connections`), about 90 bytes per distinct connection, flat in the number
of records. Chunks are decided as they come (``"stream"``); when a later chunk could
change a decision taken (an earlier reversed tuple, or counts of connections that moved a (c)
decision), :class:`InputOutOfOrder` is raised and the caller reads the input twice: first
``"collect"``, then ``"decide"`` against the complete state (:func:`in_two_passes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from netpolgen._kernels import NAT, first_of_groups
from netpolgen.ingest.report import IngestReport
from netpolgen.reduce.connections import BY_FAN, CODES, ConnectionTable
from netpolgen.reduce.keyed import Registry, Table
from netpolgen.reduce.summary import TupleCodes, given_replies, tuple_codes

__all__ = [
    "DENIED_ELSEWHERE",
    "EPHEMERAL_LOW",
    "FAN_RATIO",
    "MIN_FAN",
    "UNDECIDED_REASONS",
    "DirectionTracker",
    "Directions",
    "InputOutOfOrder",
    "RecordsOnly",
    "in_two_passes",
    "mark_directions",
    "report_examples",
]

# The lowest port a client may take: Linux's default ip_local_port_range is 32768-60999, and
# IANA's dynamic range (Windows, BSD) 49152-65535. Servers may listen there too (gRPC's 50051):
# hence the evidence above, never "the lower port is the server".
EPHEMERAL_LOW = 32768
# (c): an end is a server when it has at least MIN_FAN distinct connections and FAN_RATIO
# times as many as the other end.
MIN_FAN = 3
FAN_RATIO = 3
# Undecided reasons, by code (0: decided).
UNDECIDED_REASONS = {
    1: "direction undecided: both directions in one aggregation window, to an ephemeral port",
    2: "direction undecided: one direction seen, to an ephemeral port",
}
# The reason a record is left out when the other end of its connection logged it denied.
DENIED_ELSEWHERE = "denied at the other end of the connection"
_MAX_IDS = 1 << 24  # endpoint identities per run (packed in 24 bits of a tuple key)
_EXAMPLES = 3


class InputOutOfOrder(Exception):  # noqa: N818 - a signal, not an error the user sees
    """A later chunk brought evidence that may change decisions taken so far."""


@dataclass(frozen=True)
class Directions:
    """Per row of a chunk: whether it is a reply, and why it is undecided (0: it is not)."""

    replies: np.ndarray  # bool
    undecided: np.ndarray  # int8, UNDECIDED_REASONS codes
    # Rows not denied themselves whose connection another record (the other ENI) shows denied.
    denied_elsewhere: np.ndarray | None = None

    def wanted(self) -> np.ndarray:
        """Rows that are requests (neither replies nor left out as undecided)."""
        result: np.ndarray = ~self.replies & (self.undecided == 0)
        return result

    def count(self, report: IngestReport, keep: np.ndarray) -> np.ndarray:
        """Count the undecided rows among ``keep`` in ``report`` (filtered, by reason); return
        them."""
        left_out: np.ndarray = (self.undecided > 0) & keep
        if left_out.any():
            for code, reason in UNDECIDED_REASONS.items():
                report.filter(reason, int(((self.undecided == code) & keep).sum()))
        return left_out


def report_examples(tracker: DirectionTracker | RecordsOnly, report: IngestReport) -> None:
    """A detail with a few of the connections left out as undecided, if there were any.

    The counts by reason are in ``report.filtered`` (the summary line, always printed); the
    examples are in ``report.details``, which the command line prints with ``-v``.
    """
    if tracker.examples:
        report.details.append(
            "direction undecided for some records, left out (no rule on an ephemeral port; an "
            "inventory with the servers' containerPorts decides them), e.g. "
            + "; ".join(tracker.examples)
        )


@dataclass
class _Keys:
    """Per tuple row: the 5-tuple key, its reverse's, each end's key, time and input position."""

    key: np.ndarray
    reverse: np.ndarray
    src_end: np.ndarray
    dst_end: np.ndarray
    time: np.ndarray
    order: np.ndarray


class DirectionTracker:
    """Rules (c) and (d) across chunks (see the module docstring).

    Modes: ``"stream"`` updates the state and decides each chunk, raising
    :class:`InputOutOfOrder` when a past decision could change (also from :meth:`finish`);
    ``"collect"`` only updates the state; ``"decide"`` decides against a complete state.
    """

    def __init__(self) -> None:
        self.mode = "stream"
        self._endpoints = Registry(_MAX_IDS)
        self._protocols = Registry(1 << 16)
        self._pairs = Registry(1 << 32)
        # Per tuple, in one entry with its reverse: the earliest (time, order), and in stream
        # mode the decisions taken for its rows, checked by finish() against the final counts.
        self._tuples = ConnectionTable()
        # Distinct connections per end (address, protocol, port): rule (c).
        self._fans = Table(n=np.int64)
        # Stream mode: per tuple decided by (d), its latest time, any NaT, any window.
        self._undecided = Table(t=np.int64, nat=bool, win=bool)
        # Windowed records: per tuple, the time span of its denied records, and (stream mode)
        # of the records taken as not denied.
        self._denied = Table(lo=np.int64, hi=np.int64)
        self._passed = Table(lo=np.int64, hi=np.int64)
        self.examples: list[str] = []

    @property
    def state_size(self) -> int:
        """Keys held (for tests and the benchmark)."""
        tables = (self._tuples, self._fans, self._undecided, self._denied, self._passed)
        return sum(len(t) for t in tables)

    def mark(
        self, flows: pd.DataFrame, offset: int, relevant: pd.Series | None = None
    ) -> Directions:
        """:meth:`mark_codes` on a flow table whose first row is input position ``offset``."""
        return self.mark_codes(
            tuple_codes(flows),
            given_replies(flows),
            offset,
            None if relevant is None else relevant.to_numpy(dtype=bool),
            (flows["verdict"] == "denied").fillna(False).to_numpy(dtype=bool),
        )

    def mark_codes(
        self,
        tuples: TupleCodes,
        given: np.ndarray,
        offset: int,
        relevant: np.ndarray | None = None,
        denied: np.ndarray | None = None,
    ) -> Directions:
        """Directions of a chunk in integer form (:mod:`netpolgen.reduce.summary`): ``given``
        is ``is_reply`` as 1, 0 or -1 (not said) per row; ``relevant`` limits the inference to
        the rows whose answer is used (not denied): the others come back as requests.

        ``denied`` (the rows' own verdicts): for windowed records, also which rows belong to a
        connection that another record shows denied (:meth:`_denied_elsewhere`)."""
        replies: np.ndarray = np.equal(given, 1)
        undecided = np.zeros(len(given), dtype=np.int8)
        rows = tuples.rows
        if len(rows) == 0:
            return Directions(replies, undecided)
        keys = self._keys(tuples, offset)
        if self.mode != "decide":
            self._update(keys)
        elsewhere = None
        if denied is not None and tuples.window > 0:
            elsewhere = self._denied_elsewhere(keys, denied, rows, tuples.window)
        if self.mode == "collect":
            return Directions(replies, undecided)
        unknown = given[rows] == -1
        if relevant is not None:
            unknown &= relevant[rows]
        picked = np.flatnonzero(unknown)
        if len(picked):
            code = self._decide(keys, picked, tuples.window, tuples.dst_port[picked])
            replies[rows[picked[code == 1]]] = True
            left_out = code >= 2
            undecided[rows[picked[left_out]]] = code[left_out] - 1
            if left_out.any() and len(self.examples) < _EXAMPLES:
                self._example(tuples, picked[left_out][: _EXAMPLES - len(self.examples)])
        return Directions(replies, undecided, elsewhere)

    def _denied_elsewhere(
        self, keys: _Keys, denied: np.ndarray, rows: np.ndarray, window: int
    ) -> np.ndarray:
        """Per chunk row: not denied itself, but its 5-tuple has a denied record within a
        window of it. AWS logs a connection at both ENIs: the server's security group REJECTs
        it while the client's ENI shows the attempt ACCEPTed outbound; the connection was
        denied. A client port is fresh per connection, so the 5-tuple within a window is it."""
        out = np.zeros(len(denied), dtype=bool)
        own = denied[rows]
        key, time = keys.key, keys.time
        if self.mode != "decide" and own.any():
            d_key, lo, hi = _spans(key[own], time[own])
            if self.mode == "stream" and len(self._passed):
                at = self._passed.find(d_key)
                seen = at >= 0
                p_lo = self._passed.columns["lo"].take(at[seen])
                p_hi = self._passed.columns["hi"].take(at[seen])
                if ((p_lo <= hi[seen] + window) & (p_hi >= lo[seen] - window)).any():
                    raise InputOutOfOrder  # an earlier chunk's record was taken as allowed
            _widen(self._denied, d_key, lo, hi)
        if self.mode == "collect":
            return out
        hit = np.zeros(len(key), dtype=bool)
        if len(self._denied):
            at = self._denied.find(key)
            found = (at >= 0) & ~own & (time != NAT)
            lo = self._denied.columns["lo"].take(at[found])
            hi = self._denied.columns["hi"].take(at[found])
            hit[np.flatnonzero(found)] = (time[found] >= lo - window) & (time[found] <= hi + window)
            out[rows[hit]] = True
        passed = ~own & ~hit
        if self.mode == "stream" and passed.any():
            _widen(self._passed, *_spans(key[passed], time[passed]))
        return out

    def finish(self) -> None:
        """End of a stream: raise :class:`InputOutOfOrder` if a decision taken along the way
        would change with the complete counts of connections: rule (c) now answers otherwise
        than the decision, or no longer answers where it decided."""
        if self.mode != "stream":
            return
        # A block at a time: the whole table at once took a dozen temporary arrays of its
        # length (10M records: ~120 MB above the state itself, the run's peak).
        for bits, src, dst in self._tuples.decided():
            mask, by_fan = bits & CODES, (bits & BY_FAN) != 0
            final = _server_side(self._fans_at(src), self._fans_at(dst))
            wanted = np.left_shift(1, np.maximum(final, 0).astype(np.int64)).astype(np.int8)
            changed = np.where(final >= 0, mask != wanted, by_fan)
            if changed.any():
                raise InputOutOfOrder

    @classmethod
    def from_tuples(cls, earliest: pd.DataFrame) -> DirectionTracker:
        """A ``"decide"`` tracker from the whole input's earliest row per 5-tuple (columns
        a, a_port, b, b_port, protocol, t, o, and optionally d_lo, d_hi, the time span of its
        denied windowed records: what the Dask engine gathers from every file)."""
        tracker = cls()
        tracker.mode = "collect"
        if len(earliest):
            both = pd.concat([earliest["a"], earliest["b"]], ignore_index=True)
            codes, identities = pd.factorize(both)
            protocol, protocols = pd.factorize(earliest["protocol"])
            n = len(earliest)
            order = earliest["o"].to_numpy(dtype=np.int64)
            tuples = TupleCodes(
                rows=np.arange(n, dtype=np.int64),
                identities=np.asarray(identities, dtype=object),
                src=codes[:n].astype(np.int64),
                dst=codes[n:].astype(np.int64),
                protocols=np.asarray(protocols, dtype=object),
                protocol=protocol.astype(np.int64),
                src_port=earliest["a_port"].to_numpy(dtype=np.uint64),
                dst_port=earliest["b_port"].to_numpy(dtype=np.uint64),
                time=earliest["t"].to_numpy(dtype=np.int64),
            )
            keys = tracker._keys(tuples, 0)
            keys.order = order
            tracker._update(keys)
            if "d_lo" in earliest.columns:  # denied spans of windowed records
                lo, hi = earliest["d_lo"].to_numpy(np.int64), earliest["d_hi"].to_numpy(np.int64)
                spans = lo <= hi
                _widen(tracker._denied, keys.key[spans], lo[spans], hi[spans])
        tracker.mode = "decide"
        return tracker

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
        # An end: identity (24 bits), protocol (16), port (16).
        src_end = (a_u << thirty_two) | (p_u << sixteen) | a_port
        dst_end = (b_u << thirty_two) | (p_u << sixteen) | b_port
        return _Keys(key, reverse, src_end, dst_end, tuples.time, tuples.rows + offset)

    def _update(self, keys: _Keys) -> None:
        """Merge the chunk's earliest row per tuple and its new connections; check that past
        decisions by (d) still hold."""
        # The earliest row per tuple key, by (time, input position): positions are unique and
        # increase along the chunk, so a stable sort by time is that order (NaT first).
        by_time = np.argsort(keys.time, kind="stable")
        earliest = by_time[first_of_groups(pd.factorize(keys.key[by_time])[0])]
        key, reverse = keys.key[earliest], keys.reverse[earliest]
        new_t, new_o = keys.time[earliest], keys.order[earliest]
        at, side = self._tuples.locate(key, reverse)
        old_t, old_o = self._tuples.earliest(at, side)
        is_new = old_o < 0
        # A new tuple with no entry: neither it nor its reverse was seen, a new connection.
        unseen = (at < 0)[is_new]
        self._count_connections(key[is_new], reverse[is_new], keys, earliest[is_new], unseen)
        # Equal times keep the old row: its input position is smaller.
        earlier = ~is_new & (new_t < old_t)
        changed = is_new | earlier
        if self.mode == "stream" and changed.any() and len(self._undecided):
            self._check(key[changed], reverse[changed], new_t[changed], is_new[changed])
        at = self._tuples.add(key[changed], reverse[changed], at[changed])
        self._tuples.set_earliest(at, side[changed], new_t[changed], new_o[changed])

    def _count_connections(
        self, key: np.ndarray, reverse: np.ndarray, keys: _Keys, rows: np.ndarray,
        fresh: np.ndarray,
    ) -> None:  # fmt: skip
        """Add one to both ends of each connection first seen in this chunk: a new tuple whose
        reverse was not seen before either (``fresh``; a request and its reply are one
        connection)."""
        canonical = np.minimum(key, reverse)[fresh]
        if not len(canonical):
            return
        _, first = np.unique(canonical, return_index=True)
        chosen = rows[np.flatnonzero(fresh)[first]]
        ends, counts = np.unique(
            np.concatenate([keys.src_end[chosen], keys.dst_end[chosen]]), return_counts=True
        )
        position = self._fans.find(ends)
        old = position >= 0
        column = self._fans.columns["n"]
        column.put(position[old], column.take(position[old]) + counts[old])
        self._fans.append(ends[~old], n=counts[~old].astype(np.int64))

    def _fan(self, ends: np.ndarray) -> np.ndarray:
        return self._fans_at(self._fans.find(ends))

    def _fans_at(self, position: np.ndarray) -> np.ndarray:
        """The connection counts of the ends at rows ``position`` of _fans (-1: none, 0)."""
        found = position >= 0
        out = np.zeros(len(position), dtype=np.int64)
        out[found] = self._fans.columns["n"].take(position[found])
        return out

    def _fan_rule(self, src_end: np.ndarray, dst_end: np.ndarray) -> np.ndarray:
        """Rule (c): 0 where the destination is the server, 1 where the source is, else -1."""
        return _server_side(self._fan(src_end), self._fan(dst_end))

    def _decide(
        self, keys: _Keys, picked: np.ndarray, window: int, dst_port: np.ndarray
    ) -> np.ndarray:
        """Per picked tuple row: 0 request, 1 reply, 1 + an UNDECIDED_REASONS code."""
        key, reverse = keys.key[picked], keys.reverse[picked]
        time, order = keys.time[picked], keys.order[picked]
        code = self._fan_rule(keys.src_end[picked], keys.dst_end[picked]).astype(np.int8)
        fan = code.copy()
        rest = np.flatnonzero(code < 0)
        if not len(rest):
            if self.mode == "stream":
                self._remember_fans(keys, picked, fan, code)
            return code
        own, back = key[rest], reverse[rest]
        at, side = self._tuples.locate(own, back)
        # The reverse is the entry's other side (the same one for a tuple that is its reverse).
        t_e, o_e = self._tuples.earliest(at, np.where(own == back, side, 1 - side))
        present = o_e >= 0
        if window == 0:
            # Points in time: the reply is the later of the two rows (time, then position).
            t, o = time[rest], order[rest]
            both = (t_e != NAT) & (t != NAT)
            reply = present & np.where(both, (t_e < t) | ((t_e == t) & (o_e < o)), o_e < o)
            code[rest] = reply.astype(np.int8)
        else:
            # Windows: compare the two tuples' first records, which must lie a window apart.
            t_own, _ = self._tuples.earliest(at, side)
            timed = present & (t_e != NAT) & (t_own != NAT)
            reply = timed & (t_e < t_own - window)
            request = timed & (t_own < t_e - window)
            ephemeral = dst_port[rest] >= EPHEMERAL_LOW
            result = np.zeros(len(rest), dtype=np.int8)
            result[reply] = 1
            close = present & ~reply & ~request
            result[close & ephemeral] = 2
            result[~present & ephemeral] = 3
            code[rest] = result
        if self.mode == "stream":
            self._remember_undecided(key[rest], time[rest], window > 0)
            self._remember_fans(keys, picked, fan, code)
        return code

    def _remember_fans(
        self, keys: _Keys, picked: np.ndarray, fan: np.ndarray, code: np.ndarray
    ) -> None:
        """Keep, per tuple of the ``picked`` rows, the decisions taken (a bit per code: rows of
        one tuple at different times may differ under rule d) and whether rule (c) took one,
        to check them against the complete counts (:meth:`finish`)."""
        key = keys.key[picked]
        by_key = np.argsort(key, kind="stable")
        sorted_keys = key[by_key]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        row_bits = np.left_shift(1, code[by_key].astype(np.int64)).astype(np.int8)
        mask = np.bitwise_or.reduceat(row_bits, starts)
        by_fan = np.logical_or.reduceat(fan[by_key] >= 0, starts)
        first = picked[by_key[starts]]
        # Every tuple decided has its entry (_update ran first), and both its ends are in _fans
        # (counted with the tuple's connection, or its reverse's).
        at, side = self._tuples.locate(sorted_keys[starts], keys.reverse[first])
        bits = mask | np.where(by_fan, BY_FAN, 0).astype(np.int8)
        self._tuples.decide(
            at, side, bits,
            lambda chosen: (
                self._fans.find(keys.src_end[first[chosen]]),
                self._fans.find(keys.dst_end[first[chosen]]),
            ),
        )  # fmt: skip

    def _check(
        self, key: np.ndarray, reverse: np.ndarray, t_new: np.ndarray, is_new: np.ndarray
    ) -> None:
        """Raise :class:`InputOutOfOrder` if a new earliest row could flip a past (d) decision.

        Points in time: past rows of the reversed tuple at time ``t`` (a NaT on either side
        compares positions only): a new tuple can only turn rows with ``t > t_new`` into
        replies; an earlier row for a known tuple can also turn replies back (NaT rules).
        Windows: any past row of either tuple could change (its decision compares the two
        tuples' first records), so any one is a conflict.
        """
        position = self._undecided.find(reverse)
        seen = position >= 0
        if seen.any():
            columns = self._undecided.columns
            max_t = columns["t"].take(position[seen])
            has_nat = columns["nat"].take(position[seen])
            windowed = columns["win"].take(position[seen])
            t, new = t_new[seen], is_new[seen]
            known_t = t != NAT
            conflict_new = new & known_t & (max_t > t)
            conflict_old = ~new & (~known_t | has_nat | (max_t > t))
            if (windowed | conflict_new | conflict_old).any():
                raise InputOutOfOrder
        own = self._undecided.find(key[~is_new])
        if (own >= 0).any() and self._undecided.columns["win"].take(own[own >= 0]).any():
            raise InputOutOfOrder

    def _remember_undecided(self, key: np.ndarray, time: np.ndarray, windowed: bool) -> None:
        if not len(key):
            return
        # Per distinct key: the latest time and whether any time is NaT (sorted, then reduced).
        by_key = np.argsort(key, kind="stable")
        sorted_keys, sorted_times = key[by_key], time[by_key]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        t = np.maximum.reduceat(sorted_times, starts)
        nat = np.logical_or.reduceat(sorted_times == NAT, starts)
        key = sorted_keys[starts]
        win = np.full(len(key), windowed)
        position = self._undecided.find(key)
        old = position >= 0
        columns = self._undecided.columns
        columns["t"].put(position[old], np.maximum(columns["t"].take(position[old]), t[old]))
        columns["nat"].put(position[old], columns["nat"].take(position[old]) | nat[old])
        columns["win"].put(position[old], columns["win"].take(position[old]) | win[old])
        self._undecided.append(key[~old], t=t[~old], nat=nat[~old], win=win[~old])

    def _example(self, tuples: TupleCodes, picked: np.ndarray) -> None:
        for i in picked.tolist():
            self.examples.append(
                f"{tuples.identities[tuples.src[i]]}:{tuples.src_port[i]} -> "
                f"{tuples.identities[tuples.dst[i]]}:{tuples.dst_port[i]} "
                f"{tuples.protocols[tuples.protocol[i]]}"
            )


def _server_side(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    """Rule (c) on the two ends' connection counts: 0 where the destination is the server, 1
    where the source is, else -1."""
    server_dst = (fy >= MIN_FAN) & (fy >= FAN_RATIO * fx)
    server_src = (fx >= MIN_FAN) & (fx >= FAN_RATIO * fy)
    result: np.ndarray = np.where(server_dst, 0, np.where(server_src, 1, -1)).astype(np.int8)
    return result


def _spans(key: np.ndarray, time: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct key: the earliest and latest time (NaT ignored, as int64 min: lo/hi)."""
    by_key = np.argsort(key, kind="stable")
    sorted_keys, sorted_times = key[by_key], time[by_key]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    big = np.iinfo(np.int64).max
    lo = np.minimum.reduceat(np.where(sorted_times == NAT, big, sorted_times), starts)
    hi = np.maximum.reduceat(sorted_times, starts)
    return sorted_keys[starts], lo, hi


def _widen(table: Table, key: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Merge the spans ``[lo, hi]`` per key into ``table``."""
    at = table.find(key)
    old = at >= 0
    columns = table.columns
    columns["lo"].put(at[old], np.minimum(columns["lo"].take(at[old]), lo[old]))
    columns["hi"].put(at[old], np.maximum(columns["hi"].take(at[old]), hi[old]))
    table.append(key[~old], lo=lo[~old], hi=hi[~old])


class RecordsOnly:
    """No inference: the records' own word, and whether some rows said nothing (``unknown``).

    The Dask engine's first round reduces each file with it; a second round against the whole
    input's state (:meth:`DirectionTracker.from_tuples`) follows only if ``unknown``.
    """

    mode = "decide"

    def __init__(self) -> None:
        self.unknown = False
        self.examples: list[str] = []

    def mark_codes(
        self,
        tuples: TupleCodes,
        given: np.ndarray,
        offset: int,
        relevant: np.ndarray | None = None,
        denied: np.ndarray | None = None,
    ) -> Directions:
        unknown = given[tuples.rows] == -1
        if denied is not None and tuples.window > 0 and denied.any():
            self.unknown = True  # denied records of windowed logs: judged over the whole input
        if relevant is not None:
            unknown &= relevant[tuples.rows]
        self.unknown = self.unknown or bool(unknown.any())
        return Directions(np.equal(given, 1), np.zeros(len(given), dtype=np.int8))

    def finish(self) -> None:
        return None


T = TypeVar("T")


def in_two_passes(
    run: Callable[[DirectionTracker], T], collect: Callable[[DirectionTracker], None]
) -> T:
    """``run(tracker)`` streaming; if it raises :class:`InputOutOfOrder`, ``collect`` the whole
    input into a fresh tracker, then ``run`` again against the complete state (exact)."""
    try:
        return run(DirectionTracker())
    except InputOutOfOrder:
        tracker = DirectionTracker()
        tracker.mode = "collect"
        collect(tracker)
        tracker.mode = "decide"
        return run(tracker)


def mark_directions(flows: pd.DataFrame, relevant: pd.Series | None = None) -> Directions:
    """The directions of one whole flow table (one chunk: the stream's answer is final)."""
    tracker = DirectionTracker()
    return tracker.mark(flows, 0, relevant)
