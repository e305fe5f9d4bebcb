"""Parallel parsing: large line-based files are cut at newlines and parsed by worker processes.

JSON decoding and text parsing are CPU-bound in Python, so one process uses one core. A plain
(uncompressed) file in a line format is split into byte ranges that end at newlines, parsed by
workers, and the results come back *in input order*, so the result is the same as reading the
file in one process. Line numbers in messages are shifted to the whole file's.

* Hubble (by default): the ranges are its reader's byte chunks; workers read them and merge the
  repeated observations within a range, and only the merging across ranges is left to the parent.
* CSV (``from-flows`` with a number of workers given): each range, with the header line in front,
  is parsed, resolved through the inventory and reduced to a :class:`ChunkSummary` per chunk
  (:mod:`netpolgen.summary`), and a range that was not cut between records is read again in the
  parent (:func:`plain_quotes`).
* AWS VPC (by default): not cut at all, since the merging of records that two ENIs logged
  depends on where chunks end. One worker process reads the whole file exactly as the parent
  would, and hands over its chunks in order while the parent resolves and reduces the previous
  ones: a pipeline of two stages, with the same chunks and report as one process.

Compressed files, standard input and other formats are read in the parent process.
``workers=1`` turns parallel parsing off.
"""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.context
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen.allocator import tune_allocator
from netpolgen.errors import InputError, NetpolgenError
from netpolgen.ingest import (
    DEFAULT_CHUNK_SIZE,
    Source,
    detect_format,
    iter_flows,
)
from netpolgen.ingest.common import LineCount, connection_keys
from netpolgen.ingest.limits import has_long_line, limit_lines
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.ingest.sources import GZIP_MAGIC, STDIN, open_source, peek
from netpolgen.summary import ChunkSummary, summarize_chunk

if TYPE_CHECKING:
    from netpolgen.resolve import Resolver

# A container runtime's log prefix (see netpolgen.ingest.common).
_CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) [PF] ")

# Formats whose parsed chunks workers send back as they are. Hubble's per-line JSON decoding is
# pure Python work, the case worker processes are for. CSV is not listed: shipping its parsed
# chunks between processes cost more than it saved (1M rows: 16 s in parallel, 11 s in one).
LINE_FORMATS = frozenset({"hubble"})
# Formats whose parts workers parse and summarise (netpolgen.summary) for from-flows, and
# whether a header line must lead every part: a chunk's summary is a few integers a row, and
# the main process is left with only the reply inference and the reduction on integers.
SUMMARY_FORMATS: dict[str, bool] = {"csv": True}
# Parts of about this size: large enough to amortise a task, small enough that a worker's
# parsed chunks (a few times the text) stay well under the memory target.
RANGE_BYTES = 32 << 20
# Below this a file is parsed in the parent: starting workers costs more than it saves.
MIN_PARALLEL_BYTES = 512 << 20
# Formats read whole by one worker process, a pipeline stage ahead of the parent (see above).
PIPELINE_FORMATS = frozenset({"aws-vpc"})
# Chunks waiting between the two stages: enough to absorb uneven chunks, few for memory.
_PIPELINE_DEPTH = 2


class _NamedReader(io.RawIOBase):
    """A spooled copy of standard input that still calls itself ``<stdin>`` in messages."""

    def __init__(self, path: Path, name: str) -> None:
        self._file = path.open("rb", buffering=0)
        self.name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._file.readinto(buffer)

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass(frozen=True)
class Spooled:
    """A source copied to a temporary file so that it can be read more than once."""

    path: Path
    name: str

    def open(self) -> BinaryIO:
        return io.BufferedReader(_NamedReader(self.path, self.name), buffer_size=1 << 20)


Readable = str | Path | Spooled


@contextmanager
def spooled(sources: Iterable[Source]) -> Iterator[list[Readable]]:
    """Paths as they are; standard input and open files copied to temporary files.

    Streaming reply inference may read the input twice (:mod:`netpolgen.stream`), which a pipe
    cannot do; the copy is written as it is read and removed afterwards.
    """
    paths: list[Readable] = []
    with tempfile.TemporaryDirectory(prefix="netpolgen-") as directory:
        for number, source in enumerate(sources):
            if isinstance(source, str | Path) and str(source) != STDIN:
                paths.append(source)
                continue
            target = Path(directory) / f"input-{number}"
            with open_source_raw(source) as (stream, name), target.open("wb") as out:
                shutil.copyfileobj(stream, out, 1 << 20)
            paths.append(Spooled(target, name))
        yield paths


