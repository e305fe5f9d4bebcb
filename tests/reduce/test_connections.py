"""The reply inference's per-connection state (netpolgen.reduce.connections) against a model.

The table keeps a tuple and its reverse in one entry; the model keeps every tuple on its own,
as the tracker did before, in a dictionary. Whatever the order of the tuples, chunk after chunk,
both must answer alike: a tuple's earliest (time, position), the decisions taken for it, and
its two ends (in its own orientation, whichever direction was decided first). Tuples that are
their own reverse (both ends one address and port) are included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from netpolgen._kernels import NAT
from netpolgen.reduce.connections import ConnectionTable

# A tuple key here: (pair, a_port, b_port) packed; its reverse swaps the ports and the pair's
# ends, as DirectionTracker._keys builds them (pair ids forward and backward).
_PAIRS = [(0, 1), (1, 0), (2, 2)]  # pair 2 is its own reverse (a == b)


def _key(pair: int, a_port: int, b_port: int) -> int:
    return (pair << 32) | (a_port << 16) | b_port


def _reverse(pair: int, a_port: int, b_port: int) -> int:
    back = {0: 1, 1: 0, 2: 2}[pair]
    return _key(back, b_port, a_port)


_TUPLE = st.tuples(st.sampled_from([0, 1, 2]), st.sampled_from([80, 40000]),
                   st.sampled_from([80, 40000]))  # fmt: skip
_CHUNK = st.lists(
    st.tuples(_TUPLE, st.integers(-3, 20), st.integers(0, 15)), min_size=1, max_size=12
)


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(_CHUNK, min_size=1, max_size=6))
def test_the_table_answers_as_one_entry_per_tuple_would(
    chunks: list[list[tuple[tuple[int, int, int], int, int]]],
) -> None:
    table = ConnectionTable()
    earliest: dict[int, tuple[int, int]] = {}
    decisions: dict[int, int] = {}
    ends: dict[int, tuple[int, int]] = {}
    order = 0
    for chunk in chunks:
        # One chunk: distinct tuples (as _update and _remember_fans hand them over).
        rows = {}
        for (pair, a_port, b_port), time, bits in chunk:
            key = _key(pair, a_port, b_port)
            if key not in rows:
                rows[key] = (_reverse(pair, a_port, b_port), time, bits, (pair, a_port, b_port))
        keys = np.array(list(rows), dtype=np.uint64)
        reverses = np.array([r[0] for r in rows.values()], dtype=np.uint64)
        times = np.array([NAT if r[1] < 0 else r[1] for r in rows.values()], dtype=np.int64)
        orders = np.arange(order, order + len(keys), dtype=np.int64)
        order += len(keys)

        at, side = table.locate(keys, reverses)
        old_t, old_o = table.earliest(at, side)
        for i, key in enumerate(keys.tolist()):
            expected = earliest.get(key, (NAT, -1))
            assert (old_t[i], old_o[i]) == expected
            # No entry exactly when neither the tuple nor its reverse was seen.
            assert (at[i] < 0) == (key not in earliest and int(reverses[i]) not in earliest)
        new = old_o < 0
        changed = new | (~new & (times < old_t))
        at = table.add(keys[changed], reverses[changed], at[changed])
        table.set_earliest(at, side[changed], times[changed], orders[changed])
        for i in np.flatnonzero(changed).tolist():
            earliest[int(keys[i])] = (int(times[i]), int(orders[i]))

        # Decisions for the tuples with bits, ends numbered from the tuple's ports.
        chosen = np.array([r[2] > 0 for r in rows.values()])
        if chosen.any():
            at, side = table.locate(keys[chosen], reverses[chosen])
            bits = np.array([r[2] for r in rows.values()], dtype=np.int8)[chosen]
            parts = [r[3] for r, c in zip(rows.values(), chosen, strict=True) if c]
            src = np.array([p[1] for p in parts], dtype=np.int64)
            dst = np.array([p[2] for p in parts], dtype=np.int64)

            def ends_of(mask: np.ndarray, src: np.ndarray = src, dst: np.ndarray = dst) -> Any:
                return src[mask], dst[mask]

            table.decide(at, side, bits, ends_of)
            for key, bit, part in zip(keys[chosen].tolist(), bits.tolist(), parts, strict=True):
                decisions[key] = decisions.get(key, 0) | bit
                ends.setdefault(key, (part[1], part[2]))

    got = sorted(
        (int(b), int(s), int(d))
        for block in table.decided()
        for b, s, d in zip(*block, strict=True)
    )
    want = sorted((decisions[key], *ends[key]) for key in decisions)
    assert got == want
