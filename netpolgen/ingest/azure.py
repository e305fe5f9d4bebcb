"""Azure Network Watcher flow logs: NSG flow logs (v1, v2) and VNet flow logs (v4).

Shapes (FORMATS.md §4): a storage blob is one JSON document ``{"records": [...]}`` per hour and
NIC (read whole: its size is bounded by the hour). Files of JSON lines, each a record or a
``{"records": [...]}`` document (Event Hubs or Log Analytics exports), are accepted as well.

* NSG record: ``properties{Version, flows[{rule, flows[{mac, flowTuples[...]}]}]}``. A v2 tuple
  is ``ts(epoch s),src,dst,sport,dport,proto(T|U),dir(I|O),decision(A|D),state(B|C|E),
  pktsS2D,bytesS2D,pktsD2S,bytesD2S`` (counters empty on B); a v1 tuple has the first 8 fields.
* VNet record: ``flowRecords{flows[{aclID, flowGroups[{rule, flowTuples[...]}]}]}``. A v4 tuple is
  ``ts(epoch ms),src,dst,sport,dport,proto(IANA number),dir(I|O),state(B|C|E|D),encryption,
  pktsS2D,bytesS2D,pktsD2S,bytesD2S``; state D means denied.

A tuple is one record for the accounting; messages number tuples in file order (1, 2, ...), as the
JSON's lines do not identify them. The tuple's source is the connection's initiator (the counters
are source-to-destination and back), so ``is_reply`` is false. Begin, continue and end tuples of
one connection, and the same flow logged by the NSGs of both subnet and NIC, are merged (same
5-tuple within the hour); counters, deltas since the previous tuple, are summed.

Network Watcher aggregates flows into a record per minute (the tuples of that minute, each with
its own time): the table's :data:`~netpolgen.flows.TIME_WINDOW_ATTR` is that minute
(``TIME_WINDOW_SECONDS``), so that time order decides no direction between records closer than
that (netpolgen.reduce.direction, rule d; here the tuples carry their direction, rule a) and a
``D`` at one NIC is matched to the other NIC's tuples of the same connection within it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import pandas as pd

from netpolgen.flows import TIME_WINDOW_ATTR, conform_flows
from netpolgen.ingest.collapse import SeenConnections, collapse_observations
from netpolgen.ingest.fields import (
    COUNTER_MAX,
    drop_noise,
    epoch_to_time,
    normalize_ip,
    protocol_name,
)
from netpolgen.ingest.jsonlines import (
    MAX_JSON_CHUNK,
    JSONLineError,
    first_json_values,
    iter_json_lines,
    loads,
    read_json_document,
)
from netpolgen.ingest.report import IngestReport

# Begin/continue/end tuples of a connection fall in the blob's hour.
_BUCKET = "3600s"
# One record per minute per NIC ("Virtual network flow logs": the log format).
TIME_WINDOW_SECONDS = 60
_CATEGORIES = (b"NetworkSecurityGroupFlowEvent", b"FlowLogFlowEvent")
_NSG_PROTOCOLS = {"T": "TCP", "U": "UDP", "I": "ICMP"}
_NSG_FIELDS = 13
_NSG_V1_FIELDS = 8
_VNET_FIELDS = 13


def sniff(head: bytes) -> bool:
    """A ``records`` document (or lines) of NSG or VNet flow-log events."""
    return (
        b'"records"' in head
        and any(c in head for c in _CATEGORIES)
        or (b"flowTuples" in head and (b'"flowRecords"' in head or b'"properties"' in head))
    )


def read(
    stream: BinaryIO, source: str, report: IngestReport, chunk_size: int = 250_000
) -> Iterator[pd.DataFrame]:
    """Read Azure NSG/VNet flow logs into flow-table chunks (see the module docstring)."""
    chunk_size = max(1, min(chunk_size, MAX_JSON_CHUNK))
    nsg: list[tuple[int, str]] = []
    vnet: list[tuple[int, str]] = []
    ordinal = 0
    seen = SeenConnections(_BUCKET)
    for line, record in _records(stream, source):
        if isinstance(record, _Truncated):
            report.messages.append(
                f"{source}: the blob is cut off (still being written?): "
                "only its complete records are read"
            )
            continue
        if isinstance(record, JSONLineError) or not isinstance(record, dict):
            report.records_read += 1
            reason = (
                "line is not valid JSON"
                if isinstance(record, JSONLineError)
                else ("record is not a JSON object")
            )
            report.skip(reason, source=source, line=line)
            continue
        kind, tuples = _tuples(record)
        if kind is None:
            report.records_read += 1
            report.skip("record has no flowTuples (not a flow-log event)", source=source, line=line)
            continue
        target = nsg if kind == "nsg" else vnet
        for text in tuples:
            ordinal += 1
            target.append((ordinal, text))
        if len(nsg) + len(vnet) >= chunk_size:
            yield _build(nsg, vnet, source, report, seen)
            nsg, vnet = [], []
    if nsg or vnet:
        yield _build(nsg, vnet, source, report, seen)


def _records(stream: BinaryIO, source: str) -> Iterator[tuple[int | None, Any]]:
    """``(line or None, record)`` for each event record of the file."""
    head = stream.peek(65536)  # type: ignore[attr-defined]
    if first_json_values(head, limit=1):
        values: Iterator[tuple[int | None, Any]] = iter_json_lines(stream)
    else:
        values = iter([(None, read_json_document(stream, source, _complete_records))])
    for line, value in values:
        if isinstance(value, dict) and value.get("_truncated"):
            # Not an error: the blob is being written. Say so, and read what is complete.
            yield None, _Truncated()
        if isinstance(value, dict) and isinstance(value.get("records"), list):
            for record in value["records"]:
                yield line, record
        else:
            yield line, value


# How many cut points to try when salvaging a blob that is still being written.
_SALVAGE_ATTEMPTS = 64


def _complete_records(data: bytes) -> dict[str, Any] | None:
    """The complete records of a ``{"records": [...]}`` blob cut off mid-write, or None.

    Azure appends records to the hour's blob as the hour goes (FORMATS.md §4), so a blob read
    before the hour ends stops mid-record. Cutting after a record's closing brace and closing the
    array and the object gives back every complete record.
    """
    if b'"records"' not in data[:4096]:
        return None
    end = len(data)
    for _ in range(_SALVAGE_ATTEMPTS):
        end = data.rfind(b"}", 0, end)
        if end < 0:
            return None
        try:
            document = loads(data[: end + 1] + b"]}")
        except ValueError:
            continue
        if isinstance(document, dict) and isinstance(document.get("records"), list):
            document["_truncated"] = True
            return document
    return None


def _tuples(record: dict[str, Any]) -> tuple[str | None, list[str]]:
    """``('nsg'|'vnet', [tuple text, ...])`` of one record, or ``(None, [])``."""
    flow_records = record.get("flowRecords")
    if isinstance(flow_records, dict):
        out = [
            str(text)
            for acl in _list(flow_records.get("flows"))
            for group in _list(_dict(acl).get("flowGroups"))
            for text in _list(_dict(group).get("flowTuples"))
        ]
        return "vnet", out
    properties = record.get("properties")
    if isinstance(properties, dict) and "flows" in properties:
        out = [
            str(text)
            for rule in _list(properties.get("flows"))
            for per_mac in _list(_dict(rule).get("flows"))
            for text in _list(_dict(per_mac).get("flowTuples"))
        ]
        return "nsg", out
    return None, []


class _Truncated:
    """Marker: the blob was cut off and only its complete records are read."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _build(
    nsg: list[tuple[int, str]],
    vnet: list[tuple[int, str]],
    source: str,
    report: IngestReport,
    seen: SeenConnections,
) -> pd.DataFrame:
    frames = [
        _parse(nsg, source, report, vnet=False),
        _parse(vnet, source, report, vnet=True),
    ]
    frame = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    frame = drop_noise(conform_flows(frame), report)
    flows = collapse_observations(
        frame.reset_index(drop=True), report, bucket=_BUCKET, counters="sum", seen=seen
    )
    flows.attrs[TIME_WINDOW_ATTR] = TIME_WINDOW_SECONDS
    return flows