@contextmanager
def open_source_raw(source: Source) -> Iterator[tuple[BinaryIO, str]]:
    """Standard input or an open file, without decompression (the copy stays compressed)."""
    import sys

    if isinstance(source, str | Path):
        yield sys.stdin.buffer, "<stdin>"
    else:
        yield source, str(getattr(source, "name", "<stream>"))


def iter_flows_parallel(
    sources: Iterable[Readable],
    format: str = "auto",
    *,
    report: IngestReport,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Like :func:`netpolgen.ingest.iter_flows`, parsing big line-based files in ``workers``.

    Chunks come in input order; the report is the same as a sequential read's, except that the
    first few messages per skip reason may name other lines.
    """
    for item in _iter_items(sources, format, report, chunk_size, workers, None, False):
        assert isinstance(item, pd.DataFrame)
        yield item


def _iter_items(
    sources: Iterable[Readable],
    format: str,
    report: IngestReport,
    chunk_size: int,
    workers: int | None,
    resolver: Resolver | None,
    summarize: bool,
) -> Iterator[pd.DataFrame | ChunkSummary]:
    """Chunks of ``sources``, resolved through ``resolver``; with ``summarize`` and a number
    of ``workers`` given (not None: one per core), the formats that have a summarising worker
    (:data:`SUMMARY_FORMATS`) give :class:`ChunkSummary` items built in worker processes, which
    only :class:`netpolgen.stream.FlowReducer` consumes."""
    # CSV parts cost a worker ~300 MB (wide rows, parsed by pandas): they are used only when
    # the caller asked for a number of workers, never by default (the memory target).
    summarize = summarize and workers is not None
    workers = os.cpu_count() or 1 if workers is None else workers
    for source in sources:
        if _pipelined(source, format, workers):
            assert isinstance(source, str | Path)
            chunks = _read_in_worker(str(source), format, report, chunk_size)
            yield from _resolved(chunks, resolver)
            continue
        plan = _plan(source, format, workers, summarize)
        if isinstance(source, Spooled):
            with source.open() as handle:
                chunks = iter_flows([handle], format, report=report, chunk_size=chunk_size)
                yield from _resolved(chunks, resolver)
        elif plan is None:
            chunks = iter_flows([source], format, report=report, chunk_size=chunk_size)
            yield from _resolved(chunks, resolver)
        elif plan.format == "hubble":
            chunks = _parse_parallel_hubble(plan, report, chunk_size, workers)
            yield from _resolved(chunks, resolver)
        else:  # a summary format (_plan gives no other)
            yield from _parse_parallel_summaries(plan, report, chunk_size, workers, resolver)


def _resolved(chunks: Iterable[pd.DataFrame], resolver: Resolver | None) -> Iterator[pd.DataFrame]:
    for chunk in chunks:
        yield resolver(chunk) if resolver is not None and len(chunk) else chunk


def chunk_reader(
    paths: list[Readable],
    format: str,
    *,
    chunk_size: int,
    workers: int | None,
    resolver: Resolver | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
    summarize: bool = False,
) -> Callable[[IngestReport], Iterator[Any]]:
    """``read(report)`` for the streaming consumers (``from-flows``, ``verify``): a fresh pass
    over ``paths`` each call (reply inference may need two), resolved through the inventory's
    ``resolver`` when there is one, with ``on_chunk(file, rows)`` for the progress display.

    With ``summarize`` (``from-flows``), chunks parsed in worker processes come as
    :class:`~netpolgen.summary.ChunkSummary` items, the rest as flow tables.
    """

    def read(attempt: IngestReport) -> Iterator[Any]:
        if resolver is not None:
            resolver.clear()  # a second pass starts over
        # Per source, so that the progress display can name the file being read.
        for path in paths:
            name = str(getattr(path, "name", path))
            for item in _iter_items(
                [path], format, attempt, chunk_size, workers, resolver, summarize
            ):
                if on_chunk is not None:
                    on_chunk(name, item.rows if isinstance(item, ChunkSummary) else len(item))
                yield item

    return read


def _pipelined(source: Readable, format: str, workers: int) -> bool:
    """Whether ``source`` is a big file (compressed or not) of a :data:`PIPELINE_FORMATS`
    format: the worker reads it with the very code this process would."""
    if workers <= 1 or isinstance(source, Spooled) or not isinstance(source, str | Path):
        return False
    path = Path(source)
    try:
        if not path.is_file() or path.stat().st_size < MIN_PARALLEL_BYTES:
            return False
    except OSError:
        return False  # the sequential reader reports the error
    if format != "auto":
        return format in PIPELINE_FORMATS
    with open_source(path) as (stream, name):
        return detect_format(peek(stream), name) in PIPELINE_FORMATS


def _read_in_worker(
    path: str, format: str, report: IngestReport, chunk_size: int
) -> Iterator[pd.DataFrame]:
    """The chunks of ``path``, read by one worker process as :func:`iter_flows` reads them in
    this one (same chunks, same report), while the caller works on the chunks before."""
    # Spawned, not from the fork server: one process, whose start costs what starting the
    # server would (importing pandas), and no server process left holding memory beside it.
    context: Any = multiprocessing.get_context("spawn")
    handover: Any = context.Queue(maxsize=_PIPELINE_DEPTH)
    worker = context.Process(
        target=_read_whole_file,
        args=(path, format, chunk_size, report.strict, report.max_line_bytes, handover),
        name="netpolgen-reader",
        daemon=True,
    )
    worker.start()
    try:
        while True:
            kind, payload = _next_handover(handover, worker, path)
            if kind == "chunk":
                yield payload
                continue
            if kind == "crash":  # a bug in the worker: its trace, for the crash report
                raise RuntimeError(f"the reader process failed:\n{payload}")
            error, worker_report = payload if kind == "error" else (None, payload)
            report.merge(worker_report)
            if error is not None:
                raise error
            return
    finally:
        if worker.is_alive():
            worker.terminate()  # the caller stopped early: nothing more is wanted
        worker.join()
        handover.close()


def _next_handover(handover: Any, worker: Any, path: str) -> tuple[str, Any]:
    import queue

    while True:
        try:
            item: tuple[str, Any] = handover.get(timeout=0.5)
            return item
        except queue.Empty:
            if not worker.is_alive():
                raise NetpolgenError(
                    f"the worker process reading {path} stopped unexpectedly "
                    f"(exit code {worker.exitcode})",
                    hint="the machine may be out of memory: rerun with --workers 1",
                ) from None


def _read_whole_file(
    path: str, format: str, chunk_size: int, strict: bool, max_line_bytes: int, handover: Any
) -> None:
    """Worker process: read ``path`` as the parent would and hand over its chunks in order,
    then the report (or the error that stopped the read, with the report so far)."""
    tune_allocator()
    report = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    try:
        for chunk in iter_flows([path], format, report=report, chunk_size=chunk_size):
            handover.put(("chunk", chunk))
        handover.put(("done", report))
    except NetpolgenError as error:
        handover.put(("error", (error, report)))
    except BaseException:  # noqa: BLE001 - a bug: the parent turns the trace into a crash report
        import traceback

        handover.put(("crash", traceback.format_exc()))


@dataclass(frozen=True)
class _Plan:
    path: str
    format: str
    header: bytes
    ranges: list[tuple[int, int]]


def _plan(source: Readable, format: str, workers: int, summarize: bool = False) -> _Plan | None:
    if workers <= 1 or isinstance(source, Spooled) or not isinstance(source, str | Path):
        return None
    path = Path(source)
    try:
        size = path.stat().st_size
    except OSError:
        return None  # the sequential reader reports the error
    if size < MIN_PARALLEL_BYTES or not path.is_file():
        return None
    with open_source(path) as (stream, name):
        head = peek(stream)
        if head[:2] == GZIP_MAGIC:
            return None
        fmt = format if format != "auto" else detect_format(head, name)
    if fmt not in LINE_FORMATS and not (summarize and fmt in SUMMARY_FORMATS):
        return None
    if fmt == "csv" and not _csv_parts_possible(head):
        return None
    if fmt == "hubble" and _CRI_LINE.match(head):
        return None  # a CRI partial line may continue across a cut: read it in one piece
    header = b""
    with path.open("rb") as handle:
        if SUMMARY_FORMATS.get(fmt, False):
            header = handle.readline()
        start = len(header)
        ranges = []
        step = _hubble_chunk_bytes() if fmt == "hubble" else RANGE_BYTES
        while start < size:
            handle.seek(min(start + step, size))
            _skip_line(handle)  # run on to the end of the line
            end = min(handle.tell(), size)
            if end <= start:
                end = size
            ranges.append((start, end))
            start = end
    return _Plan(str(path), fmt, header, ranges)


def _hubble_chunk_bytes() -> int:
    from netpolgen.ingest import hubble

    return hubble.CHUNK_BYTES


def _skip_line(handle: BinaryIO) -> None:
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
    from netpolgen.ingest import hubble

    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    report = IngestReport(max_line_bytes=max_line_bytes)
    stream: BinaryIO = io.BytesIO(data)
    if has_long_line(data, max_line_bytes):
        stream = limit_lines(io.BufferedReader(io.BytesIO(data)), path, report)
    # The part is one byte chunk already: only row counts cut it further.
    lines = LineCount()
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


def _parse_parallel_hubble(
    plan: _Plan, report: IngestReport, chunk_size: int, workers: int
) -> Iterator[pd.DataFrame]:
    """Hubble with the per-line work and the merging within chunks in workers.

    Parts are the reader's byte chunks (:data:`netpolgen.ingest.hubble.CHUNK_BYTES`), which
    workers cut further every ``chunk_size`` rows, as :func:`netpolgen.ingest.hubble.read`
    does; merging a chunk's observations against the previous chunk's is sequential, here.
    """
    from netpolgen.ingest import hubble
    from netpolgen.ingest.common import SeenConnections
    from netpolgen.ingest.sanitize import sanitize_flows

    name = str(plan.path)
    report.files.append(name)
    report.formats[name] = plan.format
    seen = SeenConnections(hubble.BUCKET)
    lines_before = 0
    lost = 0
    options = (chunk_size, report.max_line_bytes)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        futures: deque[Future[Any]] = deque()
        ranges = iter(plan.ranges)
        for start, end in ranges:
            futures.append(pool.submit(_hubble_range, plan.path, start, end, *options))
            if len(futures) >= workers + 1:
                break
        while futures:
            try:
                chunks, part_report, lines, part_lost = _outcome(futures.popleft(), name)
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
    if lost:
        hubble.report_lost(report, name, lost)


def _csv_parts_possible(head: bytes) -> bool:
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
            _give_back_memory()
    notes = resolver.notes() if resolver is not None else None
    return _PartSummary(summaries, report, lines, plain, error, notes)


def _give_back_memory() -> None:
    """Return freed memory to the system after a part: Arrow's pool keeps what it freed for
    reuse, and so does the C allocator; in a worker that sits beside the main process's state,
    that is memory the whole run holds (measured: ~100 MB a worker)."""
    try:
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    except ImportError:  # pragma: no cover - the fast extra is absent
        pass
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:  # pragma: no cover - no C library to load
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


_LIBC = _load_libc()


def _parse_parallel_summaries(
    plan: _Plan, report: IngestReport, chunk_size: int, workers: int, resolver: Resolver | None
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
        max_workers=workers, mp_context=_context(), initializer=_set_worker_resolver,
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
            part: _PartSummary = _outcome(future, name)
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
    plan: _Plan, start: int, lines_before: int, report: IngestReport, chunk_size: int,
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


def _outcome(future: Future[Any], name: str) -> Any:
    """A worker's result; a worker that died (killed for memory, most likely) is an error that
    says so, not an internal error."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise NetpolgenError(
            f"a worker process parsing {name} stopped unexpectedly ({error})",
            hint="the machine may be out of memory: rerun with --workers 1",
        ) from error


def _context() -> multiprocessing.context.BaseContext:
    # Not fork: the parent may already run Arrow's thread pool, and forking a threaded process
    # can deadlock (Python 3.12 warns, 3.14 no longer forks by default).
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports the readers (and pandas) once; workers forked from it start at once
    # instead of each importing them again (~0.4 s of CPU per worker).
    context.set_forkserver_preload(
        [
            "netpolgen.ingest.parallel", "netpolgen.ingest.hubble", "netpolgen.ingest.csv",
            "netpolgen.ingest.aws_vpc",
        ]
    )  # fmt: skip
    return context


def _check_strict(part: IngestReport, report: IngestReport, name: str, offset: int) -> None:
    """Under ``--strict`` the first skipped record of a part is the error, as in one process."""
    if report.strict and part.skipped:
        first = part.messages[0] if part.messages else f"{name}:: skipped: malformed record"
        where, _, reason = first.partition(": skipped: ")
        number = where[len(name) + 1 :]
        line = int(number) + offset if number.isdigit() else None
        raise InputError(reason, source=name, line=line, hint="without --strict it is skipped")
