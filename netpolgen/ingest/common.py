"""Helpers shared by the JSON and text flow-log readers (Hubble, AWS, GCP, Azure).

Accounting convention (every reader follows it, so ``IngestReport``'s invariant
``records_read == records_used + skipped + filtered`` holds):

* A *record* is one flow record of the format: a Hubble flow event, an AWS line (the header line
  is not a record), a GCP log entry, an Azure flow tuple. Lines that are not flow records by the
  format's own definition (Hubble ``node_status``/``lost_events``/agent and debug events, blank
  lines) are not counted at all; lost events are reported in ``report.messages``.
* A record that cannot be parsed (bad JSON, wrong field count, an address that is not an IP) is
  *skipped* through :meth:`IngestReport.skip`, which names the file and line, and is an error
  under ``--strict``.
* A record that is valid but says nothing usable for policies (AWS ``NODATA``/``SKIPDATA``) is
  *skipped* too, but never an error under ``--strict``: it is not malformed (:func:`skip_valid`).
* A valid record left out on purpose (the same connection seen again at another observation point
  or by the other end, Cilium health checks, link-local noise) is *filtered* with a reason.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen.errors import InputError
from netpolgen.flows import PROTOCOL_NUMBERS, conform_flows
from netpolgen.ingest.report import MAX_MESSAGES_PER_REASON, IngestReport

try:  # orjson is an optional speed-up (the ``fast`` extra); the stdlib parser is the fallback.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover - exercised only without the extra
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


class _Cut:
    """The marker :func:`iter_json_lines` yields at a byte-chunk boundary."""


CUT = _Cut()


def iter_json_lines(
    stream: BinaryIO,
    fast: Callable[[bytes, int], Any | None] | None = None,
    chunk_bytes: int | None = None,
    lines: LineCount | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank JSON line of ``stream``.

    ``fast``, when given, is tried first on each line that starts with ``{`` (so not a CRI
    piece), with its number and its line end: a reader's specialised decoder, whose non-None
    answer is yielded instead of the parsed JSON.
    ``chunk_bytes``, when given, cuts the input into byte chunks that end at line ends:
    ``(line_number, CUT)`` follows the line holding byte ``start + chunk_bytes`` of each chunk
    (blank lines included), which is where :mod:`netpolgen.ingest.parallel` cuts a file into
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
        raise InputError(
            f"not valid JSON ({str(error).splitlines()[0]})",
            source=source,
            line=line,
            hint="a blob still being written is cut off; read it again when the hour is over",
        ) from error


def skip_valid(
    report: IngestReport, reason: str, *, source: str, line: int | None, count: int = 1
) -> None:
    """Count records skipped because they carry no flow (never an error under ``--strict``)."""
    if count <= 0:
        return
    seen = report.skipped[reason]
    report.skipped[reason] += count
    if seen < MAX_MESSAGES_PER_REASON:
        where = f"{source}:{line}" if line is not None else source
        report.messages.append(f"{where}: skipped: {reason}")


@lru_cache(maxsize=65536)
def normalize_ip(text: str) -> str | None:
    """The canonical text of an IP address (``::ffff:``-free, compressed IPv6), or None."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


@lru_cache(maxsize=65536)
def is_noise_address(text: str) -> bool:
    """IPv6 link-local, multicast and broadcast addresses: never a workload (NDP, mDNS, DHCP).

    IPv4 link-local stays: 169.254.169.254 (cloud metadata) and 169.254.20.10 (node-local DNS)
    are real peers that policies must allow or deny.
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.is_link_local:
        return True
    return address.is_multicast or text == "255.255.255.255"


# The largest counter or number a record may carry (beyond is corruption, and int64 overflows).
COUNTER_MAX = 10**15


def protocol_name(number: int | str | None) -> str | None:
    """IANA protocol number -> the flow table's name (``6`` -> ``TCP``; unknown -> text)."""
    if number is None or number == "" or number == "-":
        return None
    try:
        value = int(number)
    except (TypeError, ValueError):
        return None
    if not 0 <= value <= 255:
        return None
    return PROTOCOL_NUMBERS.get(value, str(value))


