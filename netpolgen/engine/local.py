"""Parallel parsing: large line-based files are cut at newlines and parsed by worker processes.

JSON decoding and text parsing are CPU-bound in Python, so one process uses one core. A plain
(uncompressed) file in a line format is split into byte ranges that end at newlines, parsed by
workers, and the results come back *in input order*, so the result is the same as reading the
file in one process. Line numbers in messages are shifted to the whole file's.

* Hubble (by default, any file of two byte chunks or more): the ranges are its reader's byte
  chunks; workers read them and merge the repeated observations within a range, and only the
  merging across ranges is left to the parent.
* CSV (``from-flows`` with a number of workers given): each range, with the header line in front,
  is parsed, resolved through the inventory and reduced to a :class:`ChunkSummary` per chunk
  (:mod:`netpolgen.reduce.summary`), and a range that was not cut between records is read
  again in the parent (:func:`plain_quotes`).
* AWS VPC (by default, from :data:`PIPELINE_MIN_BYTES` on): not cut at all, since the merging
  of records that two ENIs logged depends on where chunks end. One worker process reads the
  whole file exactly as the parent would, and hands over its chunks in order while the parent
  resolves and reduces the previous ones: a pipeline of two stages, with the same chunks and
  report as one process.

Compressed files, standard input and other formats are read in the parent process.
``workers=1`` turns parallel parsing off.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pandas as pd

from netpolgen._faults import checkpoint
from netpolgen._memory import tune_allocator
from netpolgen.engine.parts import (
    Plan,
    csv_parts_possible,
    hubble_chunk_bytes,
    parse_parallel_hubble,
    parse_parallel_summaries,
    skip_line,
)
from netpolgen.engine.processes import worker_context, worker_started
from netpolgen.errors import NetpolgenError, OutputError
from netpolgen.ingest import DEFAULT_CHUNK_SIZE, Source, detect_format, iter_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sources import GZIP_MAGIC, STDIN, open_source, peek
from netpolgen.reduce.summary import ChunkSummary

if TYPE_CHECKING:
    from netpolgen.resolve import Resolver

# A container runtime's log prefix (see netpolgen.ingest.jsonlines).
_CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) [PF] ")

# Formats whose parsed chunks workers send back as they are. Hubble's per-line JSON decoding is
# pure Python work, the case worker processes are for. CSV is not listed: shipping its parsed
# chunks between processes cost more than it saved (1M rows: 16 s in parallel, 11 s in one).
LINE_FORMATS = frozenset({"hubble"})
# Formats whose parts workers parse and summarise (netpolgen.reduce.summary) for from-flows, and
# whether a header line must lead every part: a chunk's summary is a few integers a row, and
# the main process is left with only the reply inference and the reduction on integers.
SUMMARY_FORMATS: dict[str, bool] = {"csv": True}
# Parts of about this size: large enough to amortise a task, small enough that a worker's
# parsed chunks (a few times the text) stay well under the memory target.
RANGE_BYTES = 32 << 20
# Below this a file is parsed in the parent: starting workers costs more than it saves.
MIN_PARALLEL_BYTES = 512 << 20
# Hubble files are parsed in workers as soon as they have two of its byte chunks
# (hubble.CHUNK_BYTES), not from MIN_PARALLEL_BYTES on: the per-line JSON work is what worker
# processes are for. A part is one chunk, so that one process and several merge the same
# observations (byte-identical results); smaller chunks would cost the parent more per chunk
# (merging and reducing ~500-row chunks) than the workers save (measured: 16 MB chunks, 200k
# real-shaped lines, +1 s of parent CPU).
# Formats read whole by one worker process, a pipeline stage ahead of the parent (see above).
PIPELINE_FORMATS = frozenset({"aws-vpc"})
# Chunks waiting between the two stages: enough to absorb uneven chunks, few for memory.
_PIPELINE_DEPTH = 2
# A pipelined file is read by its worker from this size on (about 600,000 AWS records): the
# worker's start (~1 s of CPU, importing pandas) runs beside the parent's own imports and is won
# back within a few chunks (measured at 3M records, 342 MB: the same CPU time, 11% less wall time
# on a loaded 2-core machine, 700 MB peak instead of 540 MB).
PIPELINE_MIN_BYTES = 64 << 20


# Records per chunk when streaming: large enough for vectorised steps to pay off, small enough
# that a chunk's intermediate columns stay a few hundred MB at most.
STREAM_CHUNK_SIZE = 100_000


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

    Streaming reply inference may read the input twice (:mod:`netpolgen.reduce.stream`),
    which a pipe cannot do; the copy is written as it is read and removed afterwards.
    """
    paths: list[Readable] = []
    with contextlib.ExitStack() as stack:
        directory: Path | None = None  # made only when there is something to copy
        for number, source in enumerate(sources):
            if isinstance(source, str | Path) and str(source) != STDIN:
                paths.append(source)
                continue
            if directory is None:
                directory = Path(stack.enter_context(_spool_directory()))
            target = directory / f"input-{number}"
            with open_source_raw(source) as (stream, name):
                _copy(stream, target, name)
            paths.append(Spooled(target, name))
        yield paths


