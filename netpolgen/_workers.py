"""How netpolgen's worker processes start, and starting them early.

Workers are forked from a fork server that has imported the readers (and pandas) once, so that
each starts at once instead of importing them again (~0.4 s of CPU per worker). The server's
own start costs that import once (~0.5 s); :func:`prestart` begins it while the command is still
importing the pipeline, for an input the Hubble reader will cut into parts, so that on a
machine of two cores the two imports run side by side instead of one after the other.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
from collections.abc import Iterable

# A Hubble file is read by workers from two of its reader's byte chunks on
# (netpolgen.ingest.hubble.CHUNK_BYTES, 64 MiB; tests/engine/test_prestart.py keeps them equal).
HUBBLE_PARALLEL_BYTES = 2 * (64 << 20) + 1
_PRELOAD = [
    "netpolgen.engine.local", "netpolgen.engine.parts", "netpolgen.ingest.hubble",
    "netpolgen.ingest.csv", "netpolgen.ingest.aws_vpc",
]  # fmt: skip


def worker_context() -> multiprocessing.context.BaseContext:
    """The start method of netpolgen's worker pools (the fork server where there is one)."""
    # Not fork: the parent may already run Arrow's thread pool, and forking a threaded process
    # can deadlock (Python 3.12 warns, 3.14 no longer forks by default).
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def prestart(sources: Iterable[object], workers: int | None) -> bool:
    """Start the fork server now if one of ``sources`` looks like a Hubble file big enough to
    be read in parts (plain JSON lines of two reader chunks or more) and ``workers`` allows
    more than one; whether it did. A wrong guess costs one idle server, never a wrong result."""
    count = (os.cpu_count() or 1) if workers is None else workers
    if count <= 1 or "forkserver" not in multiprocessing.get_all_start_methods():
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
