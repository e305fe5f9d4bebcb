"""The plain CSV flow format of DESIGN.md ("The CSV format (contract)").

A header row names the columns, in any order; unknown columns are ignored. Each row is one flow,
or ``count`` flows. Parsing is vectorised per chunk: pyarrow parses on a thread of its own, a
chunk ahead (:mod:`netpolgen.ingest.read_ahead`); each text column is factorised once and checked
per distinct value, numbers are cast by Arrow; rows that fail a check are skipped and counted
with their line number.

Both parsers skip blank lines without counting them, so a row's number is not its line: the line
limiter in front of the reader records the blank lines (:class:`~netpolgen.ingest.limits.LineMap`),
and the line of a reported row is looked up there. Only reported rows are looked up. Lines
that continue a quoted cell across a line break are recorded there too, so a row is named by
the line it starts on.
"""

from __future__ import annotations

import csv as stdlib_csv
import io
import ipaddress
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen._compat import optional
from netpolgen._kernels import Answers, Distinct
from netpolgen.errors import InputError
from netpolgen.flows import ENDPOINT_KINDS, PROTOCOL_NUMBERS, PROTOCOLS, VERDICTS, conform_flows
from netpolgen.ingest.limits import LineMap, limit_lines, line_limiter
from netpolgen.ingest.read_ahead import read_ahead
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sanitize import INVALID_LABELS, INVALID_POD_NAME, is_pod_name
from netpolgen.labels import canonical_labels, invalid_labels, parse_labels

_pa = optional("pyarrow")  # the ``fast`` extra
_arrow_csv = optional("pyarrow.csv")

HAS_ARROW = _arrow_csv is not None  # the Arrow reader can be used

SIDES = ("src", "dst")
KNOWN_COLUMNS = (
    "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "src_namespace",
    "dst_namespace", "src_pod", "dst_pod", "src_labels", "dst_labels", "src_kind", "dst_kind",
    "verdict", "is_reply", "count", "bytes", "packets",
)  # fmt: skip
HEADER_HINT_COLUMNS = frozenset({"dst_port", "dst_ip", "src_ip", "src_labels", "dst_labels"})

# A namespace name is a DNS-1123 label.
_NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERDICTS = {
    "": "unknown", "unknown": "unknown",
    "allowed": "allowed", "allow": "allowed", "accept": "allowed", "forwarded": "allowed",
    "denied": "denied", "deny": "denied", "drop": "denied", "dropped": "denied",
    "reject": "denied", "rejected": "denied",
}  # fmt: skip
_BOOLEANS = {"": pd.NA, "true": True, "false": False, "1": True, "0": False, "yes": True,
             "no": False}  # fmt: skip
_PROTOCOL_NAMES = {p.upper(): p for p in PROTOCOLS}
_POD_KIND, _UNKNOWN_KIND = ENDPOINT_KINDS.index("pod"), ENDPOINT_KINDS.index("unknown")


MAX_CSV_CHUNK = 50_000


def sniff(head: bytes) -> bool:
    """A CSV flow file starts with a header line naming some of our columns (blank lines before
    it are skipped, as the reader skips them)."""
    lines = head.lstrip(b"\xef\xbb\xbf").split(b"\n")
    first = next((line for line in lines if line.strip()), b"").decode("utf-8", "replace")
    names = {c.strip().strip('"').lower() for c in first.split(",")}
    return len(names) > 1 and bool(names & HEADER_HINT_COLUMNS)


def read(
    stream: BinaryIO,
    source: str,
    report: IngestReport,
    chunk_size: int = 250_000,
    *,
    arrow: bool | None = None,
) -> Iterator[pd.DataFrame]:
    """Read a CSV flow file into flow-table chunks.

    pyarrow's streaming CSV reader (multi-threaded, straight into Arrow-backed strings) is used
    when it is installed; pandas' reader otherwise. Both feed the same vectorised checks.
    ``arrow`` overrides the choice (:func:`arrow_friendly` decides it from the file's head; a
    part of a file parsed on its own must take the whole file's choice).
    """
    # CSV rows are wide (labels on both sides): a chunk's Arrow and pandas columns cost ~1 KB a
    # row while it is checked, so chunks are capped here whatever the caller asks (with 100,000
    # the 10M-row benchmark passed 1 GB; with 50,000 it stays near 930 MB).
    chunk_size = max(1, min(chunk_size, MAX_CSV_CHUNK))
    limiter = line_limiter(stream)
    if limiter is None:
        # Not opened by read_checked, which puts the line limiter (and its LineMap) in front.
        stream = limit_lines(stream, source, report, header=True)
        limiter = line_limiter(stream)
        assert limiter is not None
    assert limiter.line_map is not None
    # Both parsers read ahead of the rows being checked (pyarrow on a thread of its own): long
    # lines are held and reported before the chunk they precede, in file order, whatever the
    # parser has read by then (even this peek reads a whole block).
    limiter.hold_long_lines()
    if arrow is None:
        arrow = arrow_friendly(stream.peek(1 << 16))  # type: ignore[attr-defined]
    if _arrow_csv is not None and arrow:
        chunks = _read_arrow(stream, source, chunk_size)
    else:
        chunks = _read_pandas(stream, source, chunk_size)
    for chunk in chunks:
        if len(chunk):
            # chunk.index numbers rows from 0 at the file's first; the header is line 1.
            limiter.release_long_lines(before=limiter.line_map.physical(int(chunk.index[-1]) + 3))
        yield _parse_chunk(chunk, source, report, limiter.line_map)
    limiter.release_long_lines()