# Flow times netpolgen accepts: datetime64[ns] ends in 2262, and flow logs start after 1970.
TIME_MIN = pd.Timestamp("1970-01-01", tz="UTC")
TIME_MAX = pd.Timestamp("2262-01-01", tz="UTC")
_MAX_EPOCH_MS = (TIME_MAX - TIME_MIN) // pd.Timedelta(milliseconds=1)


def epoch_to_time(values: pd.Series) -> pd.Series:
    """Unix epochs (seconds, or milliseconds when too large for seconds) -> UTC datetimes."""
    fast = whole_epoch_seconds(values)
    if fast is not None:
        return fast
    number = pd.to_numeric(values, errors="coerce")
    # 1e11 seconds is the year 5138; anything larger is in milliseconds (Azure VNet, AWS TGW).
    milliseconds = (number > 1e11).fillna(False).astype(bool)
    # Beyond what datetime64[ns] holds (the year 2262), or negative: not a time.
    limit = number.where(milliseconds, number * 1000) < _MAX_EPOCH_MS
    number = number.where(((number >= 0) & limit).fillna(False).astype(bool))
    # Integral milliseconds stay integers: a float of 1.6e12 ms loses the last digits in ns.
    from_ms = pd.to_datetime(
        number.where(milliseconds).round().astype("Int64"), unit="ms", utc=True, errors="coerce"
    )
    from_s = pd.to_datetime(number.where(~milliseconds), unit="s", utc=True, errors="coerce")
    return from_s.where(~milliseconds, from_ms).astype("datetime64[ns, UTC]")


def is_whole_epoch_seconds(values: pd.Series) -> bool:
    """Whether :func:`whole_epoch_seconds` would take ``values`` (without building the times:
    for a field that only needs checking)."""
    return _parsed_epoch_seconds(values) is not None


