"""Per 5-tuple state of the reply inference, kept per connection: a tuple and its reverse share
one entry.

The direction inference (:mod:`netpolgen.reduce.direction`) asks two things of every tuple it
has seen: its earliest record (time, input position), and, while streaming, the decisions it
took for the tuple's rows. Most tuples have their reverse in the input too (a request and its
reply), and every question about a tuple is asked together with its reverse's (rule d compares
the two; a connection is new when neither was seen). So both directions live in one entry, keyed
by the smaller of the two tuple keys: one hash-table key instead of two, each end of the
connection stored once. Measured at 10M CSV records: 9.1M tuples in 4.5M entries, the state
456 -> 299 MiB (hash table and columns).

An entry holds, per side (0: the tuple whose key is the entry's key, 1: its reverse), the
earliest time and position (position -1: that side not seen yet) and the decisions taken (bits,
see :data:`BY_FAN`); and, once a decision was taken, the rows in the ends' table of the
connection's two ends, in the orientation of side 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from netpolgen._kernels import NAT
from netpolgen.reduce.keyed import Table

__all__ = ["BY_FAN", "CODES", "ConnectionTable"]

# Decision bits of a side: bit c for each code c taken (0 request, 1 reply, 2 and 3 undecided),
# and BY_FAN when rule (c) took one.
CODES = 0x0F
BY_FAN = 0x10
_BLOCK = 1 << 18  # entries at a time in blocks()


class ConnectionTable:
    """Tuples in entries of two sides (see the module docstring), with vectorised access."""

    def __init__(self) -> None:
        self._table = Table(
            t0=np.int64, t1=np.int64, o0=np.int64, o1=np.int64,
            m0=np.int8, m1=np.int8, x=np.int64, y=np.int64,
            narrow=("o0", "o1", "x", "y"),
        )  # fmt: skip

    def __len__(self) -> int:
        """Entries (connections, or tuples whose reverse was not seen)."""
        return len(self._table)

    def locate(self, key: np.ndarray, reverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per tuple: its entry (-1 when neither it nor its reverse was added) and its side."""
        side = (key > reverse).astype(np.int8)
        return self._table.find(np.minimum(key, reverse)), side

    def add(self, key: np.ndarray, reverse: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Entries for tuples with none yet (``at`` -1), both sides unseen; ``at`` completed.
        A tuple and its reverse may both come in one call: they get one entry."""
        missing = at < 0
        if missing.any():
            canonical = np.minimum(key[missing], reverse[missing])
            # Hashed, in order of first appearance: the new entries' rows follow from the codes
            # (no second lookup in the whole table, no sort).
            codes, distinct = pd.factorize(canonical)
            count, start = len(distinct), len(self._table)
            unseen = np.full(count, -1, dtype=np.int8)
            never = np.full(count, NAT, dtype=np.int64)
            self._table.append(
                np.asarray(distinct), t0=never, t1=never, o0=unseen, o1=unseen,
                m0=np.zeros(count, np.int8), m1=np.zeros(count, np.int8), x=unseen, y=unseen,
            )  # fmt: skip
            at = at.copy()
            at[missing] = start + codes
        return at

    def earliest(self, at: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The earliest (time, position) of the tuples at ``at``, ``side``; position -1 (and
        time NaT) where that side was not seen, or there is no entry (``at`` -1)."""
        time = np.full(len(at), NAT, dtype=np.int64)
        order = np.full(len(at), -1, dtype=np.int64)
        for s in (0, 1):
            rows = np.flatnonzero((side == s) & (at >= 0))
            if len(rows):
                time[rows] = self._table.columns[f"t{s}"].take(at[rows])
                order[rows] = self._table.columns[f"o{s}"].take(at[rows])
        return time, order

    def set_earliest(
        self, at: np.ndarray, side: np.ndarray, time: np.ndarray, order: np.ndarray
    ) -> None:
        """Make (``time``, ``order``) the earliest of the tuples at ``at`` (all added)."""
        for s in (0, 1):
            rows = side == s
            self._table.columns[f"t{s}"].put(at[rows], time[rows])
            self._table.columns[f"o{s}"].put(at[rows], order[rows])

    def decide(
        self,
        at: np.ndarray,
        side: np.ndarray,
        bits: np.ndarray,
        ends: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    ) -> None:
        """OR ``bits`` into the decisions of the distinct tuples at ``at``, ``side``.
        ``ends(chosen)``: the (source end row, destination end row) in the ends' table of the
        tuples ``chosen`` (a mask), asked for the entries with no decision yet; kept in side
        0's orientation."""
        columns = self._table.columns
        # Both sides' decisions before any is written: a tuple and its reverse may both be here.
        before = np.zeros(len(at), dtype=np.int8)
        other = np.zeros(len(at), dtype=np.int8)
        for s in (0, 1):
            rows = side == s
            before[rows] = columns[f"m{s}"].take(at[rows])
            other[rows] = columns[f"m{1 - s}"].take(at[rows])
        for s in (0, 1):
            rows = side == s
            columns[f"m{s}"].put(at[rows], before[rows] | bits[rows])
        # No decision on either side yet: the ends are not there (the same two for both sides).
        first = (before == 0) & (other == 0)
        if first.any():
            src, dst = ends(first)
            flip = side[first] == 1
            columns["x"].put(at[first], np.where(flip, dst, src))
            columns["y"].put(at[first], np.where(flip, src, dst))

    def decided(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The decisions taken, a block of entries at a time: (decision bits, source end row,
        destination end row) per decided tuple, in its own orientation."""
        columns = self._table.columns
        for start in range(0, len(self._table), _BLOCK):
            rows = np.arange(start, min(start + _BLOCK, len(self._table)))
            x, y = columns["x"].take(rows), columns["y"].take(rows)
            for s in (0, 1):
                bits = columns[f"m{s}"].take(rows)
                taken = bits != 0
                if taken.any():
                    src, dst = (x, y) if s == 0 else (y, x)
                    yield bits[taken], src[taken], dst[taken]