def arrow_friendly(head: bytes) -> bool:
    """Whether pyarrow parses this file (whose first 64 KiB are ``head``) as pandas would.

    pandas is told to skip spaces after a delimiter, so ``a, "b,c"`` is two cells there; pyarrow
    has no such option. Files with a space before a quote keep the pandas reader. So do files
    whose first lines include one of only spaces or tabs: pandas skips it, pyarrow reads it as a
    row of one cell (an error at the header).
    """
    if _WHITESPACE_LINE.search(head):
        return False
    return b', "' not in head and b',\t"' not in head


_WHITESPACE_LINE = re.compile(rb"(?:^|\n)[ \t]+\r?(?:\n|$)")


def _read_arrow(stream: BinaryIO, source: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Chunks of text cells, parsed by pyarrow on a thread of its own (see read_ahead)."""
    assert _arrow_csv is not None and _pa is not None
    # Every column as text, named explicitly: Arrow would otherwise infer a type from the first
    # block (dst_port: int64) and fail the whole file on a bad cell in a later one, where the
    # checks should skip that one row.
    text_columns = {name: _pa.string() for name in _header_names(stream)}
    try:
        reader = _arrow_csv.open_csv(
            stream,
            read_options=_arrow_csv.ReadOptions(block_size=_block_size(chunk_size)),
            parse_options=_arrow_csv.ParseOptions(newlines_in_values=True),
            convert_options=_arrow_csv.ConvertOptions(
                strings_can_be_null=False, quoted_strings_can_be_null=False,
                column_types=text_columns, null_values=[],
            ),
        )  # fmt: skip
    except _pa.ArrowInvalid as error:
        raise _arrow_error(error, source) from error
    names = list(reader.schema.names)
    row = 0
    try:
        for batches in read_ahead(_gathered(reader, chunk_size)):
            frame = _frame(batches, names, row, source)
            if len(frame) or not row:  # a file of only a header still makes one chunk
                row += len(frame)
                yield frame
    except _pa.ArrowInvalid as error:
        raise _arrow_error(error, source) from error


def _gathered(reader: Any, chunk_size: int) -> Iterator[list[Any]]:
    """The reader's record batches, gathered into lists of at least ``chunk_size`` rows; the
    last list may be shorter, or empty (a file of only a header still makes one chunk)."""
    pending: list[Any] = []
    pending_rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= chunk_size:
            yield pending
            pending, pending_rows = [], 0
    yield pending


def _block_size(chunk_size: int) -> int:
    # Arrow's streaming reader keeps several blocks in flight per thread; memory grows about 30
    # times the block size (measured: 1 MiB -> +80 MB, 12 MiB -> +430 MB), while speed barely
    # changes beyond 1 MiB. Batches are gathered up to chunk_size rows before parsing.
    return 1 << 20 if chunk_size >= 4096 else 1 << 16


def _header_names(stream: BinaryIO) -> list[str]:
    """The column names of the header line (the first non-blank one), read from the buffered
    head of ``stream`` without consuming it; empty when it does not fit in the buffer."""
    head = stream.peek(_HEAD_BYTES)  # type: ignore[attr-defined]
    lines = head.split(b"\n")
    if len(lines) == 1 and len(head) >= _HEAD_BYTES:  # no line end in a full buffer: cut off
        return []
    first = next((line for line in lines if line.strip()), b"")
    text = first.rstrip(b"\r").decode("utf-8", "replace")
    try:
        return next(stdlib_csv.reader([text]), [])
    except stdlib_csv.Error:  # a lone carriage return inside the line: the reader reports it
        return []


_HEAD_BYTES = 1 << 20  # what the source's buffer holds (ingest.sources)


def _frame(batches: list[Any], names: list[str], start: int, source: str) -> pd.DataFrame:
    assert _pa is not None
    try:
        return _to_frame(batches, names, start)
    except _pa.ArrowInvalid as error:
        raise _arrow_error(error, source) from error


def _to_frame(batches: list[Any], names: list[str], start: int) -> pd.DataFrame:
    assert _pa is not None
    if batches:
        table = _pa.Table.from_batches(batches)
    else:
        table = _pa.table({n: _pa.array([], _pa.string()) for n in names})
    frame = table.to_pandas(types_mapper=lambda _: pd.StringDtype("pyarrow"))
    frame.columns = names
    frame.index = pd.RangeIndex(start, start + len(frame))
    return pd.DataFrame(frame)


def _arrow_error(error: Exception, source: str) -> InputError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "Empty CSV file" in text:
        return InputError("empty file: no CSV header", source=source)
    if "UTF8" in text or "utf8" in text.lower():
        return InputError("not UTF-8 text", source=source, hint="convert the file to UTF-8")
    return InputError(f"malformed CSV ({text})", source=source)


def _read_pandas(stream: BinaryIO, source: str, chunk_size: int) -> Iterator[pd.DataFrame]:
    """Chunks of text cells, parsed by pandas (without pyarrow, or for files it would misread)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    try:
        reader = pd.read_csv(
            text, dtype=str, keep_default_na=False, chunksize=chunk_size, skipinitialspace=True
        )
        yield from reader
    except pd.errors.EmptyDataError as error:
        raise InputError("empty file: no CSV header", source=source) from error
    except pd.errors.ParserError as error:
        raise InputError(f"malformed CSV ({_short(error)})", source=source) from error
    except UnicodeDecodeError as error:
        raise InputError(
            f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})",
            source=source,
            hint="convert the file to UTF-8",
        ) from error
    finally:
        # The caller owns the binary stream: detach so that collecting the wrapper later does
        # not try to close (or flush) a stream that is already closed.
        if not text.closed:
            text.detach()


