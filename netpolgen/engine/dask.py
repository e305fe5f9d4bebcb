"""The Dask engine: read and reduce many flow files on a Dask cluster, same result as pandas.

Each file is a task that streams its chunks (memory per worker stays bounded) and reduces them
with the same functions as the pandas engine (:mod:`netpolgen.reduce.stream`). Only reply inference
needs to see across files (:mod:`netpolgen.reduce.direction`: the counts of connections per end
and the earliest record of each 5-tuple, *in the whole input*). So the run has up to two rounds:

1. every file reports its row count, the earliest ``(time, position)`` of each 5-tuple it holds,
   whether it has records without a direction, and its reduction computed as if none had;
2. only if some file has such records: the per-file 5-tuple tables are merged (file order gives
   global positions), scattered to the workers, and the files are reduced again against them.

The partial results (edges, first endpoints, pods, reports) are small (distinct keys) and are
combined on the client in file order, exactly as chunks are combined in one process.

``verify`` and ``inspect`` read through :func:`dask_chunk_reader` instead: the files are parsed
on the cluster, a task each, and their chunks checked or summarised on the client in file order,
by the same code as the pandas engine.

Inputs are paths, globs or anything fsspec opens (``s3://bucket/logs/*.gz``). dask and distributed
are the optional ``dask`` extra; they are imported only when this engine is used.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._compat import require
from netpolgen._kernels import NAT
from netpolgen.cluster.inventory import load_inventory
from netpolgen.errors import NetpolgenError
from netpolgen.ingest import DEFAULT_CHUNK_SIZE, iter_flows
from netpolgen.ingest.collapse import DeniedConnections
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.reduce.direction import DirectionTracker, RecordsOnly
from netpolgen.reduce.edges import (
    EdgeOptions,
    combine_edges,
    finish_edges,
    finish_endpoints,
    tuple_identity,
)
from netpolgen.reduce.pods import finish_pod_endpoints
from netpolgen.reduce.stream import FlowReducer
from netpolgen.reduce.summary import time_window
from netpolgen.resolve import Resolver

_TUPLE = ["a", "a_port", "b", "b_port", "protocol"]


def _require_dask() -> tuple[Any, Any]:
    require("dask", "the Dask engine")
    return require("distributed", "the Dask engine"), require("fsspec", "the Dask engine")


@contextmanager
def dask_client(scheduler: str | None = None, client: Any = None) -> Iterator[Any]:
    """``client`` if given; else a client of the scheduler at ``scheduler``, or of a new
    ``LocalCluster`` with one process per core, closed on the way out."""
    distributed, _ = _require_dask()
    if client is not None:
        yield client
        return
    if scheduler:
        own = distributed.Client(scheduler)
    else:
        own = distributed.Client(distributed.LocalCluster(processes=True, dashboard_address=None))
    try:
        yield own
    finally:
        cluster = getattr(own, "cluster", None)
        own.close()
        if cluster is not None:
            cluster.close()


def _in_order(
    futures: list[Any], names: list[str], on_chunk: Callable[[str, int], None] | None
) -> list[FilePartial]:
    """The tasks' results in file order, each reported to ``on_chunk`` as it is taken."""
    results = []
    for name, future in zip(names, futures, strict=True):
        partial: FilePartial = future.result()
        if on_chunk is not None:
            on_chunk(name, partial.rows)
        results.append(partial)
    return results


def _read_file(
    opened: Any, name: str, format: str, strict: bool, max_line_bytes: int, chunk_size: int
) -> tuple[list[pd.DataFrame], IngestReport]:
    """Worker task: one file's flow chunks, and its accounting."""
    report = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    with opened as stream:
        source = _named(stream, name)
        chunks = list(iter_flows([source], format, report=report, chunk_size=chunk_size))
    return chunks, report


