"""Big files cut into parts that worker processes parse (and, for CSV, summarise).

Hubble files are cut at its own 64 MB chunk edges, so one process and several make the same
chunks; CSV files into 32 MB ranges at line ends with the header in front, read again in the
parent from a range whose quotes do not pair up (:func:`plain_quotes`)."""

from __future__ import annotations

import gc
import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen._faults import checkpoint
from netpolgen._memory import give_back_memory, tune_allocator
from netpolgen.engine.processes import outcome, worker_context, worker_started
from netpolgen.errors import InputError, NetpolgenError
from netpolgen.ingest.collapse import connection_keys
from netpolgen.ingest.jsonlines import LineCount
from netpolgen.ingest.limits import limit_lines, long_line_in
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.reduce.summary import ChunkSummary, summarize_chunk

if TYPE_CHECKING:
    from netpolgen.resolve import Resolver


@dataclass(frozen=True)
class Plan:
    path: str
    format: str
    header: bytes
    ranges: list[tuple[int, int]]


def hubble_chunk_bytes() -> int:
    from netpolgen.ingest import hubble

    return hubble.CHUNK_BYTES


def skip_line(handle: BinaryIO) -> None:
    """Move past the next newline, reading in blocks: a huge line is never held whole."""
    while True:
        block = handle.read(1 << 20)
        if not block:
            return
        newline = block.find(b"\n")
        if newline >= 0:
            handle.seek(newline + 1 - len(block), os.SEEK_CUR)
            return


def _hubble_range(
    path: str, start: int, end: int, chunk_size: int,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[list[tuple[pd.DataFrame, pd.Series]], IngestReport, int, int]:  # fmt: skip
    """Worker: bytes ``[start, end)`` (one byte chunk of the Hubble reader) read into chunks
    with their repeated observations merged.

    Returns the chunks with their connection keys, the part's report, its line count and its
    lost-event count.
    """
    report = IngestReport(max_line_bytes=max_line_bytes)
    # The part is one byte chunk already: only row counts cut it further.
    lines = LineCount()
    # No cyclic garbage collection while the part is read: its rows are tens of thousands of
    # tuples that every full collection would walk, and nothing here makes cycles (measured: 10%
    # of a worker's time). What the part left is collected once, at its end.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_hubble_range(path, start, end, chunk_size, report, lines)
    finally:
        if collecting:
            gc.enable()
            gc.collect(0)


def _read_hubble_range(
    path: str, start: int, end: int, chunk_size: int, report: IngestReport, lines: LineCount
) -> tuple[list[tuple[pd.DataFrame, pd.Series]], IngestReport, int, int]:
    from netpolgen.ingest import hubble

    max_line_bytes = report.max_line_bytes
    with open(path, "rb", buffering=0) as handle:
        if _long_line_in(handle, start, end, max_line_bytes):
            handle.seek(start)
            data = handle.read(end - start)
            stream: BinaryIO = limit_lines(io.BufferedReader(io.BytesIO(data)), path, report)
        else:
            # Read a block at a time, not whole: a fresh 64 MB buffer a part costs its page
            # faults every time (measured: 29 ms a part, against 4 ms in blocks of 1 MB).
            stream = io.BufferedReader(_FileRange(handle, start, end), buffer_size=1 << 20)
        chunks = [
            (chunk, connection_keys(chunk, hubble.BUCKET))  # hashed here, to spare the parent
            for chunk in hubble.merged_chunks(stream, path, report, chunk_size, None, lines)
        ]
    lost = 0
    kept = []
    for message in report.messages:
        if message.endswith("the capture is incomplete"):
            lost += int(message.split("reported ")[1].split(" ")[0])
        else:
            kept.append(message)
    report.messages = kept
    return chunks, report, lines.lines, lost


class _FileRange(io.RawIOBase):
    """Bytes ``[start, end)`` of an open file, read as a stream of their own."""

    def __init__(self, handle: BinaryIO, start: int, end: int) -> None:
        handle.seek(start)
        self._handle, self._left = handle, end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        count = self._handle.readinto(view) or 0  # type: ignore[attr-defined]
        self._left -= count
        return count


def _long_line_in(handle: BinaryIO, start: int, end: int, limit: int) -> bool:
    """:func:`~netpolgen.ingest.limits.long_line_in` of bytes ``[start, end)`` of the file, read
    with ``os.pread``. Not a memory map: a file cut shorter meanwhile (a rotated log) would kill
    the process with SIGBUS instead of a short read."""
    fd = handle.fileno()
    return long_line_in(lambda offset, size: os.pread(fd, size, offset), start, end, limit)


def parse_parallel_hubble(
    plan: Plan, report: IngestReport, chunk_size: int, workers: int
) -> Iterator[pd.DataFrame]:
    """Hubble with the per-line work and the merging within chunks in workers.

    Parts are the reader's byte chunks (:data:`netpolgen.ingest.hubble.CHUNK_BYTES`), which
    workers cut further every ``chunk_size`` rows, as :func:`netpolgen.ingest.hubble.read`
    does; merging a chunk's observations against the previous chunk's is sequential, here.
    """
    from netpolgen.ingest import hubble
    from netpolgen.ingest.collapse import SeenConnections
    from netpolgen.ingest.sanitize import sanitize_flows

    name = str(plan.path)
    report.files.append(name)
    report.formats[name] = plan.format
    seen = SeenConnections(hubble.BUCKET)
    lines_before = 0
    lost = 0
    options = (chunk_size, report.max_line_bytes)
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=worker_context(), initializer=worker_started
    ) as pool:
        futures: deque[Future[Any]] = deque()
        ranges = iter(plan.ranges)
        for start, end in ranges:
            futures.append(pool.submit(_hubble_range, plan.path, start, end, *options))
            if len(futures) >= workers + 1:
                break
        while futures:
            try:
                chunks, part_report, lines, part_lost = outcome(futures.popleft(), name)
            except NetpolgenError as error:
                if error.source == name and error.line is not None:
                    error.line += lines_before
                raise
            nxt = next(ranges, None)
            if nxt is not None:
                futures.append(pool.submit(_hubble_range, plan.path, *nxt, *options))
            _check_strict(part_report, report, name, lines_before)
            report.merge(part_report, line_offset=lines_before, source=name)
            lines_before += lines
            lost += part_lost
            for chunk, keys in chunks:
                yield sanitize_flows(seen(chunk, report, keys), name, report)
                checkpoint("read.chunk")  # as iter_flows does after each chunk
    if lost:
        hubble.report_lost(report, name, lost)


