"""Line-delimited JSON: decoding, CRI log prefixes, line counts, and whole documents.

Hubble, GCP and Azure logs are JSON, one record per line or one document per file; this module
is the one place that decodes them (orjson when installed, else the standard library), so that
every reader reports a bad line the same way, naming its file and line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any, BinaryIO

import numpy as np

from netpolgen._compat import optional
from netpolgen.errors import InputError

# orjson is an optional speed-up (the ``fast`` extra); the stdlib parser is the fallback.
orjson = optional("orjson")
_loads: Callable[[bytes], Any]
_JSON_ERRORS: tuple[type[Exception], ...]
if orjson is not None:
    _loads = orjson.loads
    _JSON_ERRORS = (orjson.JSONDecodeError, ValueError)
else:  # pragma: no cover - exercised only without the extra
    _loads = json.loads
    # The stdlib parser recurses: a line of 100,000 "[" is a RecursionError, not a crash.
    _JSON_ERRORS = (ValueError, RecursionError)

JSON_ERRORS = _JSON_ERRORS  # what :func:`loads` raises on text that is not JSON

# JSON readers hold one chunk of extracted columns in memory: cap it whatever the caller asks.
MAX_JSON_CHUNK = 100_000

# Container runtimes (CRI: containerd, CRI-O) prefix each log line with
# ``<RFC3339 time> <stdout|stderr> <P|F> `` and split lines longer than 16 KiB into partial (P)
# pieces ended by a full (F) one: https://github.com/kubernetes/design-proposals-archive
# (node/kubelet-cri-logging.md).
_CRI_PREFIX = re.compile(rb"^\d{4}-\d\d-\d\dT\S+ (?:stdout|stderr) ([PF]) ")


# The longest record joined from CRI partial (``P``) pieces, each at most 16 KiB in practice.
MAX_JOINED_BYTES = 1 << 20


class JSONLineError(Exception):
    """A line that is not valid JSON (internal: readers turn it into a skipped record)."""


def loads(data: bytes | str) -> Any:
    """Parse JSON with orjson when installed, else the standard library."""
    if isinstance(data, str):
        data = data.encode()
    return _loads(data)


class LineCount:
    """How many lines :func:`iter_json_lines` read, set when it finishes."""

    lines = 0


_BOM = b"\xef\xbb\xbf"


class _Cut:
    """The marker :func:`iter_json_lines` yields at a byte-chunk boundary."""


CUT = _Cut()


class _Handled:
    """What a ``fast`` callback of :func:`iter_json_lines` returns for a line it consumed."""


# The callback kept the line's record itself: nothing is yielded for the line (the reader's hot
# path: no tuple and no generator step per line).
HANDLED = _Handled()
# The same, and the callback's batch is full: ``(line_number, HANDLED_FULL)`` is yielded.
HANDLED_FULL = _Handled()


# Block mode (the ``block`` callback of :func:`iter_json_lines`) reads this many bytes at a time,
# then on to the end of the line: about 500 Hubble lines decoded in one call.
BLOCK_BYTES = 1 << 20
_NEWLINE, _OPEN_BRACE = ord("\n"), ord("{")

Answers = Iterator[tuple[int, Any]]
"""What a ``block`` callback gives for a block it decoded: ``(line_number, answer)`` of its lines
that are not simply kept, in order (see :func:`iter_json_lines`)."""


def iter_json_lines(
    stream: BinaryIO,
    fast: Callable[[bytes, int], Any | None] | None = None,
    chunk_bytes: int | None = None,
    lines: LineCount | None = None,
    block: Callable[[bytes, int, int], Answers | None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank JSON line of ``stream``.

    ``fast``, when given, is tried first on each line that starts with ``{`` (so not a CRI
    piece), with its number and its line end: a reader's specialised decoder, whose non-None
    answer is yielded instead of the parsed JSON; :data:`HANDLED` means it kept the record
    itself (nothing is yielded), :data:`HANDLED_FULL` the same with its batch full (yielded).
    ``block``, when given, is tried first on each block of lines (:data:`BLOCK_BYTES`) that
    are all objects in ASCII text (no blank line, no CRI piece), with the number of its first
    line and its number of lines: it decodes them in one call and answers None (decline: the
    lines are read one by one) or a generator of ``(line_number, answer)`` for the lines of the
    block it did not simply keep, in order; an answer is what ``fast`` would say of the line
    (None: the line is parsed here as JSON). The generator is run as the values are consumed,
    so that a reader keeps its records in line order.
    ``chunk_bytes``, when given, cuts the input into byte chunks that end at line ends:
    ``(line_number, CUT)`` follows the line holding byte ``start + chunk_bytes`` of each chunk
    (blank lines included), which is where :mod:`netpolgen.engine.local` cuts a file into
    parts, so that a reader can give the same chunks in one process and in several.
    ``lines``, when given, receives the number of lines read (blank ones included).

    CRI log prefixes are removed and partial (``P``) lines are joined; a Docker ``json-file`` log
    wrapper (``{"log": "...", "stream": ...}``) is unwrapped. A line that is not JSON yields
    ``(line_number, JSONLineError)`` so the caller can count and skip it in order.
    """
    parser = _LineParser(fast)
    if block is not None:
        number = yield from _block_lines(stream, parser, block, chunk_bytes)
    else:
        number = yield from _each_line(stream, parser, chunk_bytes)
    if lines is not None:
        lines.lines = number
    if parser.pending or parser.overflow:
        yield parser.pending_line, JSONLineError()