@contextmanager
def _spool_directory() -> Iterator[str]:
    try:
        made = tempfile.TemporaryDirectory(prefix="netpolgen-")
    except OSError as error:
        raise OutputError(
            f"cannot make a temporary directory to copy standard input into: {error.strerror}",
            source=tempfile.gettempdir(), hint="set TMPDIR to a writable directory",
        ) from error  # fmt: skip
    with made as directory:
        yield directory


def _copy(stream: BinaryIO, target: Path, name: str) -> None:
    """Copy ``stream`` to ``target``; a full or read-only disk is an error naming the copy
    (which the caller's temporary directory then removes with whatever was written)."""
    try:
        out = target.open("wb")
        with out:
            while block := stream.read(1 << 20):
                out.write(block)
                checkpoint("spool.block")
    except OSError as error:
        raise OutputError(
            f"cannot copy {name} to a temporary file: {error.strerror or error}",
            source=str(target), hint="set TMPDIR to a writable disk with space",
        ) from error  # fmt: skip


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
    only :class:`netpolgen.reduce.stream.FlowReducer` consumes."""
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
            chunks = parse_parallel_hubble(plan, report, chunk_size, workers)
            yield from _resolved(chunks, resolver)
        else:  # a summary format (_plan gives no other)
            yield from parse_parallel_summaries(plan, report, chunk_size, workers, resolver)


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
    :class:`~netpolgen.reduce.summary.ChunkSummary` items, the rest as flow tables.
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
        if not path.is_file() or path.stat().st_size < PIPELINE_MIN_BYTES:
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
    # Forked where that is safe (it starts with what this process imported), else spawned,
    # not from the fork server: one process, whose start costs what starting the server would
    # (importing pandas), and no server process left holding memory beside it.
    context: Any = worker_context(server=False)
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
    worker_started()
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


def _plan(source: Readable, format: str, workers: int, summarize: bool = False) -> Plan | None:
    if workers <= 1 or isinstance(source, Spooled) or not isinstance(source, str | Path):
        return None
    path = Path(source)
    try:
        size = path.stat().st_size
    except OSError:
        return None  # the sequential reader reports the error
    hubble_min = hubble_chunk_bytes() + 1  # two parts at least
    if size < min(MIN_PARALLEL_BYTES, hubble_min) or not path.is_file():
        return None
    with open_source(path) as (stream, name):
        head = peek(stream)
        if head[:2] == GZIP_MAGIC:
            return None
        fmt = format if format != "auto" else detect_format(head, name)
    if fmt not in LINE_FORMATS and not (summarize and fmt in SUMMARY_FORMATS):
        return None
    if size < (hubble_min if fmt == "hubble" else MIN_PARALLEL_BYTES):
        return None
    if fmt == "csv" and not csv_parts_possible(head):
        return None
    if fmt == "hubble" and _CRI_LINE.match(head):
        return None  # a CRI partial line may continue across a cut: read it in one piece
    header = b""
    with path.open("rb") as handle:
        if SUMMARY_FORMATS.get(fmt, False):
            header = handle.readline()
        start = len(header)
        ranges = []
        step = hubble_chunk_bytes() if fmt == "hubble" else RANGE_BYTES
        while start < size:
            handle.seek(min(start + step, size))
            skip_line(handle)  # run on to the end of the line
            end = min(handle.tell(), size)
            if end <= start:
                end = size
            ranges.append((start, end))
            start = end
    if fmt == "hubble" and len(ranges) < 2:
        return None  # one chunk: nothing for a second worker to do
    return Plan(str(path), fmt, header, ranges)
