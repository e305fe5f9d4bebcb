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

For CSV the limiter also records where the blank lines are (:class:`LineMap`): pandas and pyarrow
skip them without counting them, so a row's position among the parsed rows is not its line.
"""

from __future__ import annotations

import codecs
import io
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from netpolgen.errors import InputError
from netpolgen.ingest.report import IngestReport

PARQUET_MAGIC = b"PAR1"
_BLOCK = 1 << 20
_BOM = b"\xef\xbb\xbf"
_NEWLINE, _RETURN, _SPACE, _TAB, _QUOTE = 10, 13, 32, 9, 34


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


class LineMap:
    """The physical line numbers of a file whose reader skips blank lines without counting them.

    The CSV parsers (pandas, pyarrow) drop empty and whitespace-only lines, so the k-th row they
    return is not on line k + 1. The limiter, which sees every line on the way, records each
    run of blank lines here (lines it blanked out for being too long included), and
    :meth:`physical` turns a position among the non-blank lines back into a line number.

    Only runs are kept, and the reader calls :meth:`forget` as it moves on, so memory stays
    bounded by what the parser reads ahead, however many blank lines the file has. A file
    without blank lines records nothing, and a look-up is then one addition.

    The CSV reader parses on a thread of its own while rows are checked, so the limiter adds
    runs on one thread while the rows' lines are looked up on another: a lock keeps them apart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Runs of blank lines not yet folded into _folded: first line number, length. Kept as
        # the arrays each region added (ascending), concatenated only when looked up.
        self._starts: list[npt.NDArray[np.int64]] = []
        self._lengths: list[npt.NDArray[np.int64]] = []
        self._folded = 0  # blank lines before every line still to be looked up

    def add(self, numbers: npt.NDArray[np.int64]) -> None:
        """Record blank lines (ascending line numbers, after every one recorded before)."""
        if not len(numbers):
            return
        breaks = np.flatnonzero(np.diff(numbers) != 1) + 1
        firsts = np.concatenate(([0], breaks))
        with self._lock:
            self._starts.append(numbers[firsts])
            self._lengths.append(np.diff(np.concatenate((firsts, [len(numbers)]))))

    def physical(self, ordinal: int) -> int:
        """The 1-based line number of the ``ordinal``-th (1-based) non-blank line."""
        with self._lock:
            if not self._starts:
                return ordinal + self._folded
            _, _, ends, runs = self._runs_before(ordinal)
            return ordinal + self._folded + (int(ends[runs - 1]) if runs else 0)

    def forget(self, ordinal: int) -> None:
        """The reader will look up no line before the ``ordinal``-th non-blank one: fold the
        runs in front of it into a count."""
        with self._lock:
            if not self._starts:
                return
            starts, lengths, ends, runs = self._runs_before(ordinal)
            if runs:
                self._folded += int(ends[runs - 1])
                self._starts, self._lengths = [starts[runs:]], [lengths[runs:]]

    def _runs_before(
        self, ordinal: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
        """The runs (starts, lengths), the unfolded blank lines up to the end of each run, and
        how many runs come before the ``ordinal``-th non-blank line (call with the lock held)."""
        starts = np.concatenate(self._starts) if len(self._starts) > 1 else self._starts[0]
        lengths = np.concatenate(self._lengths) if len(self._lengths) > 1 else self._lengths[0]
        self._starts, self._lengths = [starts], [lengths]
        ends = np.cumsum(lengths)
        # The non-blank lines in front of each run; a run is before the line we look for if
        # fewer than ``ordinal`` of them are.
        before = starts - 1 - self._folded - (ends - lengths)
        return starts, lengths, ends, int(np.searchsorted(before, ordinal, side="left"))


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
        line_map: if given, every blank line passed on (empty, or only spaces, tabs and a
            carriage return; a long line blanked out too) is recorded in it.
    """

    def __init__(
        self,
        inner: Any,
        limit: int,
        on_long: Callable[[int], None],
        on_long_header: Callable[[], None] | None = None,
        on_bad_text: Callable[[int, int], None] | None = None,
        line_map: LineMap | None = None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._limit = max(1, limit)
        self._on_long = on_long
        self._on_long_header = on_long_header
        self._on_bad_text = on_bad_text
        self.line_map = line_map
        # _buf[:_ready] is checked and waits for the reader; the rest is not checked yet and
        # starts line number _line. One buffer, so that bytes are copied once on the way.
        self._buf = bytearray()
        self._ready = 0
        self._line = 1
        self._discarding = False  # inside a long line, looking for its newline
        self._in_quotes = False  # (CSV, with a line map) the checked text ends inside quotes
        self._eof = False
        self._held: list[int] | None = None  # long lines held back (see hold_long_lines)
        self._held_lock = threading.Lock()

    def hold_long_lines(self) -> None:
        """From now on, hold long lines back until :meth:`release_long_lines` instead of
        calling ``on_long`` as they are found (a long header line still raises at once).

        For a reader that parses on another thread, ahead of the rows being checked: ``on_long``
        then runs on the checking thread, in file order with the rows' own messages (chunk by
        chunk), however far the parsing thread has got.
        """
        self._held = []

    def release_long_lines(self, before: int | None = None) -> None:
        """Call ``on_long`` for the held long lines numbered below ``before`` (all if None)."""
        with self._held_lock:
            if not self._held:
                return
            cut = len(self._held) if before is None else int(np.searchsorted(self._held, before))
            released, self._held = self._held[:cut], self._held[cut:]
        for line in released:
            self._on_long(line)

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
        if self._held is not None:
            with self._held_lock:
                self._held.append(line)  # found in file order: the list stays sorted
            return
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
        if self.line_map is None:
            self._line += _count_newlines(self._buf, start, end)
        else:
            self._line += self._record_blank_lines(self.line_map, start, end)
        self._ready = end

    def _record_blank_lines(self, line_map: LineMap, start: int, end: int) -> int:
        """Record the blank lines of ``_buf[start:end]`` (whole lines) and count its newlines.

        One vectorised pass finds the newlines, which counting them would cost anyway; only
        lines that start with a space, tab or carriage return take a second look.
        """
        data = np.frombuffer(self._buf, np.uint8, end - start, start)
        try:
            newlines = np.flatnonzero(data == _NEWLINE)
            # Each line's first byte and its end: its newline, or the end of the file (a region
            # ends inside a line only there).
            stops = newlines if data[-1] == _NEWLINE else np.append(newlines, len(data))
            firsts = np.concatenate(([0], newlines[: len(stops) - 1] + 1))
            if self._line == 1 and len(firsts) and data[: len(_BOM)].tobytes() == _BOM:
                firsts[0] = len(_BOM)  # both parsers drop the byte-order mark first
            # An empty line's first byte is its newline (a lone byte-order mark has none).
            lead = data[np.minimum(firsts, len(data) - 1)]
            blank = firsts == stops
            maybe = ~blank & ((lead == _RETURN) | (lead == _SPACE) | (lead == _TAB))
            if maybe.any():
                # Whitespace-only lines, which pandas skips as well (pyarrow rejects them).
                ink = np.concatenate(
                    ([0], np.cumsum(~np.isin(data, (_RETURN, _SPACE, _TAB, _NEWLINE))))
                )
                blank |= maybe & (ink[stops] == ink[firsts])
            quotes = np.flatnonzero(data == _QUOTE)
            if len(quotes) or self._in_quotes:
                # A quoted cell may hold line breaks (RFC 4180, 2.6): a line that starts inside
                # one continues the record before it and is no record's first line, so it is
                # recorded like a blank one. The quote parity at a line's start counts the
                # quotes before it (an escaped "" counts twice, changing nothing).
                before = np.searchsorted(quotes, firsts) + int(self._in_quotes)
                blank |= (before % 2).astype(bool)
                self._in_quotes = bool((len(quotes) + int(self._in_quotes)) % 2)
            line_map.add(self._line + np.flatnonzero(blank).astype(np.int64))
            return len(newlines)
        finally:
            del data  # a live view would keep _buf from being resized


def _count_newlines(buffer: bytearray, start: int, end: int) -> int:
    """``buffer.count(b"\\n", start, end)`` by numpy, three times faster and without holding
    the interpreter lock (the limiter runs on a reading thread beside the parsing one)."""
    data = np.frombuffer(buffer, np.uint8, end - start, start)
    try:
        return int(np.count_nonzero(data == _NEWLINE))
    finally:
        del data  # a live view would keep the buffer from being resized


def has_long_line(data: bytes, limit: int) -> bool:
    """Whether a line of ``data`` (held whole in memory) is longer than ``limit`` bytes.

    The same jump as :meth:`LineLimiter._scan`: O(len / limit) calls into C, so a part of a file
    without long lines can be read without the limiter.
    """
    return long_line_in(lambda offset, size: data[offset : offset + size], 0, len(data), limit)


def long_line_in(read: Callable[[int, int], bytes], start: int, end: int, limit: int) -> bool:
    """:func:`has_long_line` of bytes ``[start, end)`` that ``read(offset, size)`` gives (a
    file through ``os.pread``, or bytes in memory): from each line start, the next line end
    must lie within ``limit`` bytes. Only the end of each window is read first (a line end is
    almost always in its last 64 KiB), the whole window where it is not."""
    limit = max(1, limit)
    pos = start
    while end - pos > limit:
        window_end = pos + limit + 1
        tail_start = max(pos, window_end - (64 << 10))
        block = read(tail_start, window_end - tail_start)
        newline = block.rfind(b"\n")
        if newline < 0 and tail_start > pos:
            tail_start = pos
            block = read(pos, window_end - pos)
            newline = block.rfind(b"\n")
        if newline < 0:
            # No line end in the window: a long line, or the data ends here (a file cut
            # shorter since the caller measured it; its read then ends short too).
            return len(block) == window_end - tail_start
        pos = tail_start + newline + 1
    return False


def limit_lines(
    stream: BinaryIO, source: str, report: IngestReport, *, header: bool = False
) -> BinaryIO:
    """Wrap ``stream`` so that lines over ``report.max_line_bytes`` are skipped and counted.

    ``header``: line 1 is a header the reader needs (CSV), so a long line 1 is an error, and
    the text must be UTF-8. The reader parses rows, not lines, so the blank lines are recorded
    for it in a :class:`LineMap` (see :func:`line_map`).
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
        LineMap() if header else None,
    )  # fmt: skip
    return io.BufferedReader(limiter, buffer_size=_BLOCK)


def line_limiter(stream: BinaryIO) -> LineLimiter | None:
    """The :class:`LineLimiter` behind a stream from :func:`limit_lines`, else None."""
    raw = getattr(stream, "raw", None)
    return raw if isinstance(raw, LineLimiter) else None
