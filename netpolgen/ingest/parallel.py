"""Parallel parsing: large line-based files are cut at newlines and parsed by worker processes.

JSON decoding and text parsing are CPU-bound in Python, so one process uses one core. A plain
(uncompressed) file in a line format is split into byte ranges that end at newlines; each range,
with the file's header line in front where the format has one, is parsed by a worker with the
format's ordinary reader, and the chunks come back *in input order*, so the result is the same as
reading the file in one process. Line numbers in messages are shifted to the whole file's.
Hubble's ranges are its reader's byte chunks, so workers also merge the repeated observations
within their range; only the merging across ranges is left to the parent.

Compressed files, standard input and formats that are not line-based (Parquet, Azure blobs) are
read in the parent process as before. ``workers=1`` turns parallel parsing off.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pandas as pd

from netpolgen.errors import InputError, NetpolgenError
from netpolgen.ingest import (
    DEFAULT_CHUNK_SIZE,
    Source,
    detect_format,
    iter_flows,
    read_checked,
)
from netpolgen.ingest.common import LineCount, connection_keys
from netpolgen.ingest.limits import has_long_line, limit_lines
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.ingest.sources import GZIP_MAGIC, STDIN, open_source, peek

if TYPE_CHECKING:
    from netpolgen.resolve import Resolver

# A container runtime's log prefix (see netpolgen.ingest.common).
_CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) [PF] ")

# Formats whose records are single lines, and whether a header line must lead every part.
# CSV is not listed: Arrow's reader already decodes on every core, and shipping parsed chunks
# between processes cost more than it saved (1M rows: 16 s in parallel, 11 s in one process).
# Hubble's per-line JSON decoding is pure Python work, the case worker processes are for.
LINE_FORMATS: dict[str, bool] = {"hubble": False}
# Parts of about this size: large enough to amortise a task, small enough that a worker's
# parsed chunks (a few times the text) stay well under the memory target.
RANGE_BYTES = 32 << 20
# Below this a file is parsed in the parent: starting workers costs more than it saves.
MIN_PARALLEL_BYTES = 512 << 20


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
    workers = os.cpu_count() or 1 if workers is None else workers
    for source in sources:
        plan = _plan(source, format, workers)
        if isinstance(source, Spooled):
            with source.open() as handle:
                yield from iter_flows([handle], format, report=report, chunk_size=chunk_size)
        elif plan is None:
            yield from iter_flows([source], format, report=report, chunk_size=chunk_size)
        elif plan.format == "hubble":
            yield from _parse_parallel_hubble(plan, report, chunk_size, workers)
        else:
            yield from _parse_parallel(plan, report, chunk_size, workers)


def chunk_reader(
    paths: list[Readable],
    format: str,
    *,
    chunk_size: int,
    workers: int | None,
    resolver: Resolver | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
) -> Callable[[IngestReport], Iterator[pd.DataFrame]]:
    """``read(report)`` for the streaming consumers (``from-flows``, ``verify``): a fresh pass
    over ``paths`` each call (reply inference may need two), resolved through the inventory's
    ``resolver`` when there is one, with ``on_chunk(file, rows)`` for the progress display."""

    def read(attempt: IngestReport) -> Iterator[pd.DataFrame]:
        if resolver is not None:
            resolver.clear()  # a second pass starts over
        # Per source, so that the progress display can name the file being read.
        for path in paths:
            name = str(getattr(path, "name", path))
            for chunk in iter_flows_parallel(
                [path], format, report=attempt, chunk_size=chunk_size, workers=workers
            ):
                if on_chunk is not None:
                    on_chunk(name, len(chunk))
                yield resolver(chunk) if resolver is not None and len(chunk) else chunk

    return read


@dataclass(frozen=True)
class _Plan:
    path: str
    format: str
    header: bytes
    ranges: list[tuple[int, int]]


def _plan(source: Readable, format: str, workers: int) -> _Plan | None:
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
    if fmt not in LINE_FORMATS:
        return None
    if fmt == "hubble" and _CRI_LINE.match(head):
        return None  # a CRI partial line may continue across a cut: read it in one piece
    header = b""
    with path.open("rb") as handle:
        if LINE_FORMATS[fmt]:
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


def _parse_range(
    path: str, format: str, header: bytes, start: int, end: int, chunk_size: int,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> tuple[list[pd.DataFrame], IngestReport, int]:  # fmt: skip
    """Worker: parse bytes ``[start, end)`` of ``path`` (with ``header`` in front)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    report = IngestReport(max_line_bytes=max_line_bytes)
    stream = io.BufferedReader(io.BytesIO(header + data))
    # The same guards as a sequential read (line limit, names and labels checked).
    chunks = list(read_checked(stream, path, format, stream.peek(65536), report, chunk_size, False))
    return chunks, report, data.count(b"\n")


def _parse_parallel(
    plan: _Plan, report: IngestReport, chunk_size: int, workers: int
) -> Iterator[pd.DataFrame]:
    # A part with a header in front counts the header as its line 1.
    lines_before = 1 if plan.header else 0
    shift = -1 if plan.header else 0
    name = str(plan.path)
    report.files.append(name)
    report.formats[name] = plan.format
    part = (plan.path, plan.format, plan.header)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context()) as pool:
        pending: deque[Future[Any]] = deque()
        ranges = iter(plan.ranges)
        # One part per worker in flight, plus one ready: bounded memory, busy workers.
        for start, end in ranges:
            pending.append(
                pool.submit(_parse_range, *part, start, end, chunk_size, report.max_line_bytes)
            )
            if len(pending) >= workers + 1:
                break
        while pending:
            try:
                chunks, part_report, lines = pending.popleft().result()
            except NetpolgenError as error:
                if error.source == name and error.line is not None:
                    error.line += lines_before + shift
                raise
            nxt = next(ranges, None)
            if nxt is not None:
                pending.append(
                    pool.submit(_parse_range, *part, *nxt, chunk_size, report.max_line_bytes)
                )
            _check_strict(part_report, report, name, lines_before + shift)
            report.merge(part_report, line_offset=lines_before + shift, source=name)
            lines_before += lines
            yield from chunks


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
                chunks, part_report, lines, part_lost = futures.popleft().result()
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


def _context() -> multiprocessing.context.BaseContext:
    # Not fork: the parent may already run Arrow's thread pool, and forking a threaded process
    # can deadlock (Python 3.12 warns, 3.14 no longer forks by default).
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # The server imports the readers (and pandas) once; workers forked from it start at once
    # instead of each importing them again (~0.4 s of CPU per worker).
    context.set_forkserver_preload(["netpolgen.ingest.parallel", "netpolgen.ingest.hubble"])
    return context


def _check_strict(part: IngestReport, report: IngestReport, name: str, offset: int) -> None:
    """Under ``--strict`` the first skipped record of a part is the error, as in one process."""
    if report.strict and part.skipped:
        first = part.messages[0] if part.messages else f"{name}:: skipped: malformed record"
        where, _, reason = first.partition(": skipped: ")
        number = where[len(name) + 1 :]
        line = int(number) + offset if number.isdigit() else None
        raise InputError(reason, source=name, line=line, hint="without --strict it is skipped")
