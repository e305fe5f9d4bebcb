"""Worker processes: how they start, and what a dead one means."""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
import time
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


# prctl(2) option: the signal this process receives when its parent dies (Linux only).
_PR_SET_PDEATHSIG = 1


def worker_started() -> None:
    """Call first in every worker process: it never outlives its parent, and leaves Ctrl-C to
    the parent.

    A terminal's Ctrl-C reaches the whole process group; the parent alone turns it into one
    message and stops its workers, so a worker ignores SIGINT (else each would print a trace).
    When the parent dies, even by SIGKILL (the out-of-memory killer), the kernel kills the
    worker (``PR_SET_PDEATHSIG``; a fork-server worker's parent is the server, which exits
    when the main process does), and on other systems a watchdog thread sees the parent gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:  # a dead parent's children are given to another process
        time.sleep(1.0)
    os._exit(1)


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
