"""AWS VPC Flow Logs: space-separated text (default v2 or a custom format) and Parquet.

Shapes (FORMATS.md §2): CloudWatch Logs exports carry no header, so a file without one must be the
default version 2 format (``version account-id interface-id srcaddr dstaddr srcport dstport
protocol packets bytes start end action log-status``); S3 text delivery starts with a header of
hyphenated field names, which gives the order of any custom format (v3 to v5 fields and beyond;
unknown fields are ignored). S3 Parquet delivery has the same fields with underscores; it is read
when pyarrow is installed.

Semantics:

* ``pkt-srcaddr``/``pkt-dstaddr`` are preferred over ``srcaddr``/``dstaddr``: the latter are the
  ENI's primary address, not the packet's, for secondary IPs (EKS pod IPs) and NAT/TGW hops.
* ``-`` (and ``None``) is "no value". ``NODATA`` and ``SKIPDATA`` records carry no flow and are
  skipped and counted (``SKIPDATA`` also warns that records were lost); they are never an error
  under ``--strict``, as they are not malformed.
* ``action`` ACCEPT/REJECT is the security group / NACL decision: ``allowed``/``denied``.
* ``tcp-flags`` (OR-ed over the aggregation interval) gives the direction: SYN without ACK is the
  client's side (``is_reply`` false), SYN+ACK (18) the server's answer (true); otherwise unknown
  (UDP, v2 records, later windows of a long connection): :mod:`netpolgen.reduce.direction`
  decides those from the inventory and the whole input, never from the order of two records of
  one window (``TIME_WINDOW_SECONDS``).
  ``flow-direction`` is relative to the ENI, not to the connection, so it says nothing about
  replies on its own.
* ICMP has no ports (the log writes 0). Each ENI logs the flows it sees, so one connection can be
  logged by both ends and by NAT/TGW ENIs: records with the same packet 5-tuple within ten
  minutes (the longest aggregation interval) are merged.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen._kernels import Answers, Distinct, select_text
from netpolgen.errors import InputError
from netpolgen.flows import ENDPOINT_KINDS, TIME_WINDOW_ATTR, VERDICTS, conform_flows
from netpolgen.ingest.collapse import SeenConnections, collapse_observations
from netpolgen.ingest.fields import (
    COUNTER_MAX,
    epoch_to_time,
    is_noise_address,
    is_whole_epoch_seconds,
    noise_filtered,
    normalize_ip,
    protocol_name,
    skip_valid,
    whole_epoch_seconds,
)
from netpolgen.ingest.limits import LineLimiter, line_limiter
from netpolgen.ingest.read_ahead import read_ahead
from netpolgen.ingest.report import IngestReport

DEFAULT_FIELDS = (
    "version", "account-id", "interface-id", "srcaddr", "dstaddr", "srcport", "dstport",
    "protocol", "packets", "bytes", "start", "end", "action", "log-status",
)  # fmt: skip
# Every field name AWS documents (v2-v8); a header must consist of names like these.
KNOWN_FIELDS = frozenset(DEFAULT_FIELDS) | {
    "vpc-id", "subnet-id", "instance-id", "tcp-flags", "type", "pkt-srcaddr", "pkt-dstaddr",
    "region", "az-id", "sublocation-type", "sublocation-id", "pkt-src-aws-service",
    "pkt-dst-aws-service", "flow-direction", "traffic-path", "resource-type", "tgw-id",
    "tgw-attachment-id", "tgw-src-vpc-account-id", "tgw-dst-vpc-account-id", "tgw-src-vpc-id",
    "tgw-dst-vpc-id", "tgw-src-subnet-id", "tgw-dst-subnet-id", "tgw-src-eni", "tgw-dst-eni",
    "tgw-src-az-id", "tgw-dst-az-id", "tgw-pair-attachment-id", "packets-lost-no-route",
    "packets-lost-blackhole", "packets-lost-mtu-exceeded", "packets-lost-ttl-expired",
    "ecs-cluster-name", "ecs-cluster-arn", "ecs-container-instance-id",
    "ecs-container-instance-arn", "ecs-service-name", "ecs-task-definition-arn", "ecs-task-id",
    "ecs-task-arn", "ecs-container-id", "ecs-second-container-id", "reject-reason",
}  # fmt: skip
_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_ADDRESS_FIELDS = ("srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr")
_NULLS = ("-", "None", "")
_ACTIONS = {"ACCEPT": "allowed", "REJECT": "denied"}
_WORLD_KIND, _UNKNOWN_KIND = ENDPOINT_KINDS.index("world"), ENDPOINT_KINDS.index("unknown")
PARQUET_MAGIC = b"PAR1"
# Records of one connection by several ENIs fall within the longest aggregation interval.
_BUCKET = "600s"
TEXT_BATCH = 100_000
# How far a record's ``start`` may lie from its connection's first packet: the longest
# aggregation window (600 s) plus the documented delay ("up to 60 seconds after the packet was
# transmitted or received"). A request and its response are two records of one window, in
# either order: their times do not say which came first (netpolgen.reduce.direction, rule d).
TIME_WINDOW_SECONDS = 660


def sniff(head: bytes) -> bool:
    """A flow-log header line, a default-format v2 record, or a Parquet file."""
    if head[:4] == PARQUET_MAGIC:
        return True
    first = head.lstrip().split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if _is_header(first):
        return True
    return (
        len(first) == len(DEFAULT_FIELDS)
        and first[0].isdigit()
        and first[-1] in ("OK", "NODATA", "SKIPDATA")
    )


def _is_header(tokens: list[str]) -> bool:
    names = [t.replace("_", "-") for t in tokens]
    # Field names only, and at least two that AWS documents (the rest may be newer fields).
    return all(_NAME_RE.match(n) for n in names) and len(KNOWN_FIELDS & set(names)) >= 2


def read(
    stream: BinaryIO, source: str, report: IngestReport, chunk_size: int = 250_000
) -> Iterator[pd.DataFrame]:
    """Read AWS VPC flow-log text or Parquet into flow-table chunks."""
    limiter = line_limiter(stream)  # text only: Parquet is not read by lines
    if limiter is not None:
        # Text blocks are read ahead of the conversion (even this peek reads a whole block):
        # long lines are held, and released in file order as the blocks are taken (_read_text).
        limiter.hold_long_lines()
    if stream.peek(4)[:4] == PARQUET_MAGIC:  # type: ignore[attr-defined]
        yield from _read_parquet(stream, source, report, chunk_size)
        return
    yield from _read_text(stream, source, report, min(chunk_size, TEXT_BATCH), limiter)


def _read_text(
    stream: BinaryIO,
    source: str,
    report: IngestReport,
    batch: int,
    limiter: LineLimiter | None = None,
) -> Iterator[pd.DataFrame]:
    seen = SeenConnections(_BUCKET)
    pieces: list[tuple[pd.DataFrame, np.ndarray]] = []
    count = 0
    # Blocks are read and split on a thread of their own (read_ahead), ahead of the conversion.
    # That thread touches no shared state: each piece counts into a report of its own, merged
    # here in file order, and the limiter's long lines (held) are released here too.
    for frame, lines, piece_report, next_line in read_ahead(
        _text_pieces(stream, source, report.fresh)
    ):
        if limiter is not None:
            limiter.release_long_lines(before=next_line)
        report.merge(piece_report)
        if not len(frame):
            continue
        pieces.append((frame, lines))
        count += len(frame)
        # Chunks of exactly ``batch`` records, wherever the pieces were cut.
        while count >= batch:
            frame, lines = _concat(pieces)
            yield _convert(frame.iloc[:batch], lines[:batch], source, report, seen)
            pieces = [(frame.iloc[batch:], lines[batch:])] if len(frame) > batch else []
            count -= batch
    if limiter is not None:
        limiter.release_long_lines()
    if count:
        frame, lines = _concat(pieces)
        yield _convert(frame, lines, source, report, seen)


def _concat(pieces: list[tuple[pd.DataFrame, np.ndarray]]) -> tuple[pd.DataFrame, np.ndarray]:
    if len(pieces) == 1:
        return pieces[0]
    frames = [frame for frame, _ in pieces]
    # Pieces split in different ways (Arrow text or integers, or line by line) differ in dtype;
    # such a column is joined as Python objects, which the conversion's general way reads.
    mixed = [name for name in frames[0].columns if len({str(f[name].dtype) for f in frames}) > 1]
    if mixed:
        frames = [f.astype(dict.fromkeys(mixed, object)) for f in frames]
    return pd.concat(frames, ignore_index=True), np.concatenate([lines for _, lines in pieces])


# Text is read in blocks of about this size. A block of plain records (ASCII, single spaces, no
# blank lines) is split by Arrow's CSV reader; any other block line by line, as AWS documents
# ("runs of whitespace"), so both give the same fields.
_BLOCK = 4 << 20
_SPACE, _NEWLINE = ord(" "), ord("\n")


def _regular(block: bytes) -> bool:
    """ASCII records separated by single spaces, no blank lines, no other whitespace or control
    byte (numpy passes, which leave the interpreter lock to the conversion thread; a regular
    expression over megabytes would be slow)."""
    if not block.isascii() or block.startswith((b" ", b"\n")):
        return False
    codes = np.frombuffer(block, dtype=np.uint8)
    separator = codes <= _SPACE  # spaces, newlines, and every other control byte
    if (separator & (codes != _SPACE) & (codes != _NEWLINE)).any():
        return False  # a tab, a carriage return... (str.split splits on some): line by line
    # Two separators in a row: "  ", a blank line, a space at either end of a line.
    return not bool((separator[1:] & separator[:-1]).any())


def _text_pieces(
    stream: BinaryIO, source: str, new_report: Callable[[], IngestReport]
) -> Iterator[tuple[pd.DataFrame, np.ndarray, IngestReport, int]]:
    """Records of a text flow log as pieces in file order: raw fields, their line numbers, the
    piece's own accounting (a report from ``new_report``) and the number of the next line."""
    fields: tuple[str, ...] | None = None
    first_line = 1  # number of the block's first line
    while fields is None:  # up to the first line with fields: a header, or the first record
        line = stream.readline()
        if not line:
            return
        report = new_report()
        frame, lines, fields = _slow_block(line, fields, first_line, source, report)
        first_line += line.count(b"\n")
        yield frame, lines, report, first_line
    while True:
        block = stream.read(_BLOCK)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += stream.readline()  # whole lines only
        report = new_report()
        fast = None
        if fields is not None and _regular(block):
            fast = _arrow_block(block, fields, first_line)
        if fast is not None:
            report.records_read += len(fast[0])
            frame, lines = fast
            # A regular block has one record a line: its lines need no counting.
            first_line += len(frame) - (0 if block.endswith(b"\n") else 1)
        else:
            frame, lines, fields = _slow_block(block, fields, first_line, source, report)
            first_line += block.count(b"\n")
        yield frame, lines, report, first_line


