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

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import Distinct
from netpolgen.flows import PROTOCOL_NUMBERS
from netpolgen.ingest.report import MAX_MESSAGES_PER_REASON, IngestReport


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
