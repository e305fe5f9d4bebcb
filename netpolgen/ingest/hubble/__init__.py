"""Cilium Hubble flows: ``hubble observe -o json|jsonpb`` lines, bare flows, exporter files.

Shapes accepted (FORMATS.md §1.1): one JSON object per line, either the ``GetFlowsResponse``
envelope ``{"flow": {...}, "node_name": ..., "time": ...}`` (jsonpb, exporter) or a bare ``Flow``
object (the legacy ``-o json`` of hubble CLIs before v0.11). Lines whose oneof is not a flow
(``node_status``, ``lost_events``, ``agent_event``, ``debug_event``) are not flow records and are
not counted; lost events are reported, as they mean the capture is incomplete. CRI log prefixes
(the exporter writing to stdout of a pod) and Docker json-file wrappers are removed.

Field semantics (cilium ``api/v1/flow/flow.proto``, encoded with protojson and proto names):

* **Verdicts**: FORWARDED, REDIRECTED (to the L7/DNS proxy), TRANSLATED, TRACED and AUDIT are
  ``allowed``: the traffic was observed passing. AUDIT means a policy in audit mode *would* have
  dropped it, but it passed, and netpolgen wants exactly the traffic that really happens.
  DROPPED and ERROR are ``denied``, except drops for non-policy reasons (``drop_reason_desc``
  such as INVALID_SOURCE_IP, STALE_OR_UNROUTABLE_IP), which are datapath noise and filtered.
* **Direction**: ``is_reply`` (a BoolValue: absent means unknown), else the deprecated ``reply``
  (only ever present when true, protojson omits false), else TCP flags (SYN without ACK opens a
  connection, SYN+ACK answers it), else ICMP echo request/reply types.
* **Identity**: ``k8s:`` labels are the pod's labels (prefix stripped); Cilium's injected labels
  (``io.kubernetes.pod.namespace``, ``io.cilium.k8s.*``) are dropped. Reserved identities map to
  kinds: ``host`` -> host, ``remote-node`` -> node, ``world``/``cidr:``/``fqdn:`` -> world,
  ``kube-apiserver`` -> the node kind it is paired with, else world (an ipBlock either way).
  ``health`` flows are Cilium's own probes and are filtered.
* **Duplicates**: one connection is traced at several observation points (and as policy-verdict
  and L7 events); records with the same oriented 5-tuple within a minute are merged, within a
  chunk (64 MB of input, or the chunk size in records, whichever ends first) and against the
  connections of the previous chunk. Chunks are cut the same way whether one process reads the
  file or worker processes read its parts (:mod:`netpolgen.engine.local`).

Speed: plain flow lines take a typed msgspec fast path (:mod:`netpolgen.ingest.hubble.fast`)
that answers exactly as the general path below or declines the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from netpolgen.flows import ENDPOINT_KINDS, FLOW_COLUMNS, VERDICTS, conform_flows
from netpolgen.ingest.collapse import SeenConnections, collapse_observations
from netpolgen.ingest.fields import drop_noise, normalize_ip, text_to_time
from netpolgen.ingest.hubble import fast as hubble_fast
from netpolgen.ingest.jsonlines import (
    CUT,
    JSON_ERRORS,
    MAX_JSON_CHUNK,
    JSONLineError,
    LineCount,
    first_json_values,
    iter_json_lines,
    loads,
)
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sanitize import INVALID_LABELS
from netpolgen.labels import canonical_labels, is_valid_label_key, is_valid_label_value

# Observations of one connection at several points lie within microseconds; a minute is ample.
BUCKET = "60s"
NON_FLOW_EVENTS = ("node_status", "lost_events", "agent_event", "debug_event", "rate_limit_info")
_FLOW_KEYS = frozenset({"verdict", "IP", "l4", "source", "destination", "Type", "event_type"})

_VERDICTS = {
    "FORWARDED": "allowed",
    "REDIRECTED": "allowed",
    "TRANSLATED": "allowed",
    "TRACED": "allowed",
    "AUDIT": "allowed",
    "DROPPED": "denied",
    "ERROR": "denied",
}
# Drops that a network policy decided (flow.proto DropReason): the rest are datapath noise.
_POLICY_DROP_REASONS = frozenset({"POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED"})
_POLICY_DROP_CODES = frozenset({133, 181, 189})

_L4_PROTOCOLS = {
    "TCP": "TCP",
    "UDP": "UDP",
    "SCTP": "SCTP",
    "ICMPv4": "ICMP",
    "ICMPv6": "ICMPv6",
    "IGMP": "2",
    "VRRP": "112",
}
# ICMP echo request / reply types: request (8, ICMPv6 128) opens, reply (0, 129) answers.
_ICMP_DIRECTION = {("ICMP", 8): False, ("ICMP", 0): True, ("ICMPv6", 128): False,
                   ("ICMPv6", 129): True}  # fmt: skip

# Cilium's numeric reserved identities (pkg/identity/numericidentity.go).
_IDENTITY_KINDS = {1: "host", 2: "world", 4: "health", 6: "node", 7: "world", 9: "world",
                   10: "world"}  # fmt: skip
_LOCAL_IDENTITY_BASE = 1 << 24  # CIDR and FQDN identities: outside addresses
_INJECTED_LABELS = ("io.kubernetes.pod.namespace",)
_INJECTED_PREFIXES = ("io.cilium.k8s.",)

# An extracted row: ports are 0 when absent (protojson omits port 0, never a service port) and
# each endpoint is its code in the registry of distinct endpoints (see _endpoint_code).
_COLUMNS = (
    "line", "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol",
    "src_endpoint", "dst_endpoint", "verdict", "is_reply", "drop",
)  # fmt: skip


def sniff(head: bytes) -> bool:
    """Hubble output: JSON lines holding a flow envelope, a bare flow, or a non-flow event."""
    values = first_json_values(head)
    if not values:
        return False
    return all(isinstance(v, dict) and _is_hubble(v) for v in values)


def _is_hubble(value: dict[str, Any]) -> bool:
    if isinstance(value.get("flow"), dict) or any(k in value for k in NON_FLOW_EVENTS):
        return True
    # A bare flow: protojson keys in Cilium's mixed case, which no other format uses.
    return "verdict" in value and ("IP" in value or "l4" in value or "Type" in value)


# Chunks end at least every this many bytes (at a line end), whatever their row count: the parts
# that worker processes parse are these byte chunks (netpolgen.engine.local), so observations
# are merged within the same chunks in one process or in several.
CHUNK_BYTES = 64 << 20


def read(
    stream: BinaryIO, source: str, report: IngestReport, chunk_size: int = 250_000
) -> Iterator[pd.DataFrame]:
    """Read Hubble JSON lines into flow-table chunks (see the module docstring)."""
    seen = SeenConnections(BUCKET)
    for frame in merged_chunks(stream, source, report, chunk_size, CHUNK_BYTES):
        yield seen(frame, report)


def merged_chunks(
    stream: BinaryIO,
    source: str,
    report: IngestReport,
    chunk_size: int,
    chunk_bytes: int | None,
    lines: LineCount | None = None,
) -> Iterator[pd.DataFrame]:
    """Chunks with the repeated observations *within* each merged; :func:`read` then merges
    them against the previous chunk. Worker processes run this on their part of a file."""
    for rows in row_batches(stream, source, report, chunk_size, chunk_bytes, lines):
        frame = build(rows, source, report)
        yield collapse_observations(frame.reset_index(drop=True), report, bucket=BUCKET)


def row_batches(
    stream: BinaryIO,
    source: str,
    report: IngestReport,
    chunk_size: int,
    chunk_bytes: int | None = None,
    lines: LineCount | None = None,
) -> Iterator[list[tuple[Any, ...]]]:
    """The per-line part of :func:`read`: batches of extracted rows, cut every ``chunk_size``
    rows and at every ``chunk_bytes`` boundary of the input (see ``iter_json_lines``)."""
    chunk_size = max(1, min(chunk_size, MAX_JSON_CHUNK))
    rows: list[tuple[Any, ...]] = []
    lost = 0
    for line, value in iter_json_lines(
        stream, fast=_fast_row, chunk_bytes=chunk_bytes, lines=lines
    ):
        if type(value) is tuple:  # the fast path's row (JSON values are never tuples)
            report.records_read += 1
            if value is _NO_IP:
                report.records_used += 1
                report.filter(_NO_IP_REASON, 1)
                continue
            rows.append(value)
            if len(rows) >= chunk_size:
                yield rows
                rows = []
            continue
        if type(value) is Malformed:
            report.records_read += 1
            report.skip(value, source=source, line=line)
            continue
        if type(value) is BadLabels:
            report.records_read += 1
            _report_invalid_labels(value.per_side, report, source, line)
            rows.append(value.row)
            if len(rows) >= chunk_size:
                yield rows
                rows = []
            continue
        if value is CUT:
            if rows:
                yield rows
                rows = []
            continue
        if isinstance(value, JSONLineError):
            report.records_read += 1
            report.skip("line is not valid JSON", source=source, line=line)
            continue
        if not isinstance(value, dict):
            report.records_read += 1
            report.skip("not a JSON object", source=source, line=line)
            continue
        flow = value.get("flow")
        if flow is None:
            if any(key in value for key in NON_FLOW_EVENTS):
                lost += _lost_events(value)
                continue
            if _FLOW_KEYS & value.keys():
                flow = value  # a bare Flow (legacy -o json)
        report.records_read += 1
        if not isinstance(flow, dict):
            report.skip("not a Hubble flow record", source=source, line=line)
            continue
        row = _extract(flow, value, line)
        if row is _NO_IP:
            # Valid, but nothing a NetworkPolicy can use (ARP and other L2 events, socket
            # traces, an exporter field mask without IP): filtered, never a --strict error.
            report.records_used += 1
            report.filter(_NO_IP_REASON, 1)
            continue
        if isinstance(row, str):
            report.skip(row, source=source, line=line)
            continue
        _note_invalid_labels(flow, report, source, line)
        rows.append(row)
        if len(rows) >= chunk_size:
            yield rows
            rows = []
    if rows:
        yield rows
    if lost:
        report_lost(report, source, lost)


def report_lost(report: IngestReport, source: str, lost: int) -> None:
    """The note that Hubble lost events (the capture is incomplete)."""
    report.messages.append(
        f"{source}: Hubble reported {lost} lost event(s): the capture is incomplete"
    )


def _note_invalid_labels(
    flow: dict[str, Any], report: IngestReport, source: str, line: int
) -> None:
    """Report ``k8s:`` labels that are left out because Kubernetes would reject them."""
    bad = tuple(_endpoint_invalid_labels(flow.get(side)) for side in ("source", "destination"))
    _report_invalid_labels(bad, report, source, line)


def _report_invalid_labels(
    per_side: tuple[tuple[str, ...], ...], report: IngestReport, source: str, line: int
) -> None:
    for bad in per_side:
        if bad:
            report.note(
                INVALID_LABELS,
                f"{source}:{line}: invalid label(s) left out of selectors: {json.dumps(list(bad))}",
            )


def _endpoint_invalid_labels(endpoint: Any) -> tuple[str, ...]:
    raw = endpoint.get("labels") if isinstance(endpoint, dict) else None
    if not isinstance(raw, list) or not raw:
        return ()
    try:
        return _invalid_k8s_labels(tuple(raw))
    except TypeError:  # an unhashable item: not a label string at all
        return _invalid_k8s_labels(tuple(map(str, raw)))


@lru_cache(maxsize=16384)
def _invalid_k8s_labels(raw: tuple[Any, ...]) -> tuple[str, ...]:
    """The ``k8s:`` pod labels of ``raw`` that :func:`_labels` leaves out as invalid."""
    bad = []
    for item in map(str, raw):
        source, sep, rest = item.partition(":")
        if not sep or source != "k8s":
            continue
        key, _, val = rest.partition("=")
        if key in _INJECTED_LABELS or key.startswith(_INJECTED_PREFIXES):
            continue
        if not (is_valid_label_key(key) and is_valid_label_value(val)):
            bad.append(rest)
    return tuple(bad)


def _lost_events(value: dict[str, Any]) -> int:
    lost = value.get("lost_events")
    if not isinstance(lost, dict):
        return 0
    try:
        return int(lost.get("num_events_lost", 0))
    except (TypeError, ValueError):
        return 0


_NO_IP: tuple[Any, ...] = ()  # marker: a valid flow without an IP layer
_NO_IP_REASON = "flow without IP addresses (L2 event, socket trace, field mask)"


def _extract(flow: dict[str, Any], envelope: dict[str, Any], line: int) -> tuple[Any, ...] | str:
    """One flow -> a row tuple (see ``_COLUMNS``), :data:`_NO_IP`, or why it is malformed."""
    ip = flow.get("IP")
    if not isinstance(ip, dict):
        ip = {}
    src_ip, dst_ip = ip.get("source"), ip.get("destination")
    if src_ip is None or dst_ip is None:
        return _NO_IP
    src_ip, dst_ip = normalize_ip(str(src_ip)), normalize_ip(str(dst_ip))
    if src_ip is None or dst_ip is None:
        return "IP.source or IP.destination is not an IP address"

    protocol = src_port = dst_port = is_reply = None
    l4 = flow.get("l4")
    if isinstance(l4, dict) and l4:
        name, fields = next(iter(l4.items()))
        protocol = _L4_PROTOCOLS.get(name)
        fields = fields if isinstance(fields, dict) else {}
        if protocol in ("TCP", "UDP", "SCTP"):
            # Port 0 is omitted by protojson (zero value); it is never a service port anyway.
            src_port = _port(fields.get("source_port"))
            dst_port = _port(fields.get("destination_port"))
            if src_port == -1 or dst_port == -1:
                return "l4 port is not an integer 0-65535"
            if protocol == "TCP":
                is_reply = _tcp_direction(fields.get("flags"))
        elif protocol in ("ICMP", "ICMPv6"):
            icmp_type = fields.get("type", 0)  # echo reply (0) is the omitted zero value
            is_reply = (
                _ICMP_DIRECTION.get((protocol, icmp_type)) if isinstance(icmp_type, int) else None
            )

    # The record's own word beats the inference from flags.
    if isinstance(flow.get("is_reply"), bool):
        is_reply = flow["is_reply"]
    elif flow.get("reply") is True:
        is_reply = True

    verdict_text = flow.get("verdict")
    verdict = _VERDICTS.get(verdict_text, "unknown") if isinstance(verdict_text, str) else "unknown"
    drop = False
    if verdict == "denied" and verdict_text == "DROPPED":
        drop = not _policy_drop(flow)

    src = _endpoint_code(_endpoint(flow.get("source")))
    dst = _endpoint_code(_endpoint(flow.get("destination")))
    time = flow.get("time") or envelope.get("time")
    if time is not None and not isinstance(time, str):
        time = str(time)  # not RFC 3339 text: reported as a bad time when parsed
    return (
        line, time, src_ip, dst_ip, src_port or 0, dst_port or 0, protocol, src, dst, verdict,
        is_reply, drop,
    )  # fmt: skip


class Malformed(str):
    """Why :func:`_fast_row` found a record malformed (a JSON line may itself be a string)."""


class BadLabels:
    """What :func:`_fast_row` returns for a row it kept whose endpoints had invalid labels."""

    __slots__ = ("row", "per_side")

    def __init__(self, row: tuple[Any, ...], per_side: tuple[tuple[str, ...], ...]) -> None:
        self.row = row
        self.per_side = per_side


_TRANSPORT = frozenset({"TCP", "UDP", "SCTP"})
_DECODE, _DECODE_ERRORS, _UNSET = hubble_fast.DECODE, hubble_fast.ERRORS, hubble_fast.UNSET
_ICMP_NAMES = {"ICMPv4": "ICMP", "ICMPv6": "ICMPv6"}


def _fast_row(line: bytes, number: int) -> tuple[Any, ...] | BadLabels | Malformed | None:
    """:func:`_extract` on a line decoded by msgspec: the row, or :data:`_NO_IP`, or why the
    record is malformed, or :class:`BadLabels`; None means: take the general path.

    The hot loop of the reader: one decode, attribute reads, cached endpoints.
    """
    # Non-ASCII text could hold invalid UTF-8 in a field msgspec skips without checking, which
    # the general parser rejects: such lines (rare in Hubble output) take the general path.
    if _DECODE is None or not line.isascii():
        return None
    try:
        envelope = _DECODE(line)
    except _DECODE_ERRORS:
        return None
    flow = envelope.flow
    if flow is None or envelope.log is not _UNSET or envelope.stream is not _UNSET:
        return None  # an event that is not a flow, a bare flow, or a Docker log wrapper
    ip = flow.IP
    if ip is None or ip.source is None or ip.destination is None:
        return _NO_IP
    src_ip, dst_ip = normalize_ip(ip.source), normalize_ip(ip.destination)
    if src_ip is None or dst_ip is None:
        return Malformed("IP.source or IP.destination is not an IP address")

    src_port = dst_port = 0
    protocol = is_reply = None
    l4 = flow.l4
    if l4:
        if len(l4) != 1:
            return None  # the general path takes the first key, an order a dict has lost
        ((name, fields),) = l4.items()
        if name in _TRANSPORT:
            protocol = name
            if fields is not None:
                src_port, dst_port = fields.source_port or 0, fields.destination_port or 0
                if not (0 <= src_port <= 65535 and 0 <= dst_port <= 65535):
                    return Malformed("l4 port is not an integer 0-65535")
                flags = fields.flags
                if name == "TCP" and flags is not None and flags.SYN:
                    is_reply = flags.ACK
        elif name in _ICMP_NAMES:
            protocol = _ICMP_NAMES[name]
            is_reply = _ICMP_DIRECTION.get((protocol, fields.type if fields is not None else 0))
        else:
            protocol = _L4_PROTOCOLS.get(name)

    if flow.is_reply is not None:
        is_reply = flow.is_reply
    elif flow.reply is True:
        is_reply = True

    verdict_text = flow.verdict
    verdict = _VERDICTS.get(verdict_text, "unknown") if verdict_text is not None else "unknown"
    drop = False
    if verdict_text == "DROPPED":
        desc, code = flow.drop_reason_desc, flow.drop_reason
        if desc:
            drop = desc not in _POLICY_DROP_REASONS
        elif code:
            drop = code not in _POLICY_DROP_CODES
    src = _raw_endpoint(flow.source)
    dst = _raw_endpoint(flow.destination)
    if src is None or dst is None:
        return None
    row = (
        number, flow.time or envelope.time, src_ip, dst_ip, src_port, dst_port, protocol, src[0],
        dst[0], verdict, is_reply, drop,
    )  # fmt: skip
    if src[1] or dst[1]:
        return BadLabels(row, (src[1], dst[1]))
    return row


# Endpoints seen so far, as codes: one pod's endpoint repeats on every line of its flows, so rows
# carry a small integer and the endpoint columns are built by taking from the distinct values.
# Both tables are cleared between chunks once they grow past _ENDPOINTS_MAX (see build).
_Endpoint = tuple[str | None, str | None, str | None, str]
_ENDPOINT_CODES: dict[_Endpoint, int] = {}
_ENDPOINT_LIST: list[_Endpoint] = []
_RAW_ENDPOINTS: dict[bytes, tuple[int, tuple[str, ...]] | None] = {}
_ENDPOINTS_MAX = 1 << 16


def _endpoint_code(endpoint: _Endpoint) -> int:
    if not all(part is None or type(part) is str for part in endpoint):
        # A namespace or pod name of another JSON type (a list, a number): kept as its text, as
        # the string column would hold it, for the name checks to reject (sanitize.py).
        endpoint = tuple(p if p is None or type(p) is str else str(p) for p in endpoint)  # type: ignore[assignment]
    code = _ENDPOINT_CODES.get(endpoint)
    if code is None:
        code = _ENDPOINT_CODES[endpoint] = len(_ENDPOINT_LIST)
        _ENDPOINT_LIST.append(endpoint)
    return code


def _raw_endpoint(raw: Any) -> tuple[int, tuple[str, ...]] | None:
    """The code and the invalid labels of an endpoint's raw JSON, cached on its bytes.

    None when the bytes do not parse (the general path then reports the line).
    """
    key = bytes(raw)
    answer = _RAW_ENDPOINTS.get(key, False)
    if answer is not False:
        return answer  # type: ignore[return-value]
    try:
        value = loads(key)
    except JSON_ERRORS:
        answer = None
    else:
        answer = (_endpoint_code(_endpoint(value)), _endpoint_invalid_labels(value))
    _RAW_ENDPOINTS[key] = answer
    return answer


def _forget_endpoints() -> None:
    """Clear the endpoint tables if they grew large (only between chunks: rows hold codes)."""
    if len(_ENDPOINT_LIST) > _ENDPOINTS_MAX or len(_RAW_ENDPOINTS) > _ENDPOINTS_MAX:
        _ENDPOINT_CODES.clear()
        _ENDPOINT_LIST.clear()
        _RAW_ENDPOINTS.clear()


def _port(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535:
        return value or None
    return -1


def _tcp_direction(flags: Any) -> bool | None:
    if not isinstance(flags, dict) or not flags.get("SYN"):
        return None
    return bool(flags.get("ACK"))


def _policy_drop(flow: dict[str, Any]) -> bool:
    desc = flow.get("drop_reason_desc")
    if isinstance(desc, str) and desc:
        return desc in _POLICY_DROP_REASONS
    code = flow.get("drop_reason")
    if isinstance(code, int) and code:
        return code in _POLICY_DROP_CODES
    return True  # no reason given: take the verdict at its word


_PLAIN = (str, type(None))


def _endpoint(value: Any) -> tuple[str | None, str | None, str | None, str]:
    """``(namespace, pod, labels, kind)`` of a Hubble Endpoint.

    One pod's endpoint object repeats on every line of its flows, so the answer is cached on the
    fields it depends on; values of unusual types take the uncached path, so that no two
    different inputs share a cache entry (``1`` and ``True`` are equal keys in Python).
    """
    if not isinstance(value, dict):
        return None, None, None, "unknown"
    namespace, pod, identity = value.get("namespace"), value.get("pod_name"), value.get("identity")
    raw = value.get("labels")
    if (
        isinstance(namespace, _PLAIN)
        and isinstance(pod, _PLAIN)
        and (identity is None or type(identity) is int)
        and (raw is None or type(raw) is list)
    ):
        try:
            return _endpoint_cached(namespace, pod, identity, tuple(raw) if raw else ())
        except TypeError:  # an unhashable item in labels: malformed, take the long way
            pass
    return _endpoint_uncached(value)


@lru_cache(maxsize=65536)
def _endpoint_cached(
    namespace: str | None, pod: str | None, identity: int | None, raw: tuple[Any, ...]
) -> tuple[str | None, str | None, str | None, str]:
    fields: dict[str, Any] = {"namespace": namespace, "pod_name": pod, "identity": identity}
    fields["labels"] = list(raw)
    return _endpoint_uncached(fields)


def _endpoint_uncached(value: dict[str, Any]) -> tuple[str | None, str | None, str | None, str]:
    namespace = value.get("namespace") or None
    pod = value.get("pod_name") or None
    raw = value.get("labels")
    labels_list = tuple(str(v) for v in raw) if isinstance(raw, list) else ()
    labels, reserved_kind, labelled_namespace = _labels(labels_list)
    # Behind an L7 proxy (Istio, Cilium's Envoy) Hubble can name the identity without the
    # endpoint's namespace field; the identity's injected namespace label says it.
    namespace = namespace or labelled_namespace
    identity = value.get("identity")
    if reserved_kind is None and isinstance(identity, int):
        reserved_kind = _IDENTITY_KINDS.get(identity)
        if reserved_kind is None and identity >= _LOCAL_IDENTITY_BASE and namespace is None:
            reserved_kind = "world"
    if reserved_kind is not None:
        return None, None, None, reserved_kind
    # Kind "pod" means "selectable": it needs the labels. A pod named without them (a field
    # mask) stays "unknown" with its namespace and name, for the inventory to complete.
    if namespace is not None and labels:
        return namespace, pod, labels, "pod"
    return namespace, pod, labels, "unknown"


@lru_cache(maxsize=16384)
def _labels(raw: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """Cilium label strings -> (canonical pod labels, reserved kind, namespace), each or None."""
    pod_labels: dict[str, str] = {}
    reserved: set[str] = set()
    namespace: str | None = None
    for item in raw:
        source, sep, rest = item.partition(":")
        if not sep:
            continue
        key, _, val = rest.partition("=")
        if source == "reserved":
            reserved.add(key)
        elif source in ("cidr", "fqdn"):
            reserved.add("world")
        elif source == "k8s":
            if key == "io.kubernetes.pod.namespace":
                namespace = val or None
            if key in _INJECTED_LABELS or key.startswith(_INJECTED_PREFIXES):
                continue
            if is_valid_label_key(key) and is_valid_label_value(val):
                pod_labels[key] = val
    kind: str | None = None
    if "health" in reserved:
        kind = "health"
    elif "host" in reserved:
        kind = "host"
    elif "remote-node" in reserved:
        kind = "node"
    elif reserved & {"world", "world-ipv4", "world-ipv6", "kube-apiserver"}:
        kind = "world"
    elif reserved:
        kind = "unknown"  # init, unmanaged, ingress: nothing a NetworkPolicy can name
    return (canonical_labels(pod_labels) if pod_labels else None), kind, namespace


def build(rows: list[tuple[Any, ...]], source: str, report: IngestReport) -> pd.DataFrame:
    """Rows from :func:`row_batches` -> a conformed flow table, before merging observations.

    Column by column (vectorised): records whose time does not parse are skipped, then Cilium
    health checks and datapath drops are filtered, each counted in ``report``.
    """
    if not rows:
        return conform_flows(pd.DataFrame({name: [] for name in FLOW_COLUMNS}))
    columns = dict(zip(_COLUMNS, zip(*rows, strict=True), strict=True))
    count = len(rows)
    time_text = pd.Series(columns["time"], dtype=object)
    time = text_to_time(time_text)
    bad_time = (time.isna() & time_text.notna()).to_numpy()
    if bad_time.any():
        first = columns["line"][int(np.flatnonzero(bad_time)[0])]
        report.skip("time is not RFC 3339", source=source, line=first, count=int(bad_time.sum()))
    report.records_used += count - int(bad_time.sum())

    src = np.fromiter(columns["src_endpoint"], np.int64, count)
    dst = np.fromiter(columns["dst_endpoint"], np.int64, count)
    kinds = np.array([endpoint[3] for endpoint in _ENDPOINT_LIST], dtype=object)
    health_endpoint = kinds == "health"
    health = (health_endpoint[src] | health_endpoint[dst]) & ~bad_time
    if health.any():
        report.filter("Cilium health check", int(health.sum()))
    drop = np.fromiter(columns["drop"], bool, count)
    noise = drop & ~health & ~bad_time
    if noise.any():
        report.filter("dropped by the datapath, not by policy", int(noise.sum()))
    kept = np.flatnonzero(~(bad_time | health | drop))
    src, dst = src[kept], dst[kept]

    def objects(name: str) -> np.ndarray:
        return np.array(columns[name], dtype=object)[kept]

    def ports(name: str) -> pd.arrays.IntegerArray:
        values = np.fromiter(columns[name], np.int32, count)[kept]
        return pd.arrays.IntegerArray(values.astype(np.uint16), values == 0)

    frame: dict[str, Any] = {
        "time": time.to_numpy()[kept] if len(kept) < count else time.array,
        "src_ip": pd.array(objects("src_ip"), dtype="string"),
        "dst_ip": pd.array(objects("dst_ip"), dtype="string"),
        "src_port": ports("src_port"),
        "dst_port": ports("dst_port"),
        "protocol": objects("protocol"),
    }
    # Endpoint columns: the distinct endpoints' values, taken by code.
    for position, field in enumerate(("namespace", "pod", "labels")):
        values = pd.array([endpoint[position] for endpoint in _ENDPOINT_LIST], dtype="string")
        frame[f"src_{field}"] = values.take(src)
        frame[f"dst_{field}"] = values.take(dst)
    kind_codes = np.array([_KIND_CODES.get(kind, -1) for kind in kinds], dtype=np.int8)
    for side, codes in (("src", src), ("dst", dst)):
        frame[f"{side}_kind"] = pd.Categorical.from_codes(
            kind_codes[codes], categories=pd.Index(ENDPOINT_KINDS)
        )
    frame["verdict"] = pd.Categorical(objects("verdict"), categories=list(VERDICTS))
    frame["is_reply"] = pd.array(objects("is_reply"), dtype="boolean")
    _forget_endpoints()
    return drop_noise(conform_flows(pd.DataFrame(frame)), report)


_KIND_CODES = {kind: code for code, kind in enumerate(ENDPOINT_KINDS)}