def _parsed_epoch_seconds(values: pd.Series) -> Any:
    """Arrow-backed text, or integers, of whole seconds in range (or null), as Arrow int64;
    else None."""
    dtype = values.dtype
    text = isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"
    if not (text or pd.api.types.is_integer_dtype(dtype)):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        parsed = pc.cast(pa.array(values), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    low, high = pc.min_max(parsed).values()
    if low.is_valid and not (low.as_py() >= 0 and high.as_py() * 1000 < _MAX_EPOCH_MS):
        return None
    return parsed


def whole_epoch_seconds(values: pd.Series) -> pd.Series | None:
    """The common case of :func:`epoch_to_time`, by Arrow: Arrow-backed text (or integers) of
    whole seconds in range (or null). None for anything else, a value like ``-`` included (the
    general path decides it): a fast path, which a caller can try before looking for cells
    without a value."""
    parsed = _parsed_epoch_seconds(values)
    if parsed is None:
        return None
    null = parsed.is_null().to_numpy(zero_copy_only=False)
    nanos = parsed.fill_null(0).to_numpy() * 1_000_000_000
    stamps = nanos.view("datetime64[ns]").copy()
    stamps[null] = np.datetime64("NaT")
    return pd.Series(stamps, index=values.index).dt.tz_localize("UTC")


def text_to_time(values: pd.Series) -> pd.Series:
    """RFC 3339 texts (any fraction length, ``Z`` or offsets) -> UTC datetimes; bad -> NaT."""
    parsed = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
    # datetime64[ns] ends in 2262: a year 9999 is corruption, not a flow time.
    in_range = ((parsed >= TIME_MIN) & (parsed < TIME_MAX)).fillna(False).astype(bool)
    return parsed.where(in_range).astype("datetime64[ns, UTC]")


def drop_noise(
    frame: pd.DataFrame, report: IngestReport, noise: np.ndarray | None = None
) -> pd.DataFrame:
    """Filter flows from or to the addresses of :func:`is_noise_address`.

    ``noise``: those rows as flags, when the reader has already looked at each distinct address.
    """
    if noise is None:
        noise = np.zeros(len(frame), dtype=bool)
        for side in ("src_ip", "dst_ip"):
            addresses = Distinct(frame[side], trim=False)
            noise |= addresses.flags(lambda ip: ip is not None and is_noise_address(ip))
    return frame[~noise] if noise_filtered(noise, report).any() else frame


def noise_filtered(noise: np.ndarray, report: IngestReport) -> np.ndarray:
    """Count the rows flagged in ``noise`` as filtered (see :func:`drop_noise`); return them."""
    if noise.any():
        report.filter("IPv6 link-local, multicast or broadcast address", int(noise.sum()))
    return noise


class Distinct:
    """One column, factorised once: its distinct values as text (trimmed unless ``trim`` is
    False; None: a missing cell, as a short CSV row or a Parquet null gives), and per row the
    code of its value. Checks and conversions then run once per distinct value, and the rows
    take the answers by code (:class:`Answers`): flow columns repeat a few values a lot.
    """

    def __init__(self, column: pd.Series, trim: bool = True) -> None:
        codes, uniques = pd.factorize(column)
        self.index = column.index
        self.codes = np.where(codes < 0, len(uniques), codes) if (codes < 0).any() else codes
        texts = [str(u).strip() if trim else str(u) for u in uniques]
        self.values: list[str | None] = [*texts, None]

    def map(self, function: Any) -> Answers:
        """``function`` of each distinct value (once per text, after trimming)."""
        memo: dict[str | None, Any] = {}
        answers = []
        for value in self.values:
            if value not in memo:
                memo[value] = function(value)
            answers.append(memo[value])
        return Answers(self, answers)

    def flags(self, predicate: Any) -> np.ndarray:
        """``predicate`` of each row's value, as a bool array."""
        return np.array([bool(predicate(v)) for v in self.values], dtype=bool)[self.codes]

    def booleans(self, function: Any) -> pd.Series:
        array = pd.array([function(v) for v in self.values], dtype="boolean")
        return pd.Series(array.take(self.codes), index=self.index)


class Answers:
    """A function's answers for the distinct values of a :class:`Distinct`."""

    def __init__(self, distinct: Distinct, answers: list[Any]) -> None:
        self._distinct, self._answers = distinct, answers

    def unless(self, predicate: Any) -> Answers:
        """These answers, but None for the distinct values where ``predicate`` holds."""
        values = self._distinct.values
        answers = [None if predicate(v) else a for v, a in zip(values, self._answers, strict=True)]
        return Answers(self._distinct, answers)

    def answer_at(self, row: int) -> Any:
        return self._answers[self._distinct.codes[row]]

    def missing(self) -> np.ndarray:
        return self.flags(lambda answer: answer is None)

    def flags(self, predicate: Any) -> np.ndarray:
        return np.array([bool(predicate(a)) for a in self._answers], dtype=bool)[
            self._distinct.codes
        ]

    def strings(self) -> pd.Series:
        """The answers (text or None) per row, as the flow table's string dtype: taken from a
        small array, so that no Python string per row is made."""
        array = pd.array(self._answers, dtype="string")
        return pd.Series(array.take(self._distinct.codes), index=self._distinct.index)

    def open_categorical(self) -> pd.Series:
        """The answers (text or None) as a categorical of the sorted distinct answers, as
        :func:`netpolgen.flows.conform_flows` makes an open set (the protocol): no text per row."""
        names = sorted({a for a in self._answers if a is not None})
        table = np.array([-1 if a is None else names.index(a) for a in self._answers])
        dtype = pd.CategoricalDtype(pd.Index(names, dtype="string"))
        codes = table[self._distinct.codes]
        return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=self._distinct.index)

    def categorical(self, categories: Sequence[str]) -> pd.Series:
        table = np.array([-1 if a is None else categories.index(a) for a in self._answers])
        return pd.Series(
            pd.Categorical.from_codes(
                table[self._distinct.codes], dtype=pd.CategoricalDtype(list(categories))
            ),
            index=self._distinct.index,
        )


