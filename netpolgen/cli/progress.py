"""Progress and verbosity for the command line: one place, so every command behaves alike.

* ``-q/--quiet`` and ``-v/--verbose`` mean the same on every command (:func:`verbosity_options`).
* A progress bar goes to standard error only when standard error is a terminal and the command
  is not quiet; redirected to a file or a pipe (CI, scripts) nothing is drawn, so logs stay clean.
* Standard output is never touched: policies and reports go there, progress never does.

The library knows nothing of this: it takes an ``on_chunk(source, rows)`` callback
(``netpolgen.load_flows``), and :class:`IngestProgress` is such a callback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import IO, Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def verbosity_options(command: F) -> F:
    """Add ``-q/--quiet`` and ``-v/--verbose`` to a click command (``quiet``, ``verbose``).

    ``verbose`` is a count (``-vv`` is 2); ``quiet`` wins over it.
    """
    command = click.option(
        "-v", "--verbose", count=True, help="Say more on standard error (repeatable)."
    )(command)
    command = click.option(
        "-q", "--quiet", is_flag=True, help="Print no progress, summary or warnings."
    )(command)
    return command


def show_progress(quiet: bool, stream: IO[str] | None = None) -> bool:
    """Whether to draw a progress bar: not quiet, and standard error is a terminal."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return not quiet and callable(isatty) and bool(isatty())


class IngestProgress:
    """A progress bar over the flow files being read; an ``on_chunk`` callback for ingest.

    Use it as a context manager around the library call::

        with IngestProgress(files, enabled=show_progress(quiet)) as on_chunk:
            result = netpolgen.generate_from_files(files, options, on_chunk=on_chunk)

    When disabled it only counts (no output), so callers need no second code path.
    """

    def __init__(self, sources: Sequence[str], *, enabled: bool, label: str = "reading") -> None:
        self.sources = list(sources)
        self.enabled = enabled
        self.label = label
        self.records = 0
        self._current: str | None = None
        self._done_files = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> IngestProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("files · {task.fields[records]:,} flows"),
                TimeElapsedColumn(),
                console=Console(file=sys.stderr),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(
                self.label, total=len(self.sources) or None, records=0
            )
        return self

    def __call__(self, source: str, rows: int) -> None:
        """Record that ``rows`` more records were read from ``source``."""
        if self._current is not None and source != self._current:
            self._done_files += 1
        self._current = source
        self.records += rows
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=self._done_files,
                description=f"{self.label} {source}",
                records=self.records,
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.sources))
            self._progress.stop()
            self._progress = None
