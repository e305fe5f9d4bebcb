"""Integer state kept across chunks: dense ids for values, and uint64-keyed growable columns.

The direction inference (:mod:`netpolgen.reduce.direction`) keeps its per-connection state in
these: integers only, in fixed-size blocks, so that memory follows the number of distinct keys
(connections), never the number of records.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from netpolgen.errors import NetpolgenError

__all__ = ["Column", "Registry", "Table"]


class Registry:
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

    def values(self, ids: np.ndarray) -> np.ndarray:
        """The values of ``ids`` (the inverse of :meth:`ids`)."""
        return np.asarray(self._index.take(ids), dtype=object)


class Column:
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
        """The values at ``positions`` (each below :attr:`size`)."""
        if len(self.blocks) == 1:
            only: np.ndarray = self.blocks[0][positions]
            return only
        out = np.empty(len(positions), dtype=self.dtype)
        block_of = positions >> self.BITS
        for block in self._touched(block_of):
            where = block_of == block
            out[where] = self.blocks[block][positions[where] & ((1 << self.BITS) - 1)]
        return out

    def put(self, positions: np.ndarray, values: np.ndarray) -> None:
        """Set the values at ``positions`` (each below :attr:`size`)."""
        self._fit(values)
        if len(self.blocks) == 1:
            self.blocks[0][positions] = values
            return
        block_of = positions >> self.BITS
        for block in self._touched(block_of):
            where = block_of == block
            self.blocks[block][positions[where] & ((1 << self.BITS) - 1)] = values[where]

    def _touched(self, block_of: np.ndarray) -> np.ndarray:
        # Counting per block is linear; np.unique hashed or sorted the positions every call
        # (3M CSV records: 0.23 s of the main thread).
        return np.flatnonzero(np.bincount(block_of, minlength=len(self.blocks)))

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


class Table:
    """Columns keyed by a unique uint64 key, with vectorised lookup.

    The key -> row map is a persistent hash table (pandas' own, the one behind ``Index``), so a
    chunk costs time in proportion to its own size, not to the table's: an ``Index`` rebuilt
    after every append would make a long input quadratic. About 45 bytes per key in all.
    """

    def __init__(self, narrow: tuple[str, ...] = (), **dtypes: type) -> None:
        self._map: Any = new_hashtable()
        self._size = 0
        self.columns = {name: Column(dtype, name in narrow) for name, dtype in dtypes.items()}

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


def new_hashtable() -> Any:
    try:  # pandas' int64 hash table: not public API, present in pandas 2 and 3
        from pandas._libs.hashtable import Int64HashTable  # type: ignore[import-not-found]

        return Int64HashTable()
    except ImportError:  # pragma: no cover - a future pandas without it
        return IndexMap()


class IndexMap:
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