def _each_line(
    stream: BinaryIO, parser: _LineParser, chunk_bytes: int | None
) -> Generator[tuple[int, Any], None, int]:
    """:func:`iter_json_lines` line by line; returns the number of lines."""
    consumed = 0
    boundary = chunk_bytes if chunk_bytes is not None else -1
    cut_due = False  # the previous line held the boundary: cut before anything from this one
    number = 0
    line = parser.line
    for number, raw in enumerate(stream, 1):
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]  # a UTF-8 byte-order mark (Windows editors) is no JSON
        if cut_due:
            yield number - 1, CUT
            cut_due = False
        if chunk_bytes is not None:
            consumed += len(raw)
            if consumed > boundary:
                boundary, cut_due = consumed + chunk_bytes, True
        item = line(raw, number)
        if item is not None:
            yield item
    return number


def _block_lines(
    stream: BinaryIO,
    parser: _LineParser,
    block: Callable[[bytes, int, int], Answers | None],
    chunk_bytes: int | None,
) -> Generator[tuple[int, Any], None, int]:
    """:func:`iter_json_lines` a block at a time; returns the number of lines.

    The cuts fall where :func:`_each_line` makes them: after the line holding the boundary byte.
    """
    consumed = 0
    boundary = chunk_bytes if chunk_bytes is not None else -1
    cut_due = False
    number = 0
    for data in _blocks(stream):
        if number == 0 and data.startswith(_BOM):
            data = data[len(_BOM) :]
        while data:
            if chunk_bytes is not None and consumed + len(data) > boundary:
                end = data.find(b"\n", boundary - consumed) + 1 or len(data)
                piece, data = data[:end], data[end:]
                consumed += end
                boundary, cut_after = consumed + chunk_bytes, True
            else:
                piece, data = data, b""
                consumed += len(piece)
                cut_after = False
            if cut_due:
                yield number, CUT
            cut_due = cut_after
            # Every line an object (so no blank line, no CRI piece) and the text ASCII: the block
            # may be decoded at once. Line starts are found on the bytes as an array (a C loop,
            # not a scan per pattern: bytes.count of two bytes costs six times as much), and only
            # for a block that the cheap tests leave (a CRI log's blocks fail the first byte).
            answers = None
            if not parser.pending and not parser.overflow and piece.startswith(b"{"):
                codes = np.frombuffer(piece, np.uint8)
                newlines = np.flatnonzero(codes == _NEWLINE)
                starts = newlines + 1
                if piece[-1] == _NEWLINE:
                    starts = starts[:-1]
                if bool((codes[starts] == _OPEN_BRACE).all()) and piece.isascii():
                    answers = block(piece, number + 1, len(starts) + 1)
            if answers is None:
                line = parser.line
                for number, raw in enumerate(io.BytesIO(piece), number + 1):  # noqa: B020
                    item = line(raw, number)
                    if item is not None:
                        yield item
                continue
            for line_number, answer in answers:
                if answer is not None:
                    yield line_number, answer
                    continue
                index = line_number - number - 1
                start = int(starts[index - 1]) if index else 0
                end = int(newlines[index]) + 1 if index < len(newlines) else len(piece)
                item = parser.general(piece[start:end], line_number)
                if item is not None:
                    yield item
            number += len(starts) + 1
    return number


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    """``stream`` in blocks of about :data:`BLOCK_BYTES` that end at line ends (but the last)."""
    read, readline = stream.read, stream.readline
    while data := read(BLOCK_BYTES):
        if not data.endswith(b"\n"):
            data += readline()
        yield data