@contextmanager
def dask_chunk_reader(
    inputs: Iterable[str],
    format: str = "auto",
    *,
    resolver: Resolver | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
    scheduler: str | None = None,
    client: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[Callable[[IngestReport], Iterator[pd.DataFrame]]]:
    """``read(report)`` as :func:`netpolgen.engine.local.chunk_reader` gives it (a fresh
    pass over the inputs each call, chunks resolved through ``resolver``, accounting into
    ``report``), with the files read on a Dask cluster: one task per file, all submitted at
    once, their chunks taken in file order (so the result is the pandas engine's) and let go
    as they are used. ``verify`` and ``inspect`` read this way; ``from-flows`` reduces on the
    workers too (:func:`generate_dask`).
    """
    files = named_inputs(inputs)
    with dask_client(scheduler, client) as active:
        denied: DeniedConnections | None = None

        def read(attempt: IngestReport) -> Iterator[pd.DataFrame]:
            nonlocal denied
            if resolver is not None:
                resolver.clear()  # a second pass starts over
            if denied is None and len(files) > 1:
                # As the pandas engine's open_chunks: a connection denied at one end's NIC is
                # denied in every file (netpolgen.ingest.collapse.denials_across_files).
                denied = _denied_connections(
                    active, files, format, chunk_size, attempt.max_line_bytes
                )
            futures = [
                active.submit(_read_file, opened, name, format, attempt.strict,
                              attempt.max_line_bytes, chunk_size, pure=False)
                for name, opened in files
            ]  # fmt: skip
            taken = 0
            try:
                for (name, _), future in zip(files, futures, strict=True):
                    chunks, report = future.result()
                    future.release()
                    taken += 1
                    attempt.merge(report)
                    for chunk in chunks:
                        if on_chunk is not None:
                            on_chunk(name, len(chunk))
                        if resolver is not None and len(chunk):
                            chunk = resolver(chunk)
                        yield denied.apply(chunk, attempt) if denied is not None else chunk
            finally:
                for future in futures[taken:]:
                    future.cancel()  # stopped early (an error, --strict): nothing more is wanted
            if denied is not None:
                attempt.messages.extend(denied.messages())

        yield read


def named_inputs(inputs: Iterable[str]) -> list[tuple[str, Any]]:
    """fsspec ``OpenFile`` objects for paths, globs and URLs, in the order given (globs sorted),
    each with the name it goes by in reports: the input as given when it names one file (as the
    pandas engine names it), else the path a glob found."""
    _, fsspec = _require_dask()
    files: list[tuple[str, Any]] = []
    for text in inputs:
        opened = fsspec.open_files(text, mode="rb")
        if not opened:
            raise NetpolgenError("no such file (or the glob matches nothing)", hint=text)
        if len(opened) == 1 and not any(magic in text for magic in "*?["):
            files.append((text, opened[0]))
            continue
        for found in sorted(opened, key=lambda f: f.path):
            local = "file" in _protocols(found.fs)
            files.append((found.path if local else found.full_name, found))
    return files


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _named(stream: Any, name: str | None) -> Any:
    """``stream``, named ``name`` for the reader's reports where the file object allows it."""
    if name is not None:
        try:
            stream.name = name
        except AttributeError:  # pragma: no cover - a file system whose files have a fixed name
            pass
    return stream


def _tuples(flows: pd.DataFrame, offset: int) -> pd.DataFrame:
    """Earliest (time, position) of each 5-tuple in a chunk (rows with both ports), and the
    time span of its denied records when they are windowed (``d_lo > d_hi``: none)."""
    ported = flows["src_port"].notna() & flows["dst_port"].notna()
    part = flows[ported]
    t = part["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    denied = (part["verdict"] == "denied").fillna(False).to_numpy(dtype=bool, copy=True)
    denied &= time_window(flows) > 0
    frame = pd.DataFrame(
        {
            "a": tuple_identity(part, "src").astype(object),
            "a_port": part["src_port"].astype("int64"),
            "b": tuple_identity(part, "dst").astype(object),
            "b_port": part["dst_port"].astype("int64"),
            "protocol": part["protocol"].astype("string").fillna("\x00").astype(object),
            "t": t,
            "o": np.flatnonzero(ported.to_numpy()) + offset,
            "d_lo": np.where(denied & (t != NAT), t, _NO_SPAN[0]),
            "d_hi": np.where(denied, t, _NO_SPAN[1]),
        }
    )
    return _earliest(frame)


_NO_SPAN = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)


def _earliest(frame: pd.DataFrame) -> pd.DataFrame:
    first = frame.sort_values(["t", "o"], kind="stable").drop_duplicates(_TUPLE)
    if not (frame["d_lo"] <= frame["d_hi"]).any():
        return first
    spans = frame.groupby(_TUPLE, sort=False).agg(d_lo=("d_lo", "min"), d_hi=("d_hi", "max"))
    return first.drop(columns=["d_lo", "d_hi"]).merge(spans.reset_index(), on=_TUPLE)


@dataclass
class FilePartial:
    """What one file reduces to on a worker."""

    rows: int
    tuples: pd.DataFrame | None
    has_unknown: bool
    edges: pd.DataFrame
    src_first: pd.DataFrame
    dst_first: pd.DataFrame
    pods: pd.DataFrame
    inside: set[str]
    report: IngestReport
    notes: Any  # the resolver's (unmatched, untranslated, first, last), with an inventory


def _denied_in_file(
    opened: Any, format: str, chunk_size: int, max_line_bytes: int, name: str | None = None
) -> DeniedConnections:
    """Worker task: the denied connections of one file (verdicts across files, see
    :func:`netpolgen.ingest.collapse.denials_across_files`)."""
    found = DeniedConnections()
    report = IngestReport(max_line_bytes=max_line_bytes)
    with opened as stream:
        for chunk in iter_flows([_named(stream, name)], format, report=report,
                                chunk_size=chunk_size):  # fmt: skip
            found.collect(chunk)
    return found


def _denied_connections(
    client: Any, files: list[tuple[str, Any]], format: str, chunk_size: int, max_line_bytes: int
) -> DeniedConnections:
    """The denied connections of every file, each file's gathered in a task of its own."""
    found = DeniedConnections()
    tasks = [
        client.submit(_denied_in_file, f, format, chunk_size, max_line_bytes, name, pure=False)
        for name, f in files
    ]
    for part in client.gather(tasks):
        found.absorb(part)
    return found


def _reduce_file(
    opened: Any,
    format: str,
    options: EdgeOptions,
    strict: bool,
    chunk_size: int,
    offset: int,
    earliest: pd.DataFrame | None,
    resolver: Any = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    name: str | None = None,
    denied: DeniedConnections | None = None,
) -> FilePartial:
    """Worker task: stream one file and reduce it (round 1 if ``earliest`` is None, else 2);
    ``denied``: the whole input's denied connections, which judge this file's records."""
    report = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    if resolver is not None:  # the worker's shared copy keeps the tables; the notes are ours
        resolver = copy.copy(resolver)
        resolver.clear()
    # Round 1: the records' own word; round 2: the one direction inference, against the whole
    # input's earliest 5-tuples (netpolgen.reduce.direction).
    tracker: Any = RecordsOnly() if earliest is None else DirectionTracker.from_tuples(earliest)
    reducer = FlowReducer(options, report, tracker, start=offset)
    tables: list[pd.DataFrame] = []
    rows = 0
    with opened as stream:
        source = _named(stream, name)
        for read in iter_flows([source], format, report=report, chunk_size=chunk_size):
            if denied is not None:
                read = denied.apply(read, report)
            chunk = resolver(read) if resolver is not None and len(read) else read
            if earliest is None:
                tables.append(_tuples(chunk, rows))
                if sum(len(t) for t in tables) > 200_000:
                    tables = [_earliest(pd.concat(tables, ignore_index=True))]
            reducer.add(chunk)
            rows += len(chunk)
    partial = reducer.partial()
    return FilePartial(
        rows=rows,
        tuples=_earliest(pd.concat(tables, ignore_index=True)) if tables else None,
        has_unknown=bool(getattr(tracker, "unknown", False)),
        edges=partial.edges,
        src_first=partial.src_first,
        dst_first=partial.dst_first,
        pods=partial.pods,
        inside=partial.inside,
        report=report,
        notes=(resolver.unmatched, resolver.untranslated, resolver.first, resolver.last)
        if resolver is not None
        else None,
    )


def generate_dask(
    inputs: Iterable[str],
    options: Any = None,
    *,
    format: str = "auto",
    strict: bool = False,
    scheduler: str | None = None,
    client: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    inventory: Sequence[str | Path] = (),
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_chunk: Callable[[str, int], None] | None = None,
) -> Any:
    """:func:`netpolgen.generate_from_files` on a Dask cluster (identical result).

    Args:
        inputs: paths, globs or fsspec URLs.
        options: :class:`netpolgen.GenerateOptions`.
        scheduler: a scheduler address; default a ``LocalCluster`` with one process per core.
        client: an existing ``distributed.Client`` (tests, notebooks); wins over ``scheduler``.
        inventory: inventory snapshots (read here, shipped to the workers once).
        max_line_bytes: longer lines are skipped and counted (line-based formats).
        on_chunk: called as ``on_chunk(file, records)`` as each file's task is taken, in file
            order (progress; a second round is reported again).
    """
    from netpolgen.policy.from_reduction import GenerateOptions, synthesize_reduction

    options = options or GenerateOptions()
    files = named_inputs(inputs)
    resolver = Resolver(load_inventory(inventory)) if inventory else None
    edge_options = options.edge_options(resolver.inventory if resolver is not None else None)
    with dask_client(scheduler, client) as client:
        shipped = client.scatter(resolver, broadcast=True) if resolver is not None else None
        denied: Any = None
        if len(files) > 1:  # as generate_from_files: denied at either end is denied
            found = _denied_connections(client, files, format, chunk_size, max_line_bytes)
            denied = client.scatter(found, broadcast=True)
        first = _in_order(
            [
                client.submit(_reduce_file, f, format, edge_options, strict, chunk_size, 0, None,
                              shipped, pure=False, max_line_bytes=max_line_bytes, name=name,
                              denied=denied)
                for name, f in files
            ],
            [name for name, _ in files],
            on_chunk,
        )  # fmt: skip
        partials = first
        if any(p.has_unknown for p in first):
            offsets = np.concatenate([[0], np.cumsum([p.rows for p in first])[:-1]]).tolist()
            tables = []
            for partial, offset in zip(first, offsets, strict=True):
                if partial.tuples is not None and len(partial.tuples):
                    tables.append(partial.tuples.assign(o=partial.tuples["o"] + offset))
            earliest = _earliest(pd.concat(tables, ignore_index=True)) if tables else None
            scattered = client.scatter(earliest, broadcast=True) if earliest is not None else None
            partials = _in_order(
                [
                    client.submit(_reduce_file, f, format, edge_options, strict, chunk_size,
                                  offset, scattered, shipped, pure=False,
                                  max_line_bytes=max_line_bytes, name=name, denied=denied)
                    for (name, f), offset in zip(files, offsets, strict=True)
                ],
                [name for name, _ in files],
                on_chunk,
            )  # fmt: skip
    report = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    for partial in partials:
        report.merge(partial.report)
    if resolver is not None:
        resolver.clear()
        for partial in partials:
            unmatched, untranslated, first, last = partial.notes
            resolver.unmatched |= unmatched
            resolver.untranslated += untranslated
            if first is not None:
                resolver.first = first if resolver.first is None else min(resolver.first, first)
                resolver.last = last if resolver.last is None else max(resolver.last, last)
        resolver.report_to(report)
    edges = finish_edges(combine_edges([p.edges for p in partials]), edge_options, report)
    src_first = pd.concat([p.src_first for p in partials]).drop_duplicates("endpoint")
    dst_first = pd.concat([p.dst_first for p in partials]).drop_duplicates("endpoint")
    endpoints = finish_endpoints(src_first, dst_first)
    pods = finish_pod_endpoints(pd.concat([p.pods for p in partials], ignore_index=True))
    inside: set[str] = set().union(*(p.inside for p in partials)) if partials else set()
    return synthesize_reduction(
        edges, endpoints, pods, inside, options, report,
        resolver.inventory if resolver is not None else None,
    )  # fmt: skip
