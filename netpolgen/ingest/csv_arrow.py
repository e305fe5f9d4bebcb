"""The CSV format's Arrow reader: pyarrow's streaming parser on a thread of its own.

A chunk's cells arrive as Arrow-backed text, and the same thread prepares them for the checks of
:mod:`netpolgen.ingest.csv` (:class:`Prepared`): it factorises the text columns and casts the
number columns, Arrow work that releases the interpreter lock, so it runs on the other core
beside the checks of the chunk before (:mod:`netpolgen.ingest.read_ahead`).
"""

from __future__ import annotations

import csv as stdlib_csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen._compat import optional
from netpolgen._kernels import Factorized, remember_codes, without_value
from netpolgen.errors import InputError
from netpolgen.ingest.read_ahead import read_ahead

_pa = optional("pyarrow")  # the ``fast`` extra
_arrow_csv = optional("pyarrow.csv")

__all__ = ["Prepared", "arrow_numbers", "normalized_names", "read_arrow"]


def read_arrow(
    stream: BinaryIO, source: str, chunk_size: int
) -> Iterator[tuple[pd.DataFrame, Prepared]]:
    """Chunks of text cells, parsed by pyarrow on a thread of its own (see read_ahead), with
    their columns factorised and cast there too (:func:`_prepared`)."""
    assert _arrow_csv is not None and _pa is not None
    # Every column as text, named explicitly: Arrow would otherwise infer a type from the first
    # block (dst_port: int64) and fail the whole file on a bad cell in a later one, where the
    # checks should skip that one row.
    text_columns = {name: _pa.string() for name in _header_names(stream)}
    try:
        reader = _arrow_csv.open_csv(
            stream,
            read_options=_arrow_csv.ReadOptions(block_size=_block_size(chunk_size)),
            parse_options=_arrow_csv.ParseOptions(newlines_in_values=True),
            convert_options=_arrow_csv.ConvertOptions(
                strings_can_be_null=False, quoted_strings_can_be_null=False,
                column_types=text_columns, null_values=[],
            ),
        )  # fmt: skip
    except _pa.ArrowInvalid as error:
        raise _arrow_error(error, source) from error
    names = list(reader.schema.names)
    try:
        yield from read_ahead(_framed(_gathered(reader, chunk_size), names, source))
    except _pa.ArrowInvalid as error:
        raise _arrow_error(error, source) from error


def _framed(
    gathered: Iterator[list[Any]], names: list[str], source: str
) -> Iterator[tuple[pd.DataFrame, Prepared]]:
    """The gathered batches as frames numbered from the file's first row, each with its
    columns prepared: on the read-ahead thread, where Arrow's hashing and casts (which release
    the interpreter lock) run beside the checks of the chunk before, on the other core."""
    row = 0
    for batches in gathered:
        frame = _frame(batches, names, row, source)
        if len(frame) or not row:  # a file of only a header still makes one chunk
            row += len(frame)
            yield frame, _prepared(frame)


# The columns the CSV checks take per distinct value, and those it parses as numbers (of the
# kind arrow_numbers names).
_FACTORIZED_COLUMNS = frozenset(
    {"protocol", "verdict", "is_reply"}
    | {f"{side}_{name}" for side in ("src", "dst") for name in ("ip", "namespace", "pod", "labels")}
)
_NUMBER_COLUMNS = {
    "src_port": "int64", "dst_port": "int64", "count": "int64", "bytes": "int64",
    "packets": "int64", "time": "float64",
}  # fmt: skip


@dataclass(frozen=True)
class Prepared:
    """What the reader's thread worked out for a chunk ahead of the CSV checks, by
    normalised column name: the text columns factorised, and the first parse of the number
    columns (:func:`arrow_numbers`: None where a cell needs the general parser)."""

    factorized: dict[str, Factorized] = field(default_factory=dict)
    numbers: dict[str, pd.Series | None] = field(default_factory=dict)

    def first_parse(self, text: pd.Series, name: str) -> pd.Series | None:
        """Arrow's parse of the number column ``name`` (``text``), made now if not yet."""
        if name in self.numbers:
            return self.numbers[name]
        return arrow_numbers(text, _NUMBER_COLUMNS[name])


def _prepared(frame: pd.DataFrame) -> Prepared:
    """:class:`Prepared` for ``frame``, by the first column of each normalised name (the one
    the CSV checks keep)."""
    import pyarrow.compute as pc

    assert _pa is not None
    prepared = Prepared()
    done: set[str] = set()
    for position, name in enumerate(normalized_names(frame.columns)):
        if name in done:
            continue
        done.add(name)
        column = frame.iloc[:, position]
        if name in _NUMBER_COLUMNS:
            prepared.numbers[name] = arrow_numbers(column, _NUMBER_COLUMNS[name])
            continue
        if name not in _FACTORIZED_COLUMNS or not isinstance(
            column.array, pd.arrays.ArrowStringArray
        ):
            continue
        arrow = _pa.array(column.array)
        if isinstance(arrow, _pa.ChunkedArray):
            arrow = arrow.combine_chunks()
        encoded = pc.dictionary_encode(arrow)
        # A missing cell (none is expected: empty strings are not nulls here) is code -1, as
        # pandas.factorize gives it.
        indices = pc.fill_null(encoded.indices, -1)
        codes = indices.to_numpy(zero_copy_only=False).astype(np.intp)
        uniques = encoded.dictionary.to_pylist()
        blanks = None
        # Kept for the summaries too (netpolgen.reduce.summary), which group by these columns
        # as the checks leave them: as read, or with their empty cells missing.
        remember_codes(column, codes, uniques)
        if "" in uniques:  # an empty cell is most checks' "no value": the column with them NA
            nulled = pd.arrays.ArrowStringArray(_blank_as_null(arrow))
            blanks = pd.Series(nulled, index=column.index)
            remember_codes(blanks, *without_value(codes, uniques, ""))
        prepared.factorized[name] = Factorized(codes, uniques, blanks)
    return prepared