def _short(error: Exception) -> str:
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__


def _require_columns(columns: set[str], source: str, lines: LineMap) -> None:
    missing = []
    if "dst_port" not in columns:
        missing.append("dst_port")
    for side in SIDES:
        has_identity = {f"{side}_namespace", f"{side}_labels"} <= columns
        if not has_identity and f"{side}_ip" not in columns:
            missing.append(f"{side}_ip (or {side}_namespace and {side}_labels)")
    if missing:
        raise InputError(
            "missing CSV columns: " + ", ".join(missing),
            source=source,
            line=lines.physical(1),  # blank lines may come before the header
            hint="the header needs dst_port and, for each side, an IP or namespace and labels",
        )


def _parse_chunk(
    chunk: pd.DataFrame, source: str, report: IngestReport, lines: LineMap
) -> pd.DataFrame:
    """Check and convert one chunk; ``chunk.index`` numbers the rows from 0 at the file's first.

    Text columns repeat a few values over many rows, so each is factorised once, as read, and
    every check (trimming, validity, canonical form) runs on its distinct values; the rows take
    the answers by code. Numbers are parsed by Arrow's cast, trimmed only when that fails.

    Names and labels are checked here as :mod:`netpolgen.ingest.sanitize` would (invalid
    namespaces skip the row, invalid pod names are dropped, invalid labels left out), with line
    numbers; so CSV chunks skip that backstop (``FlowFormat.checks_names``).
    """
    chunk.columns = [str(c).strip().lower() for c in chunk.columns]
    chunk = chunk.loc[:, ~chunk.columns.duplicated()]
    _require_columns(set(chunk.columns), source, lines)
    report.records_read += len(chunk)
    raw = {c: chunk[c] for c in KNOWN_COLUMNS if c in chunk.columns}
    index = chunk.index
    bad = np.zeros(len(chunk), dtype=bool)
    out: dict[str, pd.Series] = {}

    def reject(mask: np.ndarray | pd.Series, reason: str) -> None:
        nonlocal bad
        # Nullable (Arrow) comparisons give NA for empty cells (NA > 65535 is NA); NA must not
        # reach ``bad``, or the row is dropped below without being counted anywhere.
        if isinstance(mask, pd.Series):
            mask = mask.fillna(False).to_numpy(dtype=bool)
        mask = mask & ~bad
        if mask.any():
            # Row r is the (r + 2)-th non-blank line: the header is the first.
            line = lines.physical(int(index[int(np.argmax(mask))]) + 2)
            report.skip(reason, source=source, line=line, count=int(mask.sum()))
            bad = bad | mask

    for column in ("src_port", "dst_port"):
        if column in raw:
            value, invalid = _integers(raw[column], 0, 65535)
            reject(invalid, f"{column} is not an integer 0-65535")
            out[column] = value

    if "protocol" in raw:
        protocol = Distinct(raw["protocol"]).map(lambda v: None if v is None else _protocol(v))
        reject(protocol.missing(), "unknown protocol")
        out["protocol"] = protocol.strings()
    else:
        out["protocol"] = _constant("TCP", index)

    for column in ("count", "bytes", "packets"):
        if column in raw:
            value, invalid = _integers(raw[column], 0, None)
            reject(invalid, f"{column} is not a non-negative integer")
            out[column] = value
    if "count" in out:
        out["count"] = out["count"].fillna(1)

    if "time" in raw:
        out["time"], invalid = _times(raw["time"])
        reject(invalid, "time is neither RFC 3339 nor Unix seconds")

    if "verdict" in raw:
        verdict = Distinct(raw["verdict"]).map(
            lambda v: None if v is None else _VERDICTS.get(v.lower())
        )
        reject(verdict.missing(), "unknown verdict")
        out["verdict"] = verdict.categorical(VERDICTS)
    if "is_reply" in raw:
        is_reply = Distinct(raw["is_reply"])
        reject(
            is_reply.flags(lambda v: v is not None and v.lower() not in _BOOLEANS),
            "is_reply is not a boolean",
        )
        out["is_reply"] = is_reply.booleans(
            lambda v: pd.NA if v is None else _BOOLEANS.get(v.lower(), pd.NA)
        )

    pod_names: dict[str, Answers] = {}
    for side in SIDES:
        has_ip = np.zeros(len(chunk), dtype=bool)
        if f"{side}_ip" in raw:
            ip = Distinct(raw[f"{side}_ip"])
            address = ip.map(lambda v: _ip(v) if v else None)
            reject(address.missing() & ip.flags(bool), f"{side}_ip is not an IP address")
            out[f"{side}_ip"] = address.strings()
            has_ip = ~address.missing()
        has_namespace = np.zeros(len(chunk), dtype=bool)
        if f"{side}_namespace" in raw:
            namespace = Distinct(raw[f"{side}_namespace"])
            reject(
                namespace.flags(lambda v: bool(v) and not _NAMESPACE_RE.match(v)),
                f"{side}_namespace is not a valid namespace name",
            )
            named = namespace.map(lambda v: v or None)
            out[f"{side}_namespace"] = named.strings()
            has_namespace = ~named.missing()
        if f"{side}_pod" in raw:
            pod_names[side] = Distinct(raw[f"{side}_pod"]).map(lambda v: v or None)
            out[f"{side}_pod"] = pod_names[side].strings()
        has_labels = np.zeros(len(chunk), dtype=bool)
        if f"{side}_labels" in raw:
            labels = Distinct(raw[f"{side}_labels"])
            canonical = labels.map(lambda v: None if v is None else _canonical(v, report, source))
            reject(canonical.missing(), f"{side}_labels are neither k=v,... nor a JSON object")
            # An empty cell is no labels (NA); all labels invalid is an empty set ("").
            shown = canonical.unless(lambda v: not v)
            out[f"{side}_labels"] = shown.strings()
            has_labels = shown.flags(bool)
        has_pod_identity = has_namespace & has_labels
        reject(~has_pod_identity & ~has_ip, f"{side} endpoint has neither namespace+labels nor IP")
        # A side named by namespace and labels is a pod; an address alone is resolved later (the
        # inventory), or treated as an outside peer.
        if f"{side}_kind" in raw:
            kind = pd.Series("unknown", index=index).mask(has_pod_identity, "pod")
            given = raw[f"{side}_kind"].str.strip().str.lower()
            out[f"{side}_kind"] = given.where(given != "", kind)
        else:  # the flow table's categorical, built from codes
            codes = np.where(has_pod_identity, _POD_KIND, _UNKNOWN_KIND)
            kinds = pd.Categorical.from_codes(
                codes, dtype=pd.CategoricalDtype(list(ENDPOINT_KINDS))
            )
            out[f"{side}_kind"] = pd.Series(kinds, index=index)

    # Pod names only name workloads and match inventory pods: an invalid one is dropped, the row
    # stays (as sanitize does, after the rows skipped above).
    for side, pods in pod_names.items():
        dropped = pods.flags(lambda v: v is not None and not is_pod_name(v)) & ~bad
        if dropped.any():
            example = pods.answer_at(int(np.argmax(dropped)))
            report.note(
                INVALID_POD_NAME,
                f"{source}: {side}_pod is not a valid pod name, dropped: {example[:80]!r}",
                int(dropped.sum()),
            )
            out[f"{side}_pod"] = out[f"{side}_pod"].mask(dropped)

    frame = pd.DataFrame(out, index=index)[~bad]
    report.records_used += len(frame)
    if len(chunk):
        lines.forget(int(index[-1]) + 2)  # later chunks report later rows only
    return conform_flows(frame).reset_index(drop=True)