def _parse(
    tuples: list[tuple[int, str]], source: str, report: IngestReport, *, vnet: bool
) -> pd.DataFrame:
    """Vectorised: tuple texts -> flow-table columns (not yet conformed)."""
    report.records_read += len(tuples)
    if not tuples:
        return pd.DataFrame()
    ordinals = pd.Series([o for o, _ in tuples])
    fields = pd.Series([t for _, t in tuples]).str.split(",", expand=True)
    width = fields.shape[1]
    bad = pd.Series(False, index=fields.index)

    def reject(mask: pd.Series, reason: str) -> None:
        nonlocal bad
        mask = mask.fillna(False).astype(bool) & ~bad
        if mask.any():
            first = int(ordinals[mask].iloc[0])
            report.skip(reason, source=source, line=first, count=int(mask.sum()))
            bad = bad | mask

    counts = fields.notna().sum(axis=1)
    allowed_widths = [_VNET_FIELDS] if vnet else [_NSG_FIELDS, _NSG_V1_FIELDS]
    widths = " or ".join(str(w) for w in allowed_widths)
    reject(~counts.isin(allowed_widths), f"flow tuple does not have {widths} fields")
    for column in range(width, _NSG_FIELDS):
        fields[column] = None
    out: dict[str, pd.Series] = {}

    out["time"] = epoch_to_time(fields[0])
    reject(out["time"].isna(), "flow tuple time is not a Unix epoch")
    for side, column in (("src", 1), ("dst", 2)):
        unique = fields[column].dropna().unique()
        out[f"{side}_ip"] = fields[column].map({a: normalize_ip(str(a)) for a in unique})
        reject(out[f"{side}_ip"].isna(), f"flow tuple {side} address is not an IP address")
    if vnet:
        names = {p: protocol_name(p) for p in fields[5].dropna().unique()}
    else:
        names = {p: _NSG_PROTOCOLS.get(str(p)) for p in fields[5].dropna().unique()}
    out["protocol"] = fields[5].map(names)
    reject(out["protocol"].isna(), "flow tuple protocol is unknown")
    icmp = out["protocol"].isin(["ICMP", "ICMPv6"]).fillna(False).astype(bool)
    for side, column in (("src_port", 3), ("dst_port", 4)):
        number = pd.to_numeric(fields[column], errors="coerce")
        invalid = number.isna() | (number < 0) | (number > 65535) | (number % 1 != 0)
        reject(invalid & ~icmp, f"flow tuple {side.replace('_', ' ')} is not an integer 0-65535")
        out[side] = number.where(~invalid & ~icmp & (number != 0)).astype("Float64").astype("Int64")
    reject(~fields[6].isin(["I", "O"]), "flow tuple direction is neither I nor O")
    if vnet:
        out["verdict"] = fields[7].map({"B": "allowed", "C": "allowed", "E": "allowed",
                                        "D": "denied"})  # fmt: skip
        reject(out["verdict"].isna(), "flow tuple state is not B, C, E or D")
    else:
        out["verdict"] = fields[7].map({"A": "allowed", "D": "denied"})
        reject(out["verdict"].isna(), "flow tuple decision is neither A nor D")
    counters = [
        pd.to_numeric(fields[c].replace("", None), errors="coerce").where(
            lambda n: (n >= 0) & (n <= COUNTER_MAX) & (n % 1 == 0)
        )
        for c in range(9, 13)
    ]
    out["packets"] = (counters[0].add(counters[2], fill_value=0)).astype("Float64").astype("Int64")
    out["bytes"] = (counters[1].add(counters[3], fill_value=0)).astype("Float64").astype("Int64")
    out["is_reply"] = pd.Series(False, index=fields.index, dtype="boolean")
    for side in ("src_kind", "dst_kind"):
        out[side] = pd.Series("unknown", index=fields.index)  # IP only: the inventory tells
    frame = pd.DataFrame(out, index=fields.index)[~bad]
    report.records_used += len(frame)
    for port in ("src_port", "dst_port"):
        frame[port] = frame[port].astype("UInt16")
    return frame.reset_index(drop=True)