def select_text(where: np.ndarray, chosen: pd.Series, own: pd.Series) -> pd.Series:
    """``own.mask(where, chosen)``; on Arrow-backed text by Arrow's ``if_else``, which measured
    five times faster than pandas' masked select (3.1 against 0.6 ms for 57,000 labels)."""
    if where.all() and chosen.dtype == own.dtype:
        return chosen  # every row takes the other value (addresses-only logs): nothing to select
    if isinstance(own.array, pd.arrays.ArrowStringArray) and isinstance(
        chosen.array, pd.arrays.ArrowStringArray
    ):
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            selected = pc.if_else(pa.array(where), pa.array(chosen.array), pa.array(own.array))
            return pd.Series(pd.arrays.ArrowStringArray(selected), index=own.index)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, TypeError):  # pragma: no cover
            pass  # Arrow types that do not match: pandas' select below
    return own.mask(pd.Series(where, index=own.index), chosen)


_VERDICT_RANK = {"unknown": 0, "allowed": 1, "denied": 2}
_RANK_VERDICT = {rank: verdict for verdict, rank in _VERDICT_RANK.items()}
_KEY = ["src_ip", "dst_ip", "src_port", "dst_port", "protocol"]
_FIRST = [
    "src_namespace", "dst_namespace", "src_pod", "dst_pod", "src_labels", "dst_labels",
    "src_kind", "dst_kind", "is_reply",
]  # fmt: skip


def collapse_observations(
    frame: pd.DataFrame,
    report: IngestReport,
    bucket: str = "60s",
    counters: str = "max",
    seen: SeenConnections | None = None,
) -> pd.DataFrame:
    """Merge records of one connection seen several times into one row (``count`` 1 each).

    A connection is the oriented 5-tuple within a time bucket: the same packets traced at several
    observation points (Hubble), logged by the ENIs or VMs at both ends (AWS, GCP ``reporter``),
    or begin/continue/end tuples (Azure). Replies have the reversed 5-tuple, so they stay apart.
    The merged row takes the earliest time, the strongest verdict (a connection dropped at one
    point was denied), the first known identity and direction. ``counters`` says how to merge
    bytes and packets: ``max`` when every record counts the same packets (two ends, two ENIs),
    ``sum`` when records are deltas (Azure's continue/end tuples). Merged records are counted as
    filtered ("duplicate observation of a connection").

    ``frame`` must be conformed; the result is conformed too, with the merged rows in order of
    their connection's first record, then stably sorted by time.

    ``seen``: the file's :class:`SeenConnections`, applied to the merged rows (as calling it on
    the result would), but before their columns are gathered, and on the codes used here.

    Vectorised on integer codes: each key column is factorised (missing values form their own
    group, as ``groupby(dropna=False)`` does), the numbers are reduced per group by ufuncs on
    integers, and the "first known" columns are taken at each group's first row holding a value.
    """
    if len(frame) < 2:
        return frame if seen is None else seen(frame, report)
    connections = _ConnectionCodes(frame, bucket)
    group = connections.groups()
    groups = int(group.max()) + 1
    if groups == len(frame):
        return frame if seen is None else seen(frame, report, connections.keys())

    # The first row of each group holds its key; the numbers are reduced per group by
    # unbuffered ufuncs on integers (missing values as sentinels that never win), which
    # measured several times faster than a groupby of nullable columns.
    earliest = _earliest_nanos(frame["time"], group, groups)
    # The result is in time order (NaT last; ties in order of first record): the groups are
    # renumbered so before anything is gathered, instead of sorting the finished frame (a take
    # of every column, a fifth of this function's time).
    if (earliest == _NAT).any() or (np.diff(earliest) < 0).any():
        order = np.lexsort((earliest, earliest == _NAT))  # stable: the last key is the first
        renumber = np.empty(groups, dtype=np.int64)
        renumber[order] = np.arange(groups)
        group, earliest = renumber[group], earliest[order]
    first_row = _first_positions(group, np.ones(len(frame), dtype=bool), groups)
    report.filter("duplicate observation of a connection", len(frame) - groups)
    # The groups to keep: all, or those not seen in the chunk before (None: all).
    kept = None
    if seen is not None:
        repeated = seen.repeated(connections.keys(first_row), report)
        kept = np.flatnonzero(~repeated) if repeated.any() else None

    def pick(per_group: np.ndarray) -> np.ndarray:
        return per_group if kept is None else per_group[kept]

    merged: dict[str, Any] = {name: frame[name].array.take(pick(first_row)) for name in _KEY}
    merged["time"] = (
        pd.DatetimeIndex(pick(earliest).view("datetime64[ns]")).tz_localize("UTC").array
    )
    for counter in ("count", "bytes", "packets"):
        how = "max" if counter == "count" else counters
        merged[counter] = _merged_counter(frame[counter], group, groups, how, pick)
    # Verdicts by the categorical's codes (three), ranked: no text per row.
    verdict = frame["verdict"]
    names = list(verdict.cat.categories)
    ranks = np.array([*(_VERDICT_RANK[v] for v in names), -1])
    strongest = np.full(groups, -1, dtype=np.int64)
    np.maximum.at(strongest, group, ranks[verdict.cat.codes.to_numpy()])
    # Rank -1: no verdict at all in the group, which is unknown too.
    by_rank = np.array(
        [*(names.index(_RANK_VERDICT[r]) for r in (0, 1, 2)), names.index("unknown")]
    )
    dtype = pd.CategoricalDtype(verdict.cat.categories)
    merged["verdict"] = pd.Categorical.from_codes(by_rank[pick(strongest)], dtype=dtype)
    for name in _FIRST:
        column = frame[name]
        known = column.notna().to_numpy(dtype=bool, copy=True)
        if name in ("src_kind", "dst_kind"):
            # "unknown" is a placeholder: prefer what another observation point knew.
            known &= (column != "unknown").fillna(False).to_numpy(dtype=bool)
        elif not known.any():
            continue  # missing throughout (names in an addresses-only log): conform_flows adds it
        taken = column.array.take(pick(_first_positions(group, known, groups)), allow_fill=True)
        if name in ("src_kind", "dst_kind"):
            taken = pd.Series(taken).fillna("unknown").array
        merged[name] = taken
    return conform_flows(pd.DataFrame(merged, copy=False))  # new arrays: nothing to protect