def _constant(value: str, index: pd.Index) -> pd.Series:
    array = pd.array([value], dtype="string")
    return pd.Series(array.take(np.zeros(len(index), dtype=np.intp)), index=index)


def _integers(text: pd.Series, low: int, high: int | None) -> tuple[pd.Series, pd.Series]:
    fast = _arrow_numbers(text, "int64")
    if fast is None:  # spaces around a number, or not a plain integer: trimmed, then again
        text = text.str.strip()
        fast = _arrow_numbers(text, "int64")
    if fast is not None:
        in_range = fast.isna() | ((fast >= low) & (fast <= (high if high is not None else _EXACT)))
        if bool(in_range.all()):
            return fast.astype("Int64"), pd.Series(False, index=text.index)
    number = pd.to_numeric(text.where(text != ""), errors="coerce")
    invalid = (text != "") & (number.isna() | (number % 1 != 0) | (number < low))
    if high is not None:
        invalid |= number > high
    return number.where(~invalid).astype("Float64").astype("Int64"), invalid


# Integers above 2**53 go through the slow path, which rounds them through a float as it always has.
_EXACT = 1 << 53


def _arrow_numbers(text: pd.Series, kind: str) -> pd.Series | None:
    """``text`` parsed by Arrow's cast (empty cells as NA), or None if any cell does not parse.

    A fast path only: whatever Arrow rejects ("1e3", "5.0" as an integer, "+5") goes through the
    pandas parser as before, so accepted values are the same.
    """
    if _pa is None or not isinstance(text.dtype, pd.StringDtype) or text.dtype.storage != "pyarrow":
        return None
    import pyarrow.compute as pc

    array = _pa.array(text)
    nulled = pc.if_else(pc.equal(array, ""), _pa.scalar(None, _pa.string()), array)
    try:
        parsed = pc.cast(nulled, _pa.int64() if kind == "int64" else _pa.float64())
    except (_pa.ArrowInvalid, _pa.ArrowNotImplementedError):
        return None
    mapper = {_pa.int64(): pd.Int64Dtype(), _pa.float64(): pd.Float64Dtype()}
    # .array: a fresh Series would be aligned on its own 0..n index, not relabelled.
    return pd.Series(parsed.to_pandas(types_mapper=mapper.get).array, index=text.index)


