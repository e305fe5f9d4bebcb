"""The general path: one Hubble flow, parsed by orjson into Python values, -> a row.

Every line the fast paths (:mod:`netpolgen.ingest.hubble.fast`) decline is read here, whatever
its field types; the fast paths must answer exactly as :func:`extract` does.

Field semantics (cilium ``api/v1/flow/flow.proto``, encoded with protojson and proto names):

* **Verdicts**: FORWARDED, REDIRECTED (to the L7/DNS proxy), TRANSLATED, TRACED and AUDIT are
  ``allowed``: the traffic was observed passing. AUDIT means a policy in audit mode *would* have
  dropped it, but it passed, and netpolgen wants exactly the traffic that really happens.
  DROPPED and ERROR are ``denied``, except drops for non-policy reasons (``drop_reason_desc``
  such as INVALID_SOURCE_IP, STALE_OR_UNROUTABLE_IP), which are datapath noise and filtered.
* **Direction**: ``is_reply`` (a BoolValue: absent means unknown), else the deprecated ``reply``
  (only ever present when true, protojson omits false), else TCP flags (SYN without ACK opens a
  connection, SYN+ACK answers it), else ICMP echo request/reply types.
"""

from __future__ import annotations

from typing import Any

from netpolgen.ingest.fields import normalize_ip
from netpolgen.ingest.hubble.endpoints import EndpointTable, endpoint_fields

VERDICTS = {
    "FORWARDED": "allowed",
    "REDIRECTED": "allowed",
    "TRANSLATED": "allowed",
    "TRACED": "allowed",
    "AUDIT": "allowed",
    "DROPPED": "denied",
    "ERROR": "denied",
}
# Drops that a network policy decided (flow.proto DropReason): the rest are datapath noise.
POLICY_DROP_REASONS = frozenset({"POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED"})
POLICY_DROP_CODES = frozenset({133, 181, 189})

L4_PROTOCOLS = {
    "TCP": "TCP",
    "UDP": "UDP",
    "SCTP": "SCTP",
    "ICMPv4": "ICMP",
    "ICMPv6": "ICMPv6",
    "IGMP": "2",
    "VRRP": "112",
}
# ICMP echo request / reply types: request (8, ICMPv6 128) opens, reply (0, 129) answers.
ICMP_DIRECTION = {("ICMP", 8): False, ("ICMP", 0): True, ("ICMPv6", 128): False,
                  ("ICMPv6", 129): True}  # fmt: skip

# An extracted row: ports are 0 when absent (protojson omits port 0, never a service port) and
# each endpoint is its code in the reader's EndpointTable.
COLUMNS = (
    "line", "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol",
    "src_endpoint", "dst_endpoint", "verdict", "is_reply", "drop",
)  # fmt: skip

NO_IP: tuple[Any, ...] = ()  # marker: a valid flow without an IP layer
NO_IP_REASON = "flow without IP addresses (L2 event, socket trace, field mask)"
BAD_IP = "IP.source or IP.destination is not an IP address"
BAD_PORT = "l4 port is not an integer 0-65535"


class Malformed(str):
    """Why a fast path found a record malformed (a JSON line may itself be a string)."""


class BadLabels:
    """What a fast path returns for a row it kept whose endpoints had invalid labels."""

    __slots__ = ("row", "per_side")

    def __init__(self, row: tuple[Any, ...], per_side: tuple[tuple[str, ...], ...]) -> None:
        self.row = row
        self.per_side = per_side


def extract(
    flow: dict[str, Any], envelope: dict[str, Any], line: int, table: EndpointTable
) -> tuple[Any, ...] | str:
    """One flow -> a row tuple (see ``COLUMNS``), :data:`NO_IP`, or why it is malformed."""
    ip = flow.get("IP")
    if not isinstance(ip, dict):
        ip = {}
    src_ip, dst_ip = ip.get("source"), ip.get("destination")
    if src_ip is None or dst_ip is None:
        return NO_IP
    src_ip, dst_ip = normalize_ip(str(src_ip)), normalize_ip(str(dst_ip))
    if src_ip is None or dst_ip is None:
        return BAD_IP

    protocol = src_port = dst_port = is_reply = None
    l4 = flow.get("l4")
    if isinstance(l4, dict) and l4:
        name, fields = next(iter(l4.items()))
        protocol = L4_PROTOCOLS.get(name)
        fields = fields if isinstance(fields, dict) else {}
        if protocol in ("TCP", "UDP", "SCTP"):
            # Port 0 is omitted by protojson (zero value); it is never a service port anyway.
            src_port = _port(fields.get("source_port"))
            dst_port = _port(fields.get("destination_port"))
            if src_port == -1 or dst_port == -1:
                return BAD_PORT
            if protocol == "TCP":
                is_reply = _tcp_direction(fields.get("flags"))
        elif protocol in ("ICMP", "ICMPv6"):
            icmp_type = fields.get("type", 0)  # echo reply (0) is the omitted zero value
            is_reply = (
                ICMP_DIRECTION.get((protocol, icmp_type)) if isinstance(icmp_type, int) else None
            )

    # The record's own word beats the inference from flags.
    if isinstance(flow.get("is_reply"), bool):
        is_reply = flow["is_reply"]
    elif flow.get("reply") is True:
        is_reply = True

    verdict_text = flow.get("verdict")
    verdict = VERDICTS.get(verdict_text, "unknown") if isinstance(verdict_text, str) else "unknown"
    drop = False
    if verdict == "denied" and verdict_text == "DROPPED":
        drop = not _policy_drop(flow)

    src = table.code(endpoint_fields(flow.get("source")))
    dst = table.code(endpoint_fields(flow.get("destination")))
    time = flow.get("time") or envelope.get("time")
    if time is not None and not isinstance(time, str):
        time = str(time)  # not RFC 3339 text: reported as a bad time when parsed
    return (
        line, time, src_ip, dst_ip, src_port or 0, dst_port or 0, protocol, src, dst, verdict,
        is_reply, drop,
    )  # fmt: skip


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
        return desc in POLICY_DROP_REASONS
    code = flow.get("drop_reason")
    if isinstance(code, int) and code:
        return code in POLICY_DROP_CODES
    return True  # no reason given: take the verdict at its word
