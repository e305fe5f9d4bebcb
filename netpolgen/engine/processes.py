"""Worker processes: how they start, and what a dead one means."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from netpolgen.errors import NetpolgenError


def outcome(future: Future[Any], name: str) -> Any:
    """A worker's result; a worker that died (killed for memory, most likely) is an error that
    says so, not an internal error."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        raise NetpolgenError(
            f"a worker process parsing {name} stopped unexpectedly ({error})",
            hint="the machine may be out of memory: rerun with --workers 1",
        ) from error


def worker_context() -> multiprocessing.context.BaseContext:
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
            "netpolgen.engine.local", "netpolgen.engine.parts", "netpolgen.ingest.hubble",
            "netpolgen.ingest.csv", "netpolgen.ingest.aws_vpc",
        ]
    )  # fmt: skip
    return context
