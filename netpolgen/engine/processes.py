"""Worker processes: how they start, and what a dead one means."""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from netpolgen._workers import worker_context
from netpolgen.errors import NetpolgenError

__all__ = ["outcome", "worker_context"]


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
