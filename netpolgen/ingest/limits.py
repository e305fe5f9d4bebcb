"""A cap on line length for the line-based readers, enforced before any reader sees the bytes.

One corrupt or hostile line (a log writer that lost its newlines, a binary blob pasted into a
log) must not make netpolgen read hundreds of megabytes into one Python string. :class:`LineLimiter`
sits between the opened file and the reader: it passes lines through unchanged and replaces each
line longer than the limit by an empty line, which every line-based reader ignores (CSV and JSON
lines skip blank lines; AWS text lines without fields are not records). The empty line keeps the
numbering of the lines after it, so messages still name the right line. The long line itself is
counted as read and skipped (with its number), and is an error under ``--strict``.

Memory stays bounded by the limit plus one read block: a long line is discarded block by block
while the limiter looks for its end.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Callable
from typing import Any, BinaryIO

from netpolgen.errors import InputError
from netpolgen.ingest.report import IngestReport

PARQUET_MAGIC = b"PAR1"
_BLOCK = 1 << 20


def is_line_based(fmt: str, head: bytes) -> bool:
    """Whether ``fmt`` reads this content line by line (so that a line limit applies).

    Azure blobs are one JSON document (often one long line), a GCP console download is one JSON
    array, and Parquet is binary: those are read whole by design and are not limited.
    """
    if fmt in ("csv", "hubble"):
        return True
    if fmt == "aws-vpc":
        return head[:4] != PARQUET_MAGIC
    if fmt == "gcp-vpc":
        return head.lstrip()[:1] != b"["
    return False


class LineLimiter(io.RawIOBase):
    """A raw stream that blanks out lines longer than ``limit`` bytes (see the module docstring).

    Args:
        inner: the buffered stream to read from (it must have ``read1``).
        limit: the longest line passed through, in bytes, without its newline.
        on_long: called with the 1-based number of each long line, in order.
        on_long_header: called instead of ``on_long`` when line 1 is too long and the format
            needs that line (a CSV header); it should raise.
        on_bad_text: if given, every line is checked to be UTF-8, and this is called with the
            line number and the first bad byte of the first line that is not (it should
            raise). Lines are checked in blocks at C speed, so the reader's own decoding
            error, which knows no line, is never reached.
    """

    def __init__(
        self,
        inner: Any,
        limit: int,
        on_long: Callable[[int], None],
        on_long_header: Callable[[], None] | None = None,
        on_bad_text: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._limit = max(1, limit)
        self._on_long = on_long
        self._on_long_header = on_long_header
        self._on_bad_text = on_bad_text
        # _buf[:_ready] is checked and waits for the reader; the rest is not checked yet and
        # starts line number _line. One buffer, so that bytes are copied once on the way.
        self._buf = bytearray()
        self._ready = 0
        self._line = 1
        self._discarding = False  # inside a long line, looking for its newline
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._ready and not self._eof:
            self._fill()
        size = min(len(buffer), self._ready)
        memoryview(buffer)[:size] = memoryview(self._buf)[:size]
        del self._buf[:size]  # cheap: CPython's bytearray drops a prefix without moving
        self._ready -= size
        return size

    def _long(self, line: int) -> None:
        if line == 1 and self._on_long_header is not None:
            self._on_long_header()
        self._on_long(line)

    def _fill(self) -> None:
        chunk = self._inner.read1(_BLOCK)
        if self._discarding:
            if not chunk:
                self._long(self._line)  # the file ends inside the long line
                self._eof = True
                return
            newline = chunk.find(b"\n")
            if newline < 0:
                return  # still inside the long line: drop the block
            self._long(self._line)
            self._discarding = False
            chunk = chunk[newline:]  # keep the newline: the long line becomes an empty one
        self._buf += chunk
        self._scan(final=not chunk)
        if not chunk:
            self._eof = True

    def _scan(self, final: bool) -> None:
        buf, limit = self._buf, self._limit
        pos = self._ready
        while len(buf) - pos > limit:
            # Any newline within limit+1 bytes proves that every line up to it is short enough;
            # jumping to the last one makes this O(size / limit) calls into C.
            newline = buf.rfind(b"\n", pos, pos + limit + 1)
            if newline >= 0:
                pos = newline + 1
                continue
            line = self._line + buf.count(b"\n", self._ready, pos)
            end = buf.find(b"\n", pos + limit + 1)
            if end < 0 and final:
                self._long(line)  # the last line, without a newline
                del buf[pos:]
                break
            if end < 0:
                self._emit(pos)
                self._discarding = True
                del buf[pos:]
                return
            self._long(line)
            del buf[pos:end]
        if final:
            pos = len(buf)
        else:
            # What is left is at most ``limit`` long: its complete lines are short enough.
            pos = max(pos, buf.rfind(b"\n", pos) + 1)
        self._emit(pos)

    def _emit(self, end: int) -> None:
        """Mark ``_buf[_ready:end]`` (whole lines) as checked."""
        start = self._ready
        if end <= start:
            return
        if self._on_bad_text is not None:
            # ``end`` is a line boundary (or the end of the file), so no character is split.
            try:
                codecs.utf_8_decode(memoryview(self._buf)[start:end], "strict", True)
            except UnicodeDecodeError as error:
                line = self._line + self._buf.count(b"\n", start, start + error.start)
                self._on_bad_text(line, self._buf[start + error.start])
        self._line += self._buf.count(b"\n", start, end)
        self._ready = end


def has_long_line(data: bytes, limit: int) -> bool:
    """Whether a line of ``data`` (held whole in memory) is longer than ``limit`` bytes.

    The same jump as :meth:`LineLimiter._scan`: O(len / limit) calls into C, so a part of a file
    without long lines can be read without the limiter.
    """
    limit = max(1, limit)
    pos = 0
    while len(data) - pos > limit:
        newline = data.rfind(b"\n", pos, pos + limit + 1)
        if newline < 0:
            return True
        pos = newline + 1
    return False


def limit_lines(
    stream: BinaryIO, source: str, report: IngestReport, *, header: bool = False
) -> BinaryIO:
    """Wrap ``stream`` so that lines over ``report.max_line_bytes`` are skipped and counted.

    ``header``: line 1 is a header the reader needs (CSV), so a long line 1 is an error.
    """
    limit = report.max_line_bytes
    reason = f"line is longer than {limit} bytes (--max-line-bytes)"

    def on_long(line: int) -> None:
        report.records_read += 1
        report.skip(reason, source=source, line=line)

    def on_bad_text(line: int, byte: int) -> None:
        raise InputError(
            f"not UTF-8 text (byte 0x{byte:02x})",
            source=source,
            line=line,
            hint="convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8",
        )

    def on_long_header() -> None:
        raise InputError(
            f"the header line is longer than {limit} bytes",
            source=source,
            line=1,
            hint="this is not a CSV flow file, or raise --max-line-bytes",
        )

    # A CSV file is decoded as a whole by its reader, which cannot say where a bad byte is:
    # check the text here, line by line. (JSON and AWS lines skip such a line themselves.)
    limiter = LineLimiter(
        stream, limit, on_long,
        on_long_header if header else None,
        on_bad_text if header else None,
    )  # fmt: skip
    return io.BufferedReader(limiter, buffer_size=_BLOCK)
