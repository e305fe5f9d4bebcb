"""How netpolgen's worker processes start, and starting them early.

On Linux a worker is forked from the command's own process when that process has a single
thread: it starts at once with everything the parent imported (pandas, the readers), and shares
those pages with it. Forking a process that runs other threads (Arrow's thread pool, a read-ahead
thread) can leave a lock held forever in the child, so then, and on other systems, workers are
forked from a fork server that has imported the readers (and pandas) once, so that each starts
at once instead of importing them again (~0.4 s of CPU per worker). The server's own start costs
that import once (~0.5 s); :func:`prestart` begins it while the command is still importing the
pipeline, for an input the Hubble reader will cut into parts, so that on a machine of two cores
the two imports run side by side instead of one after the other.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.context
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

# A Hubble file is read by workers from two of its reader's byte chunks on
# (netpolgen.ingest.hubble.CHUNK_BYTES, 64 MiB; tests/engine/test_prestart.py keeps them equal).
HUBBLE_PARALLEL_BYTES = 2 * (64 << 20) + 1
# Whether this process is the command line's (keep_forkable), not a library caller's.
_command_line = False
_PRELOAD = [
    "netpolgen.engine.local", "netpolgen.engine.parts", "netpolgen.ingest.hubble",
    "netpolgen.ingest.csv", "netpolgen.ingest.aws_vpc",
]  # fmt: skip


def worker_context(server: bool = True) -> multiprocessing.context.BaseContext:
    """The start method of netpolgen's worker processes: a fork of this process where that is
    safe (:func:`forking_is_safe`), else the fork server where there is one (``server``; a
    single worker process is spawned instead: no server left holding memory beside it), else
    spawning."""
    if forking_is_safe():
        return fork_context()
    # Not fork: the parent may already run Arrow's thread pool, and forking a threaded process
    # can deadlock (Python 3.12 warns, 3.14 no longer forks by default).
    if not server or "forkserver" not in _start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def forking_is_safe() -> bool:
    """Whether this process may fork its workers: on Linux, while it runs a single thread
    (counted by the kernel, so Arrow's native threads count too; a lock held by another thread
    at the fork would stay held in the child for ever)."""
    if not _forks_workers():
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def fork_context() -> multiprocessing.context.BaseContext:
    """The fork context (multiprocessing writes out the standard streams' buffers before each
    fork, so a child never prints them again).

    In the command line's process the objects that exist by then (the imported modules, most
    of them) are frozen first, as Python's ``gc.freeze`` documentation advises before a fork:
    the collector then never walks them again, in this process or in the children (measured:
    ~5% of a 200k-line Hubble run). They live until the command ends anyway; a library caller
    (a notebook) keeps its collector as it was."""
    if _command_line:
        gc.freeze()
    return multiprocessing.get_context("fork")


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the pipeline's modules load (``netpolgen``'s lazy
    attributes): importing pandas and the readers makes ~100,000 objects, none of them garbage,
    and the collector walked them some twenty times, once all of them (measured: ~30 ms of the
    command's start, collecting nothing). In the command line's process what exists then is
    frozen, as before a fork (:func:`fork_context`); a library caller's collector is only
    paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _command_line:
            gc.freeze()
        if enabled:
            gc.enable()


def _start_methods() -> list[str]:
    return multiprocessing.get_all_start_methods()


def prestart(sources: Iterable[object], workers: int | None) -> bool:
    """Start the fork server now if one of ``sources`` looks like a Hubble file big enough to
    be read in parts (plain JSON lines of two reader chunks or more), ``workers`` allows more
    than one, and this system's workers are not forked from this process (Linux); whether it
    did. A wrong guess costs one idle server, never a wrong result."""
    count = (os.cpu_count() or 1) if workers is None else workers
    if count <= 1 or "forkserver" not in _start_methods() or _forks_workers():
        return False
    for source in sources:
        if not isinstance(source, str | os.PathLike) or str(source) == "-":
            continue
        try:
            if os.path.getsize(source) < HUBBLE_PARALLEL_BYTES:
                continue
            with open(source, "rb") as handle:
                first = handle.read(1)
        except OSError:
            continue  # a directory, a glob, a missing file: the readers say what it is
        if first == b"{":
            worker_context()
            from multiprocessing import forkserver

            forkserver.ensure_running()
            return True
    return False


def _forks_workers() -> bool:
    """Whether workers will be forked from this process (:func:`forking_is_safe` on Linux):
    then a fork server started early would only compete with this process's imports."""
    return sys.platform.startswith("linux") and "fork" in _start_methods()


# Native libraries that start idle threads as they load, and the setting that keeps each from
# doing so: OpenBLAS (NumPy's; netpolgen does no linear algebra worth a thread pool) and the
# purging thread of Arrow's jemalloc (freed pages are then returned by the threads that free
# them, jemalloc's default). Without these threads the command's process stays single-threaded
# until it reads, and forking its workers stays safe (forking_is_safe).
_SINGLE_THREADED_LIBRARIES = {
    "OPENBLAS_NUM_THREADS": "1",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
}


def keep_forkable() -> None:
    """Keep the native libraries from starting threads when they load (the command line calls
    this first, before NumPy is imported); a setting the user made stays theirs. Marks this
    process as the command line's (see :func:`fork_context`)."""
    global _command_line
    _command_line = True
    for name, value in _SINGLE_THREADED_LIBRARIES.items():
        os.environ.setdefault(name, value)
