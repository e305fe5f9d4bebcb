"""Line-delimited JSON: decoding, CRI log prefixes, line counts, and whole documents.

Hubble, GCP and Azure logs are JSON, one record per line or one document per file; this module
is the one place that decodes them (orjson when installed, else the standard library), so that
every reader reports a bad line the same way, naming its file and line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

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


def iter_json_lines(
    stream: BinaryIO,
    fast: Callable[[bytes, int], Any | None] | None = None,
    chunk_bytes: int | None = None,
    lines: LineCount | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank JSON line of ``stream``.

    ``fast``, when given, is tried first on each line that starts with ``{`` (so not a CRI
    piece), with its number and its line end: a reader's specialised decoder, whose non-None
    answer is yielded instead of the parsed JSON; :data:`HANDLED` means it kept the record
    itself (nothing is yielded), :data:`HANDLED_FULL` the same with its batch full (yielded).
    ``chunk_bytes``, when given, cuts the input into byte chunks that end at line ends:
    ``(line_number, CUT)`` follows the line holding byte ``start + chunk_bytes`` of each chunk
    (blank lines included), which is where :mod:`netpolgen.engine.local` cuts a file into
    parts, so that a reader can give the same chunks in one process and in several.
    ``lines``, when given, receives the number of lines read (blank ones included).

    CRI log prefixes are removed and partial (``P``) lines are joined; a Docker ``json-file`` log
    wrapper (``{"log": "...", "stream": ...}``) is unwrapped. A line that is not JSON yields
    ``(line_number, JSONLineError)`` so the caller can count and skip it in order.
    """
    pending: list[bytes] = []
    pending_line = pending_size = 0
    overflow = False  # the joined record passed the cap: drop pieces until its last one
    consumed = 0
    boundary = chunk_bytes if chunk_bytes is not None else -1
    cut_due = False  # the previous line held the boundary: cut before anything from this one
    number = 0
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
        if fast is not None and raw.startswith(b"{"):  # (a CRI prefix starts with a digit)
            value = fast(raw, number)
            if value is not None:
                if value is not HANDLED:
                    yield number, value
                continue
        line = raw.strip()
        if not line:
            continue
        match = _CRI_PREFIX.match(line)
        if match:
            payload = line[match.end() :]
            if match.group(1) == b"P":
                if not pending and not overflow:
                    pending_line = number
                pending_size += len(payload)
                if pending_size > MAX_JOINED_BYTES:
                    # Endless partial pieces must not be joined in memory: one bad record.
                    pending, overflow = [], True
                if not overflow:
                    pending.append(payload)
                continue
            if overflow:
                overflow, pending_size = False, 0
                yield pending_line, JSONLineError()
                continue
            if pending:
                payload = b"".join(pending) + payload
                number, pending, pending_size = pending_line, [], 0
            line = payload.strip()
            if not line:
                continue
        try:
            value = _loads(line)
        except _JSON_ERRORS:
            yield number, JSONLineError()
            continue
        if isinstance(value, dict) and "log" in value and "stream" in value:
            try:
                value = _loads(str(value["log"]).encode())
            except _JSON_ERRORS:
                yield number, JSONLineError()
                continue
        yield number, value
    if lines is not None:
        lines.lines = number
    if pending or overflow:
        yield pending_line, JSONLineError()


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
