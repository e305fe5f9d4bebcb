"""Opening flow sources: paths, ``-`` for standard input, and gzip detected by content."""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from netpolgen.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


def expand_directories(sources: Iterable[Any]) -> list[Any]:
    """The sources, each directory replaced by the files under it (recursively, in sorted path
    order; hidden files and folders left out), so that a bucket's export read back as it is
    stored is one input: AWS's S3 keys ``AWSLogs/<account>/vpcflowlogs/<region>/<yyyy>/<mm>/<dd>/``
    (zero-padded, so sorted paths are in time order), Azure's blobs ``.../y=/m=/d=/h=/m=00/
    macAddress=<mac>/PT1H.json``. Other sources (files, ``-``, open streams) are kept as given.

    Raises:
        InputError: a directory without a file in it.
    """
    out: list[Any] = []
    for source in sources:
        if not isinstance(source, str | Path) or str(source) == STDIN or not Path(source).is_dir():
            out.append(source)
            continue
        root = Path(source)
        files = sorted(
            path
            for path in root.rglob("*")
            if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)
        )
        if not files:
            raise InputError("directory holds no flow file", source=str(source))
        out.extend(str(path) if isinstance(source, str) else path for path in files)
    return out


def display_name(source: str | Path) -> str:
    """How a source is named in messages."""
    return "<stdin>" if str(source) == STDIN else str(source)


class _CheckedGzip(io.RawIOBase):
    """A gzip stream whose truncation or corruption becomes an :class:`InputError`."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            return self._gz.readinto(buffer)
        except (EOFError, OSError, zlib.error) as error:
            raise InputError(
                f"compressed input is truncated or corrupt ({error})", source=self._name
            ) from error

    def close(self) -> None:
        self._gz.close()
        super().close()


@contextmanager
def open_source(source: str | Path | BinaryIO) -> Iterator[tuple[BinaryIO, str]]:
    """Open a flow source for binary reading, decompressing gzip transparently.

    Yields ``(stream, name)``. ``source`` may be a path, ``-`` (standard input) or an open binary
    file. Gzip is recognised by its magic bytes, not by the file name.
    """
    if not isinstance(source, str | Path):
        name = getattr(source, "name", "<stream>")
        yield _maybe_gunzip(_buffered(source), str(name)), str(name)
        return
    name = display_name(source)
    if str(source) == STDIN:
        yield _maybe_gunzip(_buffered(sys.stdin.buffer), name), name
        return
    path = Path(source)
    if path.is_dir():  # expand_directories makes its files the sources
        raise InputError("is a directory, not a flow file", source=name)
    try:
        handle = path.open("rb", buffering=1 << 20)
    except FileNotFoundError as error:
        raise InputError("no such file", source=name) from error
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror}", source=name) from error
    with handle:
        yield _maybe_gunzip(handle, name), name


def _buffered(stream: BinaryIO) -> io.BufferedReader:
    # Always our own 1 MiB buffer: sniffing peeks at the head, and stdin's buffer is only 8 KiB.
    return io.BufferedReader(stream, buffer_size=1 << 20)  # type: ignore[arg-type]


def _maybe_gunzip(stream: Any, name: str) -> Any:
    if stream.peek(2)[:2] == GZIP_MAGIC:
        return io.BufferedReader(_CheckedGzip(stream, name), buffer_size=1 << 20)
    return stream


def peek(stream: BinaryIO, size: int = 65536) -> bytes:
    """The first bytes of a buffered stream, without consuming them."""
    return stream.peek(size)[:size]  # type: ignore[attr-defined,no-any-return]