def _earliest_nanos(time: pd.Series, group: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the earliest time as int64 nanoseconds (NaT only where every time is)."""
    nanos = time.to_numpy(dtype="datetime64[ns]").view(np.int64)  # NaT: the smallest int64
    latest = np.iinfo(np.int64).max
    earliest = np.full(groups, latest, dtype=np.int64)
    np.minimum.at(earliest, group, np.where(nanos == _NAT, latest, nanos))
    earliest[earliest == latest] = _NAT
    return earliest


def _merged_counter(
    values: pd.Series,
    group: np.ndarray,
    groups: int,
    how: str,
    pick: Callable[[np.ndarray], np.ndarray],
) -> Any:
    """Per group (those ``pick`` keeps), the largest or the sum of a counter (non-negative; NA
    where none is known)."""
    known = values.notna().to_numpy(dtype=bool)
    numbers = values.to_numpy(dtype=np.int64, na_value=0)
    if how == "sum":
        out = np.zeros(groups, dtype=np.int64)
        np.add.at(out, group, numbers)
    else:
        out = np.full(groups, -1, dtype=np.int64)
        np.maximum.at(out, group, np.where(known, numbers, -1))
    seen = np.zeros(groups, dtype=np.int64)
    np.add.at(seen, group, known.astype(np.int64))
    out, seen = pick(out), pick(seen)
    return pd.array(out, dtype="Int64") if seen.all() else _with_missing(out, seen == 0)


def _with_missing(values: np.ndarray, missing: np.ndarray) -> Any:
    array = pd.array(values, dtype="Int64")
    array[missing] = pd.NA  # a sum of nothing is 0: none known is missing
    return array


_NAT = np.iinfo(np.int64).min


class _ConnectionCodes:
    """A frame's connection columns (the oriented 5-tuple and the time bucket) as integer codes,
    factorised once: for numbering its connections (:meth:`groups`) and for their 64-bit keys
    (:meth:`keys`), which :class:`SeenConnections` remembers across chunks."""

    def __init__(self, frame: pd.DataFrame, bucket: str) -> None:
        self.addresses = [
            pd.factorize(frame[name], use_na_sentinel=False) for name in ("src_ip", "dst_ip")
        ]
        # Ports: missing as -1.
        self.ports = [
            frame[p].to_numpy(dtype=np.int64, na_value=-1) for p in ("src_port", "dst_port")
        ]
        protocol = frame["protocol"]
        self.protocol = protocol.cat.codes.to_numpy().astype(np.int64)  # -1: missing
        self.protocols = [str(name) for name in protocol.cat.categories]
        nanos = frame["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        self.nat = nanos == _NAT
        self.step = pd.Timedelta(bucket).value
        self.buckets = nanos // self.step  # floored, as Series.dt.floor

    def groups(self) -> np.ndarray:
        """Per row, its connection's number, in order of first appearance (exact: the codes are
        combined by :func:`combined_codes`, whole rows are not hashed)."""
        return combined_codes(
            [
                *((np.asarray(codes), len(values)) for codes, values in self.addresses),
                *((port + 1, 65537) for port in self.ports),  # 0-65535, or missing
                (self.protocol + 1, len(self.protocols) + 1),
                self._bucket_codes(),
            ]
        )

    def _bucket_codes(self) -> tuple[np.ndarray, int]:
        """The buckets numbered from the chunk's first, NaT after the last; how many."""
        if self.nat.all():
            return np.zeros(len(self.nat), dtype=np.int64), 1
        first, last = (int(f(self.buckets[~self.nat])) for f in (np.min, np.max))
        codes = self.buckets - first
        codes[self.nat] = last - first + 1
        return codes, last - first + 2

    def keys(self, rows: np.ndarray | None = None) -> np.ndarray:
        """One 64-bit hash per row (of ``rows``, or all) of its connection.

        Text (addresses, the protocol) is hashed once per distinct value and taken by code,
        numbers are hashed as integers, and the per-column hashes are mixed: no text per row.
        """

        def at(values: np.ndarray) -> np.ndarray:
            return values if rows is None else values[rows]

        mixed = np.zeros(len(self.nat) if rows is None else len(rows), dtype=np.uint64)
        for codes, values in self.addresses:
            mixed = _mix(mixed, _hashed_texts(list(values))[at(np.asarray(codes))])
        for port in self.ports:
            mixed = _mix(mixed, pd.util.hash_array(at(port)))
        mixed = _mix(mixed, _hashed_texts([*self.protocols, None])[at(self.protocol)])
        floored = np.where(at(self.nat), _NAT, at(self.buckets) * self.step)
        return _mix(mixed, pd.util.hash_array(floored))