def csv_parts_possible(head: bytes) -> bool:
    """A CSV file can be cut into parts when its header is its first line (no blank lines or
    byte-order mark games before it) and the Arrow reader takes it (every part must be read by
    the reader the whole file would get)."""
    from netpolgen.ingest.csv import HAS_ARROW, arrow_friendly

    first = head.split(b"\n", 1)[0]
    return HAS_ARROW and bool(first.strip()) and arrow_friendly(head)


_QUOTE = ord('"')
_OPENS_AFTER = np.array([ord(","), ord("\n")], dtype=np.uint8)
_CLOSES_BEFORE = np.array([ord(","), ord("\n"), ord("\r")], dtype=np.uint8)


def plain_quotes(data: bytes) -> bool:
    """Whether every double quote in ``data`` (CSV lines, from a line start outside any quoted
    cell) opens a cell at its start or closes it before a delimiter or line end, in turn.

    Then the quoted cells are exactly the pairs of quotes, so a part that starts outside a cell
    and holds an even number of quotes ends outside one too: each cut between parts falls
    between records. Doubled quotes inside a cell, or a quote in the middle of a value, make the
    test fail, and the file is read in one process from that part on.
    """
    codes = np.frombuffer(data, dtype=np.uint8)
    quotes = np.flatnonzero(codes == _QUOTE)
    if len(quotes) % 2:
        return False
    if not len(quotes):
        return True
    opening, closing = quotes[0::2], quotes[1::2]
    before = codes[np.maximum(opening - 1, 0)]
    opens_ok = (opening == 0) | np.isin(before, _OPENS_AFTER)
    after = codes[np.minimum(closing + 1, len(codes) - 1)]
    closes_ok = (closing == len(codes) - 1) | np.isin(after, _CLOSES_BEFORE)
    return bool(opens_ok.all() and closes_ok.all())


@dataclass
class _PartSummary:
    """What a summarising worker hands back for one part."""

    summaries: list[ChunkSummary]
    report: IngestReport
    lines: int  # newlines in the part
    plain: bool  # plain_quotes held (CSV): the part was cut between records
    error: NetpolgenError | None
    notes: Any  # Resolver.notes() of the worker's copy


_WORKER_RESOLVER: Resolver | None = None


def _set_worker_resolver(resolver: Resolver | None) -> None:
    """Pool initializer: the inventory's resolver, sent once per worker process."""
    global _WORKER_RESOLVER
    worker_started()
    tune_allocator()
    _WORKER_RESOLVER = resolver


def _read_part_chunks(
    stream: BinaryIO, path: str, format: str, report: IngestReport, chunk_size: int
) -> Iterator[pd.DataFrame]:
    """A part's chunks with the guards of ``read_checked`` (line limit; names and labels are
    checked by the reader itself), read by the reader the whole file takes."""
    from netpolgen.ingest import csv

    stream = limit_lines(stream, path, report, header=True)
    yield from csv.read(stream, path, report, chunk_size, arrow=True)