def _arrow_block(
    block: bytes, fields: tuple[str, ...], first_line: int
) -> tuple[pd.DataFrame, np.ndarray] | None:
    """A regular block split by Arrow, or None when Arrow is missing or the block is not regular
    (a record with another number of fields: the slow path counts and locates it)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as csv
    except ImportError:  # pragma: no cover - the fast extra is not installed
        return None
    # Integer fields are parsed as integers right away, on Arrow's threads, with "-" (no value)
    # as null: the conversion then only checks their ranges. A block where such a field holds
    # anything else ("1e3", "None", a typo) is split again as text, and the conversion decides
    # and reports each of its cells as it would have.
    for typed in (True, False):
        try:
            table = csv.read_csv(
                io.BytesIO(block),
                # Threads: the block is parsed by both cores while the conversion waits for it.
                read_options=csv.ReadOptions(column_names=list(fields), use_threads=True),
                parse_options=csv.ParseOptions(delimiter=" ", quote_char=False),
                convert_options=csv.ConvertOptions(
                    column_types={
                        name: pa.int64() if typed and name in _INTEGER_FIELDS else pa.string()
                        for name in fields
                    },
                    strings_can_be_null=False,  # text keeps its "-": the conversion reads it
                    null_values=["-"] if typed else [],
                    # Every field is still split (and counted), but only the used ones are built.
                    include_columns=_used(fields),
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        types = {pa.string(): pd.StringDtype("pyarrow"), pa.int64(): pd.Int64Dtype()}
        frame = table.to_pandas(types_mapper=types.get)
        frame.columns = _used(fields)
        return frame, np.arange(first_line, first_line + len(frame))
    return None


# The fields _convert reads; the others (account, ENI, VPC ids...) are not kept past splitting.
_USED_FIELDS = frozenset({
    "srcaddr", "dstaddr", "pkt-srcaddr", "pkt-dstaddr", "srcport", "dstport", "protocol",
    "packets", "bytes", "start", "end", "action", "log-status", "tcp-flags",
    "pkt-src-aws-service", "pkt-dst-aws-service",
})  # fmt: skip


# The used fields that hold whole numbers (the protocol, a number too, is read as text: its
# distinct values are named one by one).
_INTEGER_FIELDS = frozenset({"srcport", "dstport", "packets", "bytes", "start", "end", "tcp-flags"})


def _used(fields: tuple[str, ...]) -> list[str]:
    return [name for name in fields if name in _USED_FIELDS]


def _slow_block(
    block: bytes,
    fields: tuple[str, ...] | None,
    first_line: int,
    source: str,
    report: IngestReport,
) -> tuple[pd.DataFrame, np.ndarray, tuple[str, ...] | None]:
    """Line by line: header detection, any whitespace, bad lines counted with their numbers."""
    rows: list[list[str]] = []
    lines: list[int] = []
    for number, raw in enumerate(block.split(b"\n"), first_line):
        try:
            tokens = raw.decode("utf-8").split()  # runs of whitespace: the docs have "  "
        except UnicodeDecodeError:
            report.records_read += 1
            report.skip("line is not UTF-8 text", source=source, line=number)
            continue
        if not tokens:
            continue
        if fields is None:
            if _is_header(tokens):
                fields = tuple(t.replace("_", "-") for t in tokens)
                _check_fields(fields, source)
                continue
            fields = DEFAULT_FIELDS
        report.records_read += 1
        if len(tokens) != len(fields):
            report.skip(
                f"expected {len(fields)} fields, found {len(tokens)}", source=source, line=number
            )
            continue
        rows.append(tokens)
        lines.append(number)
    names = list(fields or DEFAULT_FIELDS)
    frame = pd.DataFrame(rows, columns=names)[_used(tuple(names))]
    return frame, np.asarray(lines, dtype=np.int64), fields


def _check_fields(fields: tuple[str, ...], source: str) -> None:
    names = set(fields)
    if not ({"srcaddr", "pkt-srcaddr"} & names and {"dstaddr", "pkt-dstaddr"} & names):
        raise InputError(
            "the flow-log format has no source or destination address field",
            source=source,
            line=1,
            hint="include srcaddr/dstaddr (or pkt-srcaddr/pkt-dstaddr) in the flow log format",
        )
    duplicated = sorted({f for f in fields if fields.count(f) > 1})
    if duplicated:
        raise InputError(
            "header names a field twice: " + ", ".join(duplicated), source=source, line=1
        )


def _read_parquet(
    stream: BinaryIO, source: str, report: IngestReport, chunk_size: int
) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:
        raise InputError(
            "this is a Parquet file, and reading Parquet needs pyarrow",
            source=source,
            hint="pip install 'netpolgen[fast]'",
        ) from error
    handle: Any = stream
    if not (hasattr(stream, "seekable") and stream.seekable()):
        handle = io.BytesIO(stream.read())  # gzip or stdin: Parquet needs random access
    try:
        parquet = pq.ParquetFile(handle)
        seen = SeenConnections(_BUCKET)
        first_row = 1
        for batch in parquet.iter_batches(batch_size=chunk_size):
            frame = batch.to_pandas()
            for column in frame.columns:
                # Integer columns with nulls arrive as floats: back to integers, so that the
                # text conversions below see "6", not "6.0".
                if frame[column].dtype.kind == "f":
                    frame[column] = frame[column].astype("Int64")
            frame.columns = [str(c).replace("_", "-") for c in frame.columns]
            if first_row == 1:
                _check_fields(tuple(frame.columns), source)
            report.records_read += len(frame)
            lines = list(range(first_row, first_row + len(frame)))
            first_row += len(frame)
            yield _convert(frame, lines, source, report, seen)
    except (OSError, ValueError) as error:  # pyarrow.ArrowInvalid derives from ValueError
        raise InputError(f"cannot read Parquet ({error})", source=source) from error


def _null(column: pd.Series) -> pd.Series:
    """Where a field has no value: ``-``, ``None``, empty, or a Parquet null."""
    return column.isna() | column.astype("string").isin(_NULLS).fillna(False).astype(bool)


def _distinct(column: pd.Series, function: Any) -> tuple[np.ndarray, Answers]:
    """Per row, whether the field has no value (:func:`_null`); and ``function`` of the text of
    each distinct value that has one (None: not valid, or no value)."""
    distinct = Distinct(column, trim=False)  # fields are split on whitespace: nothing to trim
    null = distinct.flags(lambda v: v is None or v in _NULLS)
    return null, distinct.map(lambda v: None if v is None or v in _NULLS else function(v))


def _convert(
    frame: pd.DataFrame,
    lines: np.ndarray | list[int],
    source: str,
    report: IngestReport,
    seen: SeenConnections,
) -> pd.DataFrame:
    """Vectorised: one chunk of raw fields (text or Parquet-typed) -> flow-table rows, merged
    per connection, without the connections ``seen`` in the chunk before."""
    frame.index = pd.RangeIndex(len(frame))
    line = np.asarray(lines)
    bad = np.zeros(len(frame), dtype=bool)  # numpy: a dozen checks a chunk, each a pass
    out: dict[str, pd.Series] = {}

    def reject(mask: pd.Series | np.ndarray, reason: str, *, valid: bool = False) -> None:
        nonlocal bad
        if isinstance(mask, pd.Series):
            mask = mask.fillna(False).to_numpy(dtype=bool)  # NA (no value) is no reason
        mask = mask & ~bad
        if mask.any():
            first, count = int(line[int(np.argmax(mask))]), int(mask.sum())
            if valid:
                skip_valid(report, reason, source=source, line=first, count=count)
            else:
                report.skip(reason, source=source, line=first, count=count)
            bad = bad | mask

    if "log-status" in frame.columns:
        status = Distinct(frame["log-status"], trim=False)
        reject(status.flags(lambda s: s == "NODATA"), "NODATA record (no traffic in the interval)",
               valid=True)  # fmt: skip
        skipdata = status.flags(lambda s: s == "SKIPDATA")
        if skipdata.any():
            report.messages.append(
                f"{source}: SKIPDATA records: AWS lost flow records, the data is incomplete"
            )
        reject(skipdata, "SKIPDATA record (records lost during the interval)", valid=True)

    noise = np.zeros(len(frame), dtype=bool)  # see drop_noise: worked out per distinct address
    for side, pkt, eni in (("src", "pkt-srcaddr", "srcaddr"), ("dst", "pkt-dstaddr", "dstaddr")):
        missing = np.ones(len(frame), dtype=bool)
        normalized: pd.Series | None = None
        side_noise = np.zeros(len(frame), dtype=bool)
        for name in (eni, pkt):  # later wins: the packet address beats the ENI's
            if name in frame.columns:
                null, answers = _distinct(frame[name], normalize_ip)
                ip = answers.strings()
                normalized = ip if normalized is None else select_text(~null, ip, normalized)
                flagged = answers.flags(lambda a: a is not None and is_noise_address(a))
                side_noise = np.where(null, side_noise, flagged)
                missing &= null
        noise |= side_noise
        reject(missing, f"{side} address is '-'", valid=True)
        assert normalized is not None  # _check_fields: each side has an address field
        reject(normalized.isna(), f"{side} address is not an IP address")
        out[f"{side}_ip"] = normalized

    if "protocol" in frame.columns:
        null, answers = _distinct(frame["protocol"], protocol_name)
        reject(answers.missing() & ~null, "protocol is not an IANA number 0-255")
        out["protocol"] = answers.open_categorical()
    icmp = np.zeros(len(frame), dtype=bool)
    if "protocol" in out:  # by the categorical's codes: no text per row
        protocol = out["protocol"].cat
        icmp_codes = np.flatnonzero(protocol.categories.isin(["ICMP", "ICMPv6"]))
        icmp = np.isin(protocol.codes.to_numpy(), icmp_codes)

    for column, name in (("src_port", "srcport"), ("dst_port", "dstport")):
        if name in frame.columns:
            value, invalid = _numbers(frame[name], 0, 65535)
            reject(invalid, f"{name} is not an integer 0-65535")
            # The log writes 0 for ICMP and portless protocols: no port. One select, on numpy.
            numbers = value.to_numpy(dtype=np.int64, na_value=0)
            missing = value.isna().to_numpy(dtype=bool) | (numbers == 0) | icmp
            out[column] = pd.Series(pd.arrays.IntegerArray(numbers, missing), index=frame.index)
    for column in ("packets", "bytes"):
        if column in frame.columns:
            value, invalid = _numbers(frame[column], 0, None)
            reject(invalid, f"{column} is not a non-negative integer")
            out[column] = value

    for name in ("start", "end"):
        if name in frame.columns:
            if "time" in out and not out["time"].isna().any():
                if is_whole_epoch_seconds(frame[name]):
                    continue  # "end" is only checked: every record has its start
            time = whole_epoch_seconds(frame[name])  # the common case, without a null pass
            if time is None:
                absent = _null(frame[name])
                time = epoch_to_time(frame[name].where(~absent))
                reject(time.isna() & ~absent, f"{name} is not a Unix time")
            out["time"] = out["time"].fillna(time) if "time" in out else time

    if "action" in frame.columns:
        action = Distinct(frame["action"], trim=False)
        verdict = action.map(lambda a: "unknown" if a is None else _ACTIONS.get(a, "unknown"))
        out["verdict"] = verdict.categorical(VERDICTS)
    if "tcp-flags" in frame.columns:
        flags, invalid = _numbers(frame["tcp-flags"], 0, 255)
        reject(invalid, "tcp-flags is not an integer")
        syn_ack = flags & 18  # SYN (2) and ACK (16) bits
        is_reply = pd.Series(pd.NA, index=frame.index, dtype="boolean")
        request = (syn_ack == 2).fillna(False).astype(bool)
        answer = (syn_ack == 18).fillna(False).astype(bool)
        is_reply = is_reply.mask(request, False).mask(answer, True)
        out["is_reply"] = is_reply
    for side, name in (("src", "pkt-src-aws-service"), ("dst", "pkt-dst-aws-service")):
        # An AWS service (S3, DynamoDB...) is outside the cluster, whatever the inventory says.
        world = np.zeros(len(frame), dtype=bool)
        if name in frame.columns:
            world = ~_null(frame[name]).to_numpy(dtype=bool)
        codes = np.where(world, _WORLD_KIND, _UNKNOWN_KIND)
        kinds = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(list(ENDPOINT_KINDS)))
        out[f"{side}_kind"] = pd.Series(kinds, index=frame.index)

    report.records_used += int(len(frame) - bad.sum())
    # Bad records and noise go in one selection of every column (None: all rows stay).
    keep = ~bad & ~noise_filtered(noise & ~bad, report)
    rows = None if keep.all() else np.flatnonzero(keep)
    result = pd.DataFrame(
        {name: column.array if rows is None else column.array.take(rows)
         for name, column in out.items()},
        copy=False,
    )  # fmt: skip
    flows = collapse_observations(conform_flows(result), report, bucket=_BUCKET, seen=seen)
    flows.attrs[TIME_WINDOW_ATTR] = TIME_WINDOW_SECONDS
    return flows


def _arrow_integers(
    column: pd.Series, null: pd.Series | None, low: int, high: int
) -> pd.Series | None:
    """Arrow's string -> int64 cast of the non-null cells (``null``: None for every cell), or
    None if any cell does not parse or falls outside ``low .. high``.

    Only a fast path: anything Arrow rejects ("1e3", "5.0", "+5") goes the pandas way below.
    """
    dtype = column.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(column if null is None else column.where(~null))
    try:
        parsed = pc.cast(array, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    smallest, largest = pc.min_max(parsed).values()
    if smallest.is_valid and not (smallest.as_py() >= low and largest.as_py() <= high):
        return None
    values = parsed.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get).array
    return pd.Series(values, index=column.index)


def _numbers(column: pd.Series, low: int, high: int | None) -> tuple[pd.Series, pd.Series]:
    top = high if high is not None else COUNTER_MAX
    if pd.api.types.is_integer_dtype(column.dtype):  # parsed by Arrow (or Parquet): ranges only
        value = column.astype("Int64")
        invalid = ((value < low) | (value > top)).fillna(False).astype(bool)
        return (value.where(~invalid) if invalid.any() else value), invalid
    # Most chunks have a number in every field: cast straight away (no pass looking for "-");
    # a field without a value fails the cast, and the general way below decides the chunk.
    fast = _arrow_integers(column, None, low, top)
    if fast is not None:
        return fast, pd.Series(False, index=column.index)
    null = _null(column)
    fast = _arrow_integers(column, null, low, top)
    if fast is not None:
        return fast, pd.Series(False, index=column.index)
    number = pd.to_numeric(column.where(~null), errors="coerce")
    invalid = ~null & (number.isna() | (number % 1 != 0) | (number < low))
    invalid |= number > (high if high is not None else COUNTER_MAX)
    invalid = invalid.fillna(False).astype(bool)
    return number.where(~invalid & ~null).astype("Float64").astype("Int64"), invalid
