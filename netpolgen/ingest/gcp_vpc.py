"""GCP VPC Flow Logs: Cloud Logging ``LogEntry`` JSON lines, bare ``jsonPayload`` objects.

Shapes (FORMATS.md §3): one JSON object per line, either a whole ``LogEntry`` (``jsonPayload``,
``logName`` ``.../logs/compute.googleapis.com%2Fvpc_flows``, ``timestamp``; what Pub/Sub and GCS
sinks and ``gcloud logging read --format=json`` give) or the bare ``jsonPayload``. A file that is
one JSON array of entries (a console download) is read whole.

Semantics:

* ``connection{src_ip, src_port, dest_ip, dest_port, protocol}``: the protocol is an IANA number;
  ports are absent (or 0) for ICMP. Counters are int64 encoded as strings.
* ``src_gke_details``/``dest_gke_details``: ``pod{pod_name, pod_namespace}`` name the pod; the
  labels come from the inventory, so the kind stays ``unknown`` (not selectable) until then.
  Details with only ``cluster`` mean the node itself (the node IP or a hostNetwork pod), kind
  ``node``. ``*_location`` and ``*_google_service`` mark outside peers.
* GCP only samples traffic that happened; there is no verdict except the newer ``disposition``
  (ALLOWED / DENIED / DROPPED). Without it a record is ``allowed``: the traffic was observed.
* GKE Dataplane V2 network policy logs (``/var/log/network/policy_action.log``, and their Cloud
  Logging entries) share the ``connection`` object and are read too: ``protocol`` is a name
  there, ``disposition`` is ``allow``/``deny``, ``src``/``dest`` carry ``pod_name`` and
  ``pod_namespace`` (or ``node_name``), and ``count`` says how many connections the entry stands
  for. VPC firewall rules logs (``connection`` plus ``disposition``) read the same way.
* ``reporter`` SRC/DEST: both ends of a flow report it when both are in logged subnets; records
  with the same 5-tuple in a ten-minute bucket are merged (counted as filtered duplicates). GCP
  logs each direction as its own record and does not say which one is the reply.
* Records are aggregated over an aggregation interval (5 s by default; 30 s to 15 min when
  configured) and sampled: ``start_time`` is the first *sampled* packet of the interval, so
  within one interval the reply's record can start before the request's (the SYN sampled away,
  the SYN-ACK kept). The table's :data:`~netpolgen.flows.TIME_WINDOW_ATTR` is that interval
  (``TIME_WINDOW_SECONDS``): direction inference lets time order decide only between records
  further apart (netpolgen.reduce.direction, rule d), as for AWS.
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
    frame_with_times,
    normalize_ip,
    protocol_name,
)
from netpolgen.ingest.jsonlines import (
    MAX_JSON_CHUNK,
    JSONLineError,
    first_json_values,
    iter_json_lines,
    read_json_document,
)
from netpolgen.ingest.report import IngestReport

# Both ends report a flow within one aggregation interval (5 s to 15 min; 10 min is typical).
_BUCKET = "600s"
# The default aggregation interval ("About VPC Flow Logs records": 5 s unless configured): the
# two directions of a connection sampled in one interval are in no reliable time order.
TIME_WINDOW_SECONDS = 5
_DISPOSITIONS = {"ALLOWED": "allowed", "ALLOW": "allowed", "DENIED": "denied", "DENY": "denied",
                 "DROPPED": "denied"}  # fmt: skip
_PROTOCOL_NAMES = {"TCP": "TCP", "UDP": "UDP", "SCTP": "SCTP", "ICMP": "ICMP", "ICMPV6": "ICMPv6",
                   "ICMP6": "ICMPv6"}  # fmt: skip
_COLUMNS = (
    "line", "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol",
    "src_namespace", "dst_namespace", "src_pod", "dst_pod", "src_kind", "dst_kind",
    "verdict", "bytes", "packets", "count",
)  # fmt: skip


def sniff(head: bytes) -> bool:
    """LogEntry lines from the vpc_flows log, bare jsonPayloads, or an array of entries."""
    stripped = head.lstrip()
    if stripped[:1] == b"[":
        return b'"connection"' in head and b'"dest_ip"' in head
    values = first_json_values(head)
    return bool(values) and all(isinstance(v, dict) and _is_gcp(v) for v in values)


def _is_gcp(value: dict[str, Any]) -> bool:
    if "vpc_flows" in str(value.get("logName", "")):
        return True
    payload = value.get("jsonPayload", value)
    connection = payload.get("connection") if isinstance(payload, dict) else None
    return isinstance(connection, dict) and "src_ip" in connection and "dest_ip" in connection


def read(
    stream: BinaryIO, source: str, report: IngestReport, chunk_size: int = 250_000
) -> Iterator[pd.DataFrame]:
    """Read GCP VPC flow-log entries into flow-table chunks (see the module docstring)."""
    chunk_size = max(1, min(chunk_size, MAX_JSON_CHUNK))
    rows: list[tuple[Any, ...]] = []
    seen = SeenConnections(_BUCKET)
    for line, value in _entries(stream, source):
        report.records_read += 1
        if isinstance(value, JSONLineError):
            report.skip("line is not valid JSON", source=source, line=line)
            continue
        row = _extract(value, line)
        if isinstance(row, str):
            report.skip(row, source=source, line=line)
            continue
        rows.append(row)
        if len(rows) >= chunk_size:
            yield _build(rows, source, report, seen)
            rows = []
    if rows:
        yield _build(rows, source, report, seen)


def _entries(stream: BinaryIO, source: str) -> Iterator[tuple[int, Any]]:
    if stream.peek(1).lstrip()[:1] == b"[":  # type: ignore[attr-defined]
        document = read_json_document(stream, source)
        # The array's records have no line numbers of their own: number them 1, 2, ...
        items = document if isinstance(document, list) else [document]
        yield from enumerate(items, 1)
        return
    yield from iter_json_lines(stream)


def _extract(entry: Any, line: int) -> tuple[Any, ...] | str:
    if not isinstance(entry, dict):
        return "not a JSON object"
    payload = entry.get("jsonPayload", entry)
    if not isinstance(payload, dict):
        return "jsonPayload is not an object"
    connection = payload.get("connection")
    if not isinstance(connection, dict):
        return "no jsonPayload.connection (not a VPC flow record)"
    src_ip = normalize_ip(str(connection.get("src_ip", "")))
    dst_ip = normalize_ip(str(connection.get("dest_ip", "")))
    if src_ip is None or dst_ip is None:
        return "connection.src_ip or connection.dest_ip is not an IP address"
    raw_protocol = connection.get("protocol")
    if isinstance(raw_protocol, str) and not raw_protocol.isdigit():
        protocol = _PROTOCOL_NAMES.get(raw_protocol.upper())  # Dataplane V2 writes "tcp"
    else:
        protocol = protocol_name(raw_protocol)
    if protocol is None and raw_protocol is not None:
        return "connection.protocol is neither an IANA number 0-255 nor a protocol name"
    ports = []
    for key in ("src_port", "dest_port"):
        port = _integer(connection.get(key))
        if port == -1 or (port is not None and port > 65535):
            return f"connection.{key} is not an integer 0-65535"
        ports.append(port or None)  # 0 is written for ICMP: no port
    if protocol in ("ICMP", "ICMPv6"):
        ports = [None, None]

    src = _endpoint(payload, "src")
    dst = _endpoint(payload, "dest")
    disposition = str(payload.get("disposition", "ALLOWED")).upper()
    verdict = _DISPOSITIONS.get(disposition, "unknown")
    time = (
        payload.get("start_time")
        or payload.get("timestamp")
        or entry.get("timestamp")
        or payload.get("end_time")
    )
    if time is not None and not isinstance(time, str):
        time = str(time)  # not RFC 3339 text: reported as a bad time when parsed
    bytes_sent = _integer(payload.get("bytes_sent"))
    packets_sent = _integer(payload.get("packets_sent"))
    count = _integer(payload.get("count"))
    return (
        line, time, src_ip, dst_ip, ports[0], ports[1], protocol,
        src[0], dst[0], src[1], dst[1], src[2], dst[2], verdict,
        None if bytes_sent == -1 else bytes_sent, None if packets_sent == -1 else packets_sent,
        count if count is not None and count > 0 else 1,
    )  # fmt: skip


def _integer(value: Any) -> int | None:
    """JSON number or int64-as-string -> int; None when absent; -1 when malformed."""
    if value is None:
        return None
    if isinstance(value, bool):
        return -1
    try:
        number = int(value)
    except (TypeError, ValueError):
        return -1
    return number if 0 <= number <= COUNTER_MAX else -1


def _endpoint(payload: dict[str, Any], side: str) -> tuple[str | None, str | None, str]:
    """``(namespace, pod, kind)`` from ``<side>_gke_details`` and the outside-peer fields."""
    details = payload.get(f"{side}_gke_details")
    if isinstance(details, dict):
        pod = details.get("pod")
        if isinstance(pod, dict) and pod.get("pod_namespace"):
            name = pod.get("pod_name") or None
            # No labels in the record: "unknown" until the inventory adds them (by pod name), so
            # that no rule selects a pod by its namespace alone.
            return str(pod["pod_namespace"]), (str(name) if name else None), "unknown"
        if details.get("cluster") is not None:
            return None, None, "node"  # a node IP or a hostNetwork pod
    # Dataplane V2 policy logs: "src"/"dest" objects.
    short = payload.get(side)
    if isinstance(short, dict):
        namespace = short.get("pod_namespace") or short.get("namespace")
        if short.get("pod_name") and namespace:
            return str(namespace), str(short["pod_name"]), "unknown"
        if short.get("node_name"):
            return None, None, "node"
    if payload.get(f"{side}_location") or payload.get(f"{side}_google_service"):
        return None, None, "world"
    return None, None, "unknown"


def _build(
    rows: list[tuple[Any, ...]], source: str, report: IngestReport, seen: SeenConnections
) -> pd.DataFrame:
    frame = frame_with_times(rows, _COLUMNS, source, report)
    frame = frame.drop(columns=["line"])
    for column in ("src_port", "dst_port"):
        frame[column] = pd.array(frame[column].tolist(), dtype="UInt16")
    for column in ("bytes", "packets", "count"):
        frame[column] = pd.array(frame[column].tolist(), dtype="Int64")
    frame = drop_noise(conform_flows(frame.reset_index(drop=True)), report)
    flows = collapse_observations(frame.reset_index(drop=True), report, bucket=_BUCKET, seen=seen)
    flows.attrs[TIME_WINDOW_ATTR] = TIME_WINDOW_SECONDS
    return flows
