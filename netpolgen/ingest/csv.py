"""The plain CSV flow format of DESIGN.md ("The CSV format (contract)").

A header row names the columns, in any order; unknown columns are ignored. Each row is one flow,
or ``count`` flows. Parsing is vectorised per chunk: pyarrow parses on a thread of its own, a
chunk ahead (:mod:`netpolgen.ingest.csv_arrow`); each text column is factorised once and checked
per distinct value, numbers are cast by Arrow; rows that fail a check are skipped and counted
with their line number.

Both parsers skip blank lines without counting them, so a row's number is not its line: the line
limiter in front of the reader records the blank lines (:class:`~netpolgen.ingest.limits.LineMap`),
and the line of a reported row is looked up there. Only reported rows are looked up. Lines
that continue a quoted cell across a line break are recorded there too, so a row is named by
the line it starts on.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import BinaryIO

import numpy as np
import pandas as pd

from netpolgen._compat import optional
from netpolgen._kernels import Answers, Distinct
from netpolgen._memory import release_arrow_memory
from netpolgen.errors import InputError
from netpolgen.flows import ENDPOINT_KINDS, PROTOCOL_NUMBERS, PROTOCOLS, VERDICTS, conform_flows
from netpolgen.ingest.csv_arrow import Prepared, arrow_numbers, normalized_names, read_arrow
from netpolgen.ingest.limits import LineMap, limit_lines, line_limiter
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sanitize import INVALID_LABELS, INVALID_POD_NAME, is_pod_name
from netpolgen.labels import canonical_labels, invalid_labels, parse_labels

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
    chunks: Iterator[tuple[pd.DataFrame, Prepared]]
    if _arrow_csv is not None and arrow:
        chunks = read_arrow(stream, source, chunk_size)
    else:
        chunks = ((chunk, Prepared()) for chunk in _read_pandas(stream, source, chunk_size))
    for chunk, prepared in chunks:
        if len(chunk):
            # chunk.index numbers rows from 0 at the file's first; the header is line 1.
            limiter.release_long_lines(before=limiter.line_map.physical(int(chunk.index[-1]) + 3))
        yield _parse_chunk(chunk, source, report, limiter.line_map, prepared)
        if prepared.factorized:  # read by the Arrow reader's thread (netpolgen._memory)
            release_arrow_memory()
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
    chunk: pd.DataFrame,
    source: str,
    report: IngestReport,
    lines: LineMap,
    prepared: Prepared | None = None,
) -> pd.DataFrame:
    """Check and convert one chunk; ``chunk.index`` numbers the rows from 0 at the file's first.

    Text columns repeat a few values over many rows, so each is factorised once, as read, and
    every check (trimming, validity, canonical form) runs on its distinct values; the rows take
    the answers by code. Numbers are parsed by Arrow's cast, trimmed only when that fails.

    Names and labels are checked here as :mod:`netpolgen.ingest.sanitize` would (invalid
    namespaces skip the row, invalid pod names are dropped, invalid labels left out), with line
    numbers; so CSV chunks skip that backstop (``FlowFormat.checks_names``).
    ``prepared``: what the Arrow reader's thread did already (:mod:`netpolgen.ingest.csv_arrow`).
    """
    chunk.columns = normalized_names(chunk.columns)
    chunk = chunk.loc[:, ~chunk.columns.duplicated()]
    _require_columns(set(chunk.columns), source, lines)
    report.records_read += len(chunk)
    raw = {c: chunk[c] for c in KNOWN_COLUMNS if c in chunk.columns}
    prepared = prepared or Prepared()

    def distinct(column: str) -> Distinct:
        return Distinct(raw[column], factorized=prepared.factorized.get(column))

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
            first = prepared.first_parse(raw[column], column)
            value, invalid = _integers(raw[column], 0, 65535, first)
            reject(invalid, f"{column} is not an integer 0-65535")
            out[column] = value

    if "protocol" in raw:
        protocol = distinct("protocol").map(lambda v: None if v is None else _protocol(v))
        reject(protocol.missing(), "unknown protocol")
        out["protocol"] = protocol.strings()
    else:
        out["protocol"] = _constant("TCP", index)

    for column in ("count", "bytes", "packets"):
        if column in raw:
            first = prepared.first_parse(raw[column], column)
            value, invalid = _integers(raw[column], 0, None, first)
            reject(invalid, f"{column} is not a non-negative integer")
            out[column] = value
    if "count" in out:
        out["count"] = out["count"].fillna(1)

    if "time" in raw:
        out["time"], invalid = _times(raw["time"], prepared.first_parse(raw["time"], "time"))
        reject(invalid, "time is neither RFC 3339 nor Unix seconds")

    if "verdict" in raw:
        verdict = distinct("verdict").map(lambda v: None if v is None else _VERDICTS.get(v.lower()))
        reject(verdict.missing(), "unknown verdict")
        out["verdict"] = verdict.categorical(VERDICTS)
    if "is_reply" in raw:
        is_reply = distinct("is_reply")
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
            ip = distinct(f"{side}_ip")
            address = ip.map(lambda v: _ip(v) if v else None)
            reject(address.missing() & ip.flags(bool), f"{side}_ip is not an IP address")
            out[f"{side}_ip"] = address.strings()
            has_ip = ~address.missing()
        has_namespace = np.zeros(len(chunk), dtype=bool)
        if f"{side}_namespace" in raw:
            namespace = distinct(f"{side}_namespace")
            reject(
                namespace.flags(lambda v: bool(v) and not _NAMESPACE_RE.match(v)),
                f"{side}_namespace is not a valid namespace name",
            )
            named = namespace.map(lambda v: v or None)
            out[f"{side}_namespace"] = named.strings()
            has_namespace = ~named.missing()
        if f"{side}_pod" in raw:
            pod_names[side] = distinct(f"{side}_pod").map(lambda v: v or None)
            out[f"{side}_pod"] = pod_names[side].strings()
        has_labels = np.zeros(len(chunk), dtype=bool)
        if f"{side}_labels" in raw:
            labels = distinct(f"{side}_labels")
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

    frame = pd.DataFrame(out, index=index)
    if bad.any():  # a boolean selection copies every column, even when it keeps every row
        frame = frame[~bad]
    report.records_used += len(frame)
    if len(chunk):
        lines.forget(int(index[-1]) + 2)  # later chunks report later rows only
    return conform_flows(frame).reset_index(drop=True)


def _constant(value: str, index: pd.Index) -> pd.Series:
    array = pd.array([value], dtype="string")
    return pd.Series(array.take(np.zeros(len(index), dtype=np.intp)), index=index)


def _integers(
    text: pd.Series, low: int, high: int | None, fast: pd.Series | None
) -> tuple[pd.Series, pd.Series]:
    """``text`` as integers in ``[low, high]``, and where it is not; ``fast``: Arrow's parse
    of it (:func:`arrow_numbers`), None where a cell needs the pandas parser."""
    if fast is None:  # spaces around a number, or not a plain integer: trimmed, then again
        text = text.str.strip()
        fast = arrow_numbers(text, "int64")
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


def _times(text: pd.Series, fast: pd.Series | None) -> tuple[pd.Series, pd.Series]:
    """As :func:`_integers`, for Unix seconds or RFC 3339 text."""
    if fast is None:  # as in _integers
        text = text.str.strip()
        fast = arrow_numbers(text, "float64")
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


# Both caches hold answers by text for the whole run: a log repeats its few hundred addresses and
# label sets in every chunk, and each is checked once per chunk otherwise (58 chunks of 3M rows:
# ~0.3 s). The bound is for logs of many distinct values, which then pay as before.
_CACHE = 1 << 16


@lru_cache(maxsize=_CACHE)
def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _canonical(text: str, report: IngestReport, source: str) -> str | None:
    if text == "":
        return ""
    canonical, bad = _canonical_and_invalid(text)
    if bad:
        # Kubernetes would reject these in a selector: keep the rest, say what was left out.
        report.note(
            INVALID_LABELS,
            f"{source}: invalid label(s) left out of selectors: {json.dumps(sorted(bad))}",
        )
    return canonical


@lru_cache(maxsize=_CACHE)
def _canonical_and_invalid(text: str) -> tuple[str | None, frozenset[str]]:
    """The canonical form of the valid labels of ``text`` (None: not labels), and the invalid
    ones left out; a pure function, so that its answers can be kept (the note is the caller's)."""
    try:
        labels = parse_labels(text)
    except ValueError:
        return None, frozenset()
    bad = frozenset(invalid_labels(labels))
    if bad:
        labels = {k: v for k, v in labels.items() if f"{k}={v}" not in bad}
    return canonical_labels(labels), bad
