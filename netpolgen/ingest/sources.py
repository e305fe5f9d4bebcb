"""Opening flow sources: paths, ``-`` for standard input, and gzip detected by content."""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from netpolgen.errors import InputError, NetpolgenError
from netpolgen.ingest.report import IngestReport

GZIP_MAGIC = b"\x1f\x8b"
# A zip archive's first local header (or the end record of an empty one, or a spanned one's
# marker): PKWARE's APPNOTE.TXT, 4.3.7, 4.3.16 and 8.5.3.
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
UTF8_BOM = b"\xef\xbb\xbf"
STDIN = "-"

# Decompression bombs: gzip expands up to ~1,000x (a file of zeros), while real flow logs and
# kubectl JSON expand 10-20x (measured on the bundled samples). Once 64 MiB have come out, a
# stream that has expanded more than MAX_GZIP_RATIO times what it read is refused, having held
# no more than one read block of its output at a time.
MAX_GZIP_RATIO = 200
RATIO_CHECK_AFTER = 64 << 20


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


class _Counting(io.RawIOBase):
    """A stream that counts the bytes read through it (the compressed side of a gzip stream)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class CheckedGzip(io.RawIOBase):
    """A gzip stream whose truncation, corruption or bomb-like expansion is an error.

    Args:
        raw: the compressed stream.
        name: how the input is named in messages.
        error: the error class to raise (:class:`InputError` for flows; the inventory reader
            passes its own).
    """

    def __init__(self, raw: Any, name: str, error: type[NetpolgenError] = InputError) -> None:
        self._compressed = _Counting(raw)
        self._gz = gzip.GzipFile(fileobj=self._compressed, mode="rb")
        self._name = name
        self._error = error
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            count = self._gz.readinto(buffer)
        except (EOFError, OSError, zlib.error) as error:
            raise self._error(
                f"compressed input is truncated or corrupt ({error})", source=self._name
            ) from error
        self._out += count
        if self._out > RATIO_CHECK_AFTER and self._out > MAX_GZIP_RATIO * self._compressed.count:
            raise self._error(
                f"decompresses to more than {MAX_GZIP_RATIO} times its compressed size "
                f"({self._out >> 20} MiB from {self._compressed.count >> 10} KiB so far): "
                "refused as a likely decompression bomb",
                source=self._name,
                hint="if the data is real, decompress it first (gunzip -k) and pass that file",
            )
        return count

    def close(self) -> None:
        self._gz.close()
        super().close()


class _UpToStartSize(io.RawIOBase):
    """A regular file read up to the size it had when it was opened.

    A log that is still being written (``hubble observe -o json > flows.jsonl`` in another
    terminal) grows while it is read: reading on would chase its end, and a run would not be
    repeatable. A file that shrinks under the reader (truncated, rotated by ``copytruncate``)
    would otherwise end early in silence: that is an error naming it.
    """

    def __init__(self, raw: Any, name: str) -> None:
        self._raw = raw
        self._name = name
        self.size = os.fstat(raw.fileno()).st_size
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        left = self.size - self._position
        if left <= 0:
            return 0
        count = self._raw.readinto(memoryview(buffer)[: min(len(buffer), left)])
        if not count:
            raise InputError(
                f"file shrank while it was read ({self.size} bytes at the start, "
                f"{self._position} read): truncated or rotated under the reader",
                source=self._name,
            )
        self._position += count
        return int(count)

    def seekable(self) -> bool:
        return True  # Parquet is read with random access

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:  # the end is the size at the start
            offset, whence = self.size + offset, io.SEEK_SET
        self._position = self._raw.seek(offset, whence)
        return self._position

    def tell(self) -> int:
        return self._position

    def grown(self) -> int:
        """Bytes added to the file since it was opened (not read)."""
        return max(0, os.fstat(self._raw.fileno()).st_size - self.size)

    def close(self) -> None:
        self._raw.close()
        super().close()


@contextmanager
def open_source(
    source: str | Path | BinaryIO, report: IngestReport | None = None
) -> Iterator[tuple[BinaryIO, str]]:
    """Open a flow source for binary reading, decompressing gzip transparently.

    Yields ``(stream, name)``. ``source`` may be a path, ``-`` (standard input) or an open binary
    file. Gzip is recognised by its magic bytes, not by the file name. A regular file is read
    up to the size it had when opened; that it grew meanwhile is said in ``report``'s messages.
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
        raw = path.open("rb", buffering=0)
    except FileNotFoundError as error:
        raise InputError("no such file", source=name) from error
    except OSError as error:
        raise InputError(f"cannot open: {error.strerror}", source=name) from error
    if not path.is_file():  # a FIFO or a device: no size to stop at
        with io.BufferedReader(raw, buffer_size=1 << 20) as handle:
            yield _maybe_gunzip(handle, name), name
        return
    bounded = _UpToStartSize(raw, name)
    with io.BufferedReader(bounded, buffer_size=1 << 20) as handle:
        yield _maybe_gunzip(handle, name), name
        grown = bounded.grown()
        if grown and report is not None:
            report.messages.append(
                f"{name}: grew by {grown} bytes while it was read; read up to its size at the "
                f"start ({bounded.size} bytes)"
            )


def _buffered(stream: BinaryIO) -> io.BufferedReader:
    # Always our own 1 MiB buffer: sniffing peeks at the head, and stdin's buffer is only 8 KiB.
    return io.BufferedReader(stream, buffer_size=1 << 20)  # type: ignore[arg-type]


def refuse_zip(head: bytes, name: str, error: type[NetpolgenError] = InputError) -> None:
    """A zip archive is refused, not read: it holds many files (which are the input?) and no
    provider writes flow logs as zip; refusing it also takes zip bombs off the table."""
    if head[:4] in ZIP_MAGICS:
        raise error(
            "is a zip archive; netpolgen reads plain text and gzip files", source=name,
            hint="extract it first (unzip) and give its files, or the folder they are in",
        )  # fmt: skip


def _maybe_gunzip(stream: Any, name: str) -> Any:
    refuse_zip(stream.peek(4)[:4], name)
    if stream.peek(2)[:2] == GZIP_MAGIC:
        stream = io.BufferedReader(CheckedGzip(stream, name), buffer_size=1 << 20)
    if stream.peek(3)[:3] == UTF8_BOM:
        # A UTF-8 byte-order mark (Windows tools write one) is not part of any format: every
        # reader sees the text after it, on line 1 still.
        stream.read(3)
    return stream


def peek(stream: BinaryIO, size: int = 65536) -> bytes:
    """The first bytes of a buffered stream, without consuming them."""
    return stream.peek(size)[:size]  # type: ignore[attr-defined,no-any-return]