def normalized_names(columns: pd.Index) -> list[str]:
    """Column names as the CSV checks read them: trimmed, lower case."""
    return [str(c).strip().lower() for c in columns]


def _gathered(reader: Any, chunk_size: int) -> Iterator[list[Any]]:
    """The reader's record batches, gathered into lists of at least ``chunk_size`` rows; the
    last list may be shorter, or empty (a file of only a header still makes one chunk)."""
    pending: list[Any] = []
    pending_rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= chunk_size:
            yield pending
            pending, pending_rows = [], 0
    yield pending


def _block_size(chunk_size: int) -> int:
    # Arrow's streaming reader keeps several blocks in flight per thread; memory grows about 30
    # times the block size (measured: 1 MiB -> +80 MB, 12 MiB -> +430 MB), while speed barely
    # changes beyond 1 MiB. Batches are gathered up to chunk_size rows before parsing.
    return 1 << 20 if chunk_size >= 4096 else 1 << 16


def _header_names(stream: BinaryIO) -> list[str]:
    """The column names of the header line (the first non-blank one), read from the buffered
    head of ``stream`` without consuming it; empty when it does not fit in the buffer."""
    head = stream.peek(_HEAD_BYTES)  # type: ignore[attr-defined]
    lines = head.split(b"\n")
    if len(lines) == 1 and len(head) >= _HEAD_BYTES:  # no line end in a full buffer: cut off
        return []
    first = next((line for line in lines if line.strip()), b"")
    text = first.rstrip(b"\r").decode("utf-8", "replace")
    try:
        return next(stdlib_csv.reader([text]), [])
    except stdlib_csv.Error:  # a lone carriage return inside the line: the reader reports it
        return []


_HEAD_BYTES = 1 << 20  # what the source's buffer holds (ingest.sources)


def _frame(batches: list[Any], names: list[str], start: int, source: str) -> pd.DataFrame:
    assert _pa is not None
    try:
        return _to_frame(batches, names, start)
    except _pa.ArrowInvalid as error:
        raise _arrow_error(error, source) from error


def _to_frame(batches: list[Any], names: list[str], start: int) -> pd.DataFrame:
    assert _pa is not None
    if batches:
        table = _pa.Table.from_batches(batches)
    else:
        # By position: a header may repeat a name (a dict of columns would drop the repeat, and
        # the names would then not fit the columns: a file of 50,000 rows crashed so).
        empty = [_pa.array([], _pa.string()) for _ in names]
        table = _pa.Table.from_arrays(empty, names=names)
    frame = table.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow"))
    frame.columns = names
    frame.index = pd.RangeIndex(start, start + len(frame))
    return pd.DataFrame(frame)


def _arrow_error(error: Exception, source: str) -> InputError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "Empty CSV file" in text:
        return InputError("empty file: no CSV header", source=source)
    if "UTF8" in text or "utf8" in text.lower():
        return InputError("not UTF-8 text", source=source, hint="convert the file to UTF-8")
    return InputError(f"malformed CSV ({text})", source=source)


def arrow_numbers(text: pd.Series, kind: str) -> pd.Series | None:
    """``text`` parsed by Arrow's cast (empty cells as NA), or None if any cell does not parse.

    A fast path only: whatever Arrow rejects ("1e3", "5.0" as an integer, "+5") goes through the
    pandas parser as before, so accepted values are the same.
    """
    if _pa is None or not isinstance(text.dtype, pd.StringDtype) or text.dtype.storage != "pyarrow":
        return None
    import pyarrow.compute as pc

    target = _pa.int64() if kind == "int64" else _pa.float64()
    try:
        parsed = pc.cast(_blank_as_null(_pa.array(text)), target)
    except (_pa.ArrowInvalid, _pa.ArrowNotImplementedError):
        return None
    mapper = {_pa.int64(): pd.Int64Dtype(), _pa.float64(): pd.Float64Dtype()}
    # .array: a fresh Series would be aligned on its own 0..n index, not relabelled.
    return pd.Series(parsed.to_pandas(types_mapper=mapper.get).array, index=text.index)


def _blank_as_null(array: Any) -> Any:
    """An Arrow text array with its empty cells null (the CSV's "no value")."""
    import pyarrow.compute as pc

    assert _pa is not None
    return pc.if_else(pc.equal(array, ""), _pa.scalar(None, _pa.string()), array)