def _hashed_texts(values: list[Any]) -> np.ndarray:
    texts = np.array([None if pd.isna(v) else str(v) for v in values], dtype=object)
    return np.asarray(pd.util.hash_array(texts))


def combined_codes(fields: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
    """Per row, the number of its combination of codes (each field: codes in ``0 .. size-1``
    and its size), numbered densely in order of first appearance.

    The codes are packed side by side into one integer, each in as many bits as its size needs,
    and only numbered (one factorising pass) when the next would not fit: the fields of a chunk
    (addresses, protocols, kinds, time buckets) have few values, so one pass usually does it all.
    """
    rows = len(fields[0][0]) if fields else 0
    group, bits = np.zeros(rows, dtype=np.int64), 0
    for codes, size in fields:
        width = max(size - 1, 1).bit_length()
        if bits + width > 62:
            group = _dense(group)
            bits = max(rows - 1, 1).bit_length()
        group, bits = (group << width) | codes.astype(np.int64, copy=False), bits + width
    return _dense(group)


def group_ids(columns: Sequence[Any]) -> np.ndarray:
    """Dense ids of the distinct combinations of ``columns`` (NA is a value of its own), in
    order of first appearance (:func:`combined_codes` of their codes)."""
    fields = []
    for column in columns:
        if isinstance(column, pd.Series) and column.isna().all():
            continue  # one value (NA) throughout: it splits no group (addresses-only logs)
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        fields.append((np.asarray(codes), len(uniques)))
    if not fields:
        return np.zeros(len(columns[0]), dtype=np.int64)
    return combined_codes(fields)


def first_of_groups(group: np.ndarray) -> np.ndarray:
    """Each group's first row, for groups numbered in order of first appearance (as
    ``pd.factorize`` numbers them): a row starts a group where its number passes every number
    before it. One pass, no sort."""
    if not len(group):
        return np.array([], dtype=np.int64)
    seen = np.maximum.accumulate(group)
    return np.flatnonzero(np.r_[True, group[1:] > seen[:-1]]).astype(np.int64)


def _dense(keys: np.ndarray) -> np.ndarray:
    """Numbers of the distinct ``keys``, in order of first appearance (below len(keys))."""
    return np.asarray(pd.factorize(keys)[0], dtype=np.int64)


def _first_positions(group: np.ndarray, usable: np.ndarray, groups: int) -> np.ndarray:
    """Per group, the position of its first row where ``usable`` holds (-1 where none does)."""
    positions = np.flatnonzero(usable)
    none = np.iinfo(np.int64).max
    result = np.full(groups, none, dtype=np.int64)
    np.minimum.at(result, group[positions], positions)  # no sort: one pass
    result[result == none] = -1
    return result


# Connection keys (64-bit hashes) remembered across chunks.
REMEMBERED = 50_000


class SeenConnections:
    """The most recent connections of a file, so that a connection whose observations fall on
    both sides of a chunk boundary still counts once (results do not depend on chunk size).

    Only the last :data:`REMEMBERED` connection keys are kept, which bounds memory: observations
    of one connection lie close together in a log.
    """

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self._previous: pd.Index = pd.Index([], dtype="uint64")

    def __call__(
        self,
        frame: pd.DataFrame,
        report: IngestReport,
        keys: pd.Series | np.ndarray | None = None,
    ) -> pd.DataFrame:
        """Filter the rows of ``frame`` already seen in the previous chunk; remember the rest.

        ``keys``: the rows' :func:`connection_keys`, when a worker process computed them.
        """
        if not len(frame):
            return frame
        if keys is None:
            keys = connection_keys(frame, self.bucket)
        repeated = self.repeated(keys.to_numpy() if isinstance(keys, pd.Series) else keys, report)
        if repeated.any():  # conformed again: a protocol whose rows all went is no category
            frame = conform_flows(frame[~repeated].reset_index(drop=True))
        return frame

    def repeated(self, keys: np.ndarray, report: IngestReport) -> np.ndarray:
        """Which of ``keys`` (a chunk's, in order) were seen in the chunk before; remember the
        others, and count the repeated ones as filtered."""
        repeated = np.asarray(pd.Index(keys).isin(self._previous))
        recent = self._previous.append(pd.Index(pd.unique(keys[~repeated])))
        self._previous = recent[-REMEMBERED:]
        if repeated.any():
            report.filter("duplicate observation of a connection", int(repeated.sum()))
        return repeated


def connection_keys(frame: pd.DataFrame, bucket: str) -> pd.Series:
    """One 64-bit hash per row of its oriented 5-tuple and time bucket (vectorised; see
    :meth:`_ConnectionCodes.keys`)."""
    return pd.Series(_ConnectionCodes(frame, bucket).keys(), index=frame.index)


def _mix(seed: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Fold a column's hashes into the running ones (order matters: src and dst differ)."""
    with np.errstate(over="ignore"):
        return (seed * np.uint64(0x100000001B3)) ^ value.astype(np.uint64)


def frame_with_times(
    rows: list[tuple[Any, ...]], columns: Sequence[str], source: str, report: IngestReport
) -> pd.DataFrame:
    """Rows of a JSON reader (with a ``line`` and an RFC 3339 ``time`` column) -> a frame with
    parsed times; records whose time does not parse are skipped, counted and located, and the
    rest are counted as used."""
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    time = text_to_time(frame["time"])
    bad_time = time.isna() & frame["time"].notna()
    if bad_time.any():
        first = int(frame.loc[bad_time, "line"].iloc[0])
        report.skip("time is not RFC 3339", source=source, line=first, count=int(bad_time.sum()))
        frame, time = frame[~bad_time], time[~bad_time]
    frame["time"] = time
    report.records_used += len(frame)
    return frame