class _LineParser:
    """One line of :func:`iter_json_lines` at a time, with the state that joins CRI pieces."""

    __slots__ = ("fast", "overflow", "pending", "pending_line", "pending_size")

    def __init__(self, fast: Callable[[bytes, int], Any | None] | None) -> None:
        self.fast = fast
        self.pending: list[bytes] = []
        self.pending_line = self.pending_size = 0
        self.overflow = False  # the joined record passed the cap: drop pieces until its last one

    def line(self, raw: bytes, number: int) -> tuple[int, Any] | None:
        """What to yield for line ``number`` (``raw``, with its line end), if anything."""
        fast = self.fast
        if fast is not None and raw.startswith(b"{"):  # (a CRI prefix starts with a digit)
            value = fast(raw, number)
            if value is not None:
                return None if value is HANDLED else (number, value)
        return self.general(raw, number)

    def general(self, raw: bytes, number: int) -> tuple[int, Any] | None:
        """:meth:`line` without the ``fast`` callback: the JSON parser's answer."""
        line = raw.strip()
        if not line:
            return None
        match = _CRI_PREFIX.match(line)
        if match:
            payload = line[match.end() :]
            if match.group(1) == b"P":
                if not self.pending and not self.overflow:
                    self.pending_line = number
                self.pending_size += len(payload)
                if self.pending_size > MAX_JOINED_BYTES:
                    # Endless partial pieces must not be joined in memory: one bad record.
                    self.pending, self.overflow = [], True
                if not self.overflow:
                    self.pending.append(payload)
                return None
            if self.overflow:
                self.overflow, self.pending_size = False, 0
                return self.pending_line, JSONLineError()
            if self.pending:
                payload = b"".join(self.pending) + payload
                number, self.pending, self.pending_size = self.pending_line, [], 0
            line = payload.strip()
            if not line:
                return None
        try:
            value = _loads(line)
        except _JSON_ERRORS:
            return number, JSONLineError()
        if isinstance(value, dict) and "log" in value and "stream" in value:
            try:
                value = _loads(str(value["log"]).encode())
            except _JSON_ERRORS:
                return number, JSONLineError()
        return number, value


def first_json_values(head: bytes, limit: int = 5) -> list[Any]:
    """Parse up to ``limit`` complete JSON lines from ``head`` (for sniffing)."""
    if b"\n" in head.rstrip(b"\n"):
        head = head[: head.rindex(b"\n") + 1]  # the last piece may be cut off by the peek size
    values: list[Any] = []
    for _, value in iter_json_lines(io.BytesIO(head)):
        if isinstance(value, JSONLineError):
            break
        values.append(value)
        if len(values) >= limit:
            break
    return values


def read_json_document(
    stream: BinaryIO, source: str, salvage: Callable[[bytes], Any] | None = None
) -> Any:
    """Parse a whole JSON document (Azure blobs, JSON arrays) with a located error.

    ``salvage(data)``, if given, is tried on a document that does not parse (a blob cut off
    while being written); it returns what it could recover, or None.
    """
    data = stream.read()
    try:
        return _loads(data)
    except _JSON_ERRORS as error:
        recovered = salvage(data) if salvage is not None else None
        if recovered is not None:
            return recovered
        line = getattr(error, "lineno", None)
        if line is None:
            # orjson's message carries "line N column M"; the stdlib error has lineno.
            found = re.search(r"line (\d+)", str(error))
            line = int(found.group(1)) if found else None
        reason = str(error).splitlines()[0]
        deep = "depth" in reason or "recursion" in reason  # orjson's and msgspec's limits
        raise InputError(
            f"not valid JSON ({reason})",
            source=source,
            line=line,
            hint="no flow log nests so deeply: this is not one"
            if deep
            else "a blob still being written is cut off; read it again when the hour is over",
        ) from error
