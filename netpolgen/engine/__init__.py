"""Engines: where flows are read and reduced. The one place that dispatches on ``engine``.

``pandas`` reads in this process (with worker processes for big files, :mod:`.local`);
``dask`` reads each file in a task of its own on a Dask cluster (:mod:`.dask`), the scheduler
at ``scheduler`` or a local one. Every command (``from-flows`` through
:func:`netpolgen.generate_from_files`, ``verify``, ``inspect``) asks this module for its flows,
so the engines cannot drift apart command by command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd

from netpolgen.engine.local import STREAM_CHUNK_SIZE, chunk_reader, spooled
from netpolgen.errors import NetpolgenError
from netpolgen.ingest import DEFAULT_CHUNK_SIZE, Source, combine_chunks, load_flows
from netpolgen.ingest.collapse import denials_across_files
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sources import expand_directories

if TYPE_CHECKING:
    from netpolgen.resolve import Resolver

ENGINES = ("pandas", "dask")

ChunkRead = Callable[[IngestReport], Iterator[pd.DataFrame]]
"""``read(report)``: one pass over the flows, chunk by chunk (a second call reads again)."""


def check_engine(engine: str, scheduler: str | None) -> None:
    """Refuse an unknown engine, and a scheduler the pandas engine would silently ignore."""
    if engine not in ENGINES:
        raise NetpolgenError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if scheduler is not None and engine != "dask":
        raise NetpolgenError("a scheduler is only used by the Dask engine: add --engine dask")


@contextmanager
def open_chunks(
    sources: Sequence[Source],
    format: str,
    *,
    engine: str = "pandas",
    scheduler: str | None = None,
    workers: int | None = 1,
    resolver: Resolver | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
    chunk_size: int | None = None,
) -> Iterator[ChunkRead]:
    """The flows of ``sources`` as ``read(report)`` (resolved through ``resolver``), on the
    engine asked for; standard input is spooled so that it can be read twice."""
    check_engine(engine, scheduler)
    size = STREAM_CHUNK_SIZE if chunk_size is None else chunk_size
    if engine == "dask":
        from netpolgen.engine.dask import dask_chunk_reader

        with dask_chunk_reader(
            [str(source) for source in sources], format, resolver=resolver, on_chunk=on_chunk,
            scheduler=scheduler, chunk_size=size,
        ) as read:  # fmt: skip
            yield read
        return
    # A directory is the files under it; with several files, a first pass collects the denied
    # connections, so that each file's records of them are judged as denied too (a connection
    # refused at one end's NIC is denied, whatever the other end's log says).
    with spooled(expand_directories(sources)) as paths:
        read = chunk_reader(
            paths, format, chunk_size=size, workers=workers, resolver=resolver, on_chunk=on_chunk
        )
        if len(paths) > 1:
            read = denials_across_files(
                read, chunk_reader(paths, format, chunk_size=size, workers=workers)
            )
        yield read


def load_flow_table(
    sources: Sequence[Source],
    format: str,
    report: IngestReport,
    *,
    engine: str = "pandas",
    scheduler: str | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
) -> pd.DataFrame:
    """Every flow of ``sources`` in one table (``inspect`` and notebooks), on either engine."""
    check_engine(engine, scheduler)
    if engine == "dask":
        with open_chunks(sources, format, engine=engine, scheduler=scheduler,
                         on_chunk=on_chunk, chunk_size=DEFAULT_CHUNK_SIZE) as read:  # fmt: skip
            return combine_chunks(list(read(report)))
    return load_flows(sources, format, report=report, on_chunk=on_chunk)
