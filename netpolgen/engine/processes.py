"""Worker processes: how they start, and what a dead one means."""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from netpolgen._workers import worker_context
from netpolgen.errors import NetpolgenError

__all__ = ["outcome", "worker_context", "worker_started"]


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
    When the parent dies, even by SIGKILL (the out-of-memory killer), the worker exits:

    * a watchdog thread waits on multiprocessing's parent sentinel (the end of a pipe whose
      other end only the parent holds; it becomes readable when the parent is gone). This is
      what catches fork-server workers: their process parent is the server, which exits only
      once every worker has, since each holds the server's "alive" pipe open;
    * on Linux, ``PR_SET_PDEATHSIG`` also has the kernel kill a directly spawned worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker forked from the command line has its SIGTERM handler, which turns the signal
    # into "the command was terminated": a worker sent SIGTERM is to end as any process does
    # (the parent then says that a worker stopped).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return  # not started by multiprocessing
    threading.Thread(
        target=_exit_with, args=(parent.sentinel,), name="netpolgen-parent-watch", daemon=True
    ).start()


def _exit_with(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # returns once the parent is gone
    os._exit(1)