def _summary_range(
    path: str, format: str, header: bytes, start: int, end: int, chunk_size: int,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> _PartSummary:  # fmt: skip
    """Worker: parse bytes ``[start, end)`` of ``path`` (``header`` in front), resolve and
    summarise each chunk. Errors come back as values: the parent decides whether they count
    (a part cut inside a quoted cell is read again in one piece)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    # The bytes are checked, then dropped: the reader reads the part again from the file (the
    # page cache), so a worker never holds a copy of its part while it parses.
    plain, lines = plain_quotes(data), data.count(b"\n")
    del data
    report = IngestReport(max_line_bytes=max_line_bytes)
    resolver = _WORKER_RESOLVER
    if resolver is not None:
        # The worker's own copy, one task at a time: its notes restart with each part, its
        # answer cache carries over (answers depend on the inventory only).
        resolver.clear()
    summaries: list[ChunkSummary] = []
    error = None
    if plain:
        with open(path, "rb") as handle:
            handle.seek(start)
            stream = io.BufferedReader(_Prefixed(header, handle, end - start), 1 << 20)
            try:
                for chunk in _read_part_chunks(stream, path, format, report, chunk_size):
                    if resolver is not None and len(chunk):
                        chunk = resolver(chunk)
                    summaries.append(summarize_chunk(chunk))
            except NetpolgenError as caught:
                error = caught
            give_back_memory()
    notes = resolver.notes() if resolver is not None else None
    return _PartSummary(summaries, report, lines, plain, error, notes)


def parse_parallel_summaries(
    plan: Plan, report: IngestReport, chunk_size: int, workers: int, resolver: Resolver | None
) -> Iterator[pd.DataFrame | ChunkSummary]:
    """Parts parsed, resolved and summarised in workers, in input order.

    A part that is not cut cleanly between records (:func:`plain_quotes`) and every part after
    it are read in this process instead, from the part's start: exact in every case.
    """
    name = str(plan.path)
    report.files.append(name)
    report.formats[name] = plan.format
    read_before, skipped_before = report.records_read, report.records_skipped
    lines_before = 0  # lines of the file before the current part, header included
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=worker_context(), initializer=_set_worker_resolver,
        initargs=(resolver,),
    ) as pool:  # fmt: skip
        pending: deque[tuple[int, Future[Any]]] = deque()
        ranges = iter(plan.ranges)
        options = (plan.path, plan.format, plan.header)

        def submit(start: int, end: int) -> None:
            future = pool.submit(
                _summary_range, *options, start, end, chunk_size, report.max_line_bytes
            )
            pending.append((start, future))

        for start, end in ranges:
            submit(start, end)
            if len(pending) >= workers + 1:
                break
        if plan.header:
            lines_before = 1
        while pending:
            start, future = pending.popleft()
            part: _PartSummary = outcome(future, name)
            if not part.plain:
                for _, later in pending:
                    later.cancel()
                pending.clear()
                yield from _read_rest(plan, start, lines_before, report, chunk_size, resolver)
                break
            if part.error is not None:
                if part.error.source == name and part.error.line is not None:
                    part.error.line += lines_before - 1  # the part's line 1 is the header
                raise part.error
            nxt = next(ranges, None)
            if nxt is not None:
                submit(*nxt)
            _check_strict(part.report, report, name, lines_before - 1)
            report.merge(part.report, line_offset=lines_before - 1, source=name)
            if resolver is not None and part.notes is not None:
                resolver.absorb(part.notes)
            lines_before += part.lines
            yield from part.summaries
    read = report.records_read - read_before
    if read and report.records_skipped - skipped_before == read:
        report.messages.append(f"{name}: none of its {read} record(s) could be used")


def _read_rest(
    plan: Plan, start: int, lines_before: int, report: IngestReport, chunk_size: int,
    resolver: Resolver | None,
) -> Iterator[pd.DataFrame]:  # fmt: skip
    """The file from byte ``start`` on (a record start), read in this process with the header
    in front; line numbers shifted to the whole file's."""
    name = str(plan.path)
    part = report.fresh()
    with open(plan.path, "rb") as handle:
        handle.seek(start)
        stream = io.BufferedReader(_Prefixed(plan.header, handle), buffer_size=1 << 20)
        try:
            for chunk in _read_part_chunks(stream, name, plan.format, part, chunk_size):
                yield resolver(chunk) if resolver is not None and len(chunk) else chunk
        except NetpolgenError as error:
            if error.source == name and error.line is not None:
                error.line += lines_before - 1
            raise
    report.merge(part, line_offset=lines_before - 1, source=name)


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by ``handle`` from where it stands (at most ``size`` bytes of it),
    as one readable stream."""

    def __init__(self, prefix: bytes, handle: BinaryIO, size: int | None = None) -> None:
        self._prefix = prefix
        self._handle = handle
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            taken = min(len(buffer), len(self._prefix))
            buffer[:taken] = self._prefix[:taken]
            self._prefix = self._prefix[taken:]
            return taken
        if self._left is None:
            return self._handle.readinto(buffer)  # type: ignore[attr-defined, no-any-return]
        count: int = self._handle.readinto(memoryview(buffer)[: self._left])  # type: ignore[attr-defined]
        self._left -= count
        return count


def _check_strict(part: IngestReport, report: IngestReport, name: str, offset: int) -> None:
    """Under ``--strict`` the first skipped record of a part is the error, as in one process."""
    if report.strict and part.skipped:
        first = part.messages[0] if part.messages else f"{name}:: skipped: malformed record"
        where, _, reason = first.partition(": skipped: ")
        number = where[len(name) + 1 :]
        line = int(number) + offset if number.isdigit() else None
        raise InputError(reason, source=name, line=line, hint="without --strict it is skipped")