def _times(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    fast = _arrow_numbers(text, "float64")
    if fast is None:  # as in _integers
        text = text.str.strip()
        fast = _arrow_numbers(text, "float64")
    if fast is not None:
        value = pd.to_datetime(fast.astype("float64"), unit="s", utc=True, errors="coerce")
        return value, (text != "") & value.isna()
    numeric = pd.to_numeric(text.where(text != ""), errors="coerce")
    from_epoch = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    textual = text.where(numeric.isna() & (text != ""))
    from_text = pd.to_datetime(textual, utc=True, errors="coerce", format="ISO8601")
    value = from_epoch.fillna(from_text) if len(text) else from_epoch
    invalid = (text != "") & value.isna()
    return value, invalid


@lru_cache(maxsize=4096)
def _protocol(text: str) -> str | None:
    if text == "":
        return "TCP"
    name = _PROTOCOL_NAMES.get(text.upper())
    if name:
        return name
    if text.isdigit() and int(text) <= 255:
        return PROTOCOL_NUMBERS.get(int(text), text)
    return None


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _canonical(text: str, report: IngestReport, source: str) -> str | None:
    if text == "":
        return ""
    try:
        labels = parse_labels(text)
    except ValueError:
        return None
    bad = invalid_labels(labels)
    if bad:
        # Kubernetes would reject these in a selector: keep the rest, say what was left out.
        report.note(
            INVALID_LABELS,
            f"{source}: invalid label(s) left out of selectors: {json.dumps(sorted(bad))}",
        )
        labels = {k: v for k, v in labels.items() if f"{k}={v}" not in bad}
    return canonical_labels(labels)
