"""Typed decoding of Hubble flow lines with msgspec: only the fields a policy needs are built.

A Hubble line is about 2 KB of JSON, most of it (ethernet, node labels, summaries, workloads)
irrelevant to a NetworkPolicy. ``orjson.loads`` builds all of it as Python objects; a msgspec
decoder for the structs below skips what it does not name, and keeps each endpoint as its raw
bytes, so that the ~20 distinct endpoints of a busy pod pair are decoded once, not once per line.
The reader hands it blocks of about 1 MB (:meth:`FastRows.block`), decoded by one
``decode_lines`` call, and :meth:`FastRows.answers` turns the envelopes into rows in one loop:
no Python call per line (msgspec's own cost per line is the same either way, ~1.2 us; what is
left is the ~1.5 us of Python a row takes). Lines one at a time (:meth:`FastRows.row`) are what
the reader uses for a block it cannot hand over whole (see ``iter_json_lines``).

This is an optimisation only. The reader (:func:`fast_row`) gives up on anything it is not
sure to read exactly as :func:`netpolgen.ingest.hubble.general.extract` does (a line that is not
plain ASCII, a field of an unexpected type, an ``l4`` with a second protocol, a bare legacy
flow, a Docker log wrapper, an event that is not a flow), and then takes the general path.
``tests/ingest/test_hubble_fast.py`` checks that both paths give the same rows. Without msgspec
installed (it is in the ``fast`` extra) every line takes the general path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from netpolgen.ingest.dns_answers import DnsRow, dns_rows
from netpolgen.ingest.fields import normalize_ip
from netpolgen.ingest.hubble.endpoints import EndpointTable
from netpolgen.ingest.hubble.general import (
    BAD_IP,
    BAD_PORT,
    ICMP_DIRECTION,
    L4_PROTOCOLS,
    NO_IP,
    POLICY_DROP_CODES,
    POLICY_DROP_REASONS,
    VERDICTS,
    BadLabels,
    Malformed,
)
from netpolgen.ingest.jsonlines import HANDLED, HANDLED_FULL, JSON_ERRORS, loads

try:
    import msgspec
except ImportError:  # pragma: no cover - exercised only without the extra
    msgspec = None  # type: ignore[assignment]


AVAILABLE = msgspec is not None

if msgspec is not None:
    _NULL = msgspec.Raw(b"null")

    class _Flags(msgspec.Struct, gc=False):
        SYN: bool = False
        ACK: bool = False

    class _L4Fields(msgspec.Struct, gc=False):
        """The fields of any ``l4`` protocol that the reader uses (ports; TCP flags; ICMP type)."""

        source_port: int | None = None
        destination_port: int | None = None
        flags: _Flags | None = None
        type: int = 0  # ICMP: echo reply (0) is protojson's omitted zero value

    class _IP(msgspec.Struct, gc=False):
        source: str | None = None
        destination: str | None = None

    class _Flow(msgspec.Struct, gc=False):
        time: str | None = None
        verdict: str | None = None
        IP: _IP | None = None
        # A protobuf oneof: one key, the protocol name (more than one: the general path).
        l4: dict[str, _L4Fields | None] | None = None
        source: msgspec.Raw = _NULL
        destination: msgspec.Raw = _NULL
        is_reply: bool | None = None
        reply: bool | None = None
        drop_reason_desc: str | None = None
        drop_reason: int | None = None
        # Kept as raw bytes, only to say whether the line carries DNS facts (dns_answers).
        l7: msgspec.Raw = _NULL
        destination_names: msgspec.Raw = _NULL

    class Envelope(msgspec.Struct, gc=False):
        """A ``GetFlowsResponse`` line; ``log``/``stream`` present mean a Docker log wrapper."""

        flow: _Flow | None = None
        time: str | None = None
        log: Any = msgspec.UNSET
        stream: Any = msgspec.UNSET

    _DECODER = msgspec.json.Decoder(Envelope)
    DECODE = _DECODER.decode
    # A block of lines in one call: one C loop, no Python step per line (msgspec >= 0.18).
    DECODE_LINES = getattr(_DECODER, "decode_lines", None)
    # Deeply nested input makes msgspec raise RecursionError: the general path reports it.
    ERRORS: tuple[type[Exception], ...] = (msgspec.MsgspecError, RecursionError)
    UNSET: Any = msgspec.UNSET
else:  # pragma: no cover
    DECODE = None
    DECODE_LINES = None
    ERRORS = ()
    UNSET = None


_TRANSPORT = frozenset({"TCP", "UDP", "SCTP"})
_ICMP_NAMES = {"ICMPv4": "ICMP", "ICMPv6": "ICMPv6"}


def fast_row(
    line: bytes, number: int, table: EndpointTable
) -> tuple[Any, ...] | BadLabels | Malformed | None:
    """:func:`~netpolgen.ingest.hubble.general.extract` on a line decoded by msgspec: the
    row, or :data:`NO_IP`, or why the record is malformed, or :class:`BadLabels`; None means:
    take the general path. Endpoints are coded in the reader's ``table``."""
    rows = FastRows(table)
    answer = rows.row(line, number)
    return rows.rows[-1] if answer is HANDLED or answer is HANDLED_FULL else answer


_MISSING: Any = object()


class FastRows:
    """:func:`fast_row` bound to one reader's table: the reader's per-line and per-block callbacks.

    The hot loop of the reader (:meth:`answers`) runs over envelopes that msgspec decoded a
    block of lines at a time (:meth:`block`): attribute reads, endpoints looked up by their
    bytes in the table's cache (one dictionary lookup each once an endpoint has been seen), and
    no Python call per line.
    """

    __slots__ = ("code_raw", "dns_events", "limit", "raw", "rows")

    def __init__(self, table: EndpointTable, limit: int = 1 << 62) -> None:
        # The table clears its dictionaries in place (EndpointTable.forget), so these stay its own.
        self.raw = table.raw
        self.code_raw = table.code_raw
        # The flows with an ``l7`` or ``destination_names`` field, for the reader to take their
        # DNS facts from (:meth:`dns_rows`): a few percent of a capture's lines.
        self.dns_events: list[dict[str, Any]] = []
        # The batch the rows go to (the reader's; it swaps in a new list when it takes one),
        # and the length at which the batch is full.
        self.rows: list[tuple[Any, ...]] = []
        self.limit = limit

    def row(self, line: bytes, number: int) -> Any:
        """:func:`fast_row`, except that a row is appended to :attr:`rows` and the answer is
        :data:`~netpolgen.ingest.jsonlines.HANDLED` (or ``HANDLED_FULL`` once :attr:`limit`
        rows are there): the per-line callback of ``iter_json_lines``."""
        # Non-ASCII text could hold invalid UTF-8 in a field msgspec skips without checking,
        # which the general parser rejects: such lines (rare in Hubble output) take the general
        # path.
        if DECODE is None or not line.isascii():
            return None
        try:
            envelope = DECODE(line)
        except ERRORS:
            return None
        for _, answer in self.answers((envelope,), number):
            return answer
        return HANDLED

    def block(self, piece: bytes, first: int, lines: int) -> Iterator[tuple[int, Any]] | None:
        """The per-block callback of ``iter_json_lines``: the ``lines`` lines of ``piece``
        (numbered from ``first``, every one an object, the text ASCII) decoded at once, or None
        when msgspec cannot decode them all as envelopes (the reader then takes the lines one by
        one, and reports the bad ones)."""
        if DECODE_LINES is None:
            return None
        try:
            envelopes = DECODE_LINES(piece)
        except ERRORS:
            return None
        if len(envelopes) != lines:
            return None  # two values on one line: not JSON lines (the reader says which)
        return self.answers(envelopes, first)

    def answers(self, envelopes: Sequence[Any], first: int) -> Iterator[tuple[int, Any]]:
        """Rows of ``envelopes`` (lines ``first``, ``first + 1``, ...) appended to :attr:`rows`;
        yields ``(line, answer)`` for each line that is not simply a row kept: the answer of
        :func:`fast_row` (None: take the general path), or ``HANDLED_FULL`` when the batch is
        full. A generator, so that the rows of later lines wait while the reader handles one."""
        raw = self.raw
        limit = self.limit
        number = first - 1
        for envelope in envelopes:
            number += 1
            # The reader may have taken the batch while a line was yielded to it.
            rows = self.rows
            flow = envelope.flow
            if flow is None or envelope.log is not UNSET or envelope.stream is not UNSET:
                yield number, None  # not a flow, a bare flow, or a Docker log wrapper
                continue
            if flow.l7 is not _NULL or flow.destination_names is not _NULL:
                # Taken even if the line goes on to the general path, which takes its facts
                # again: the DNS map drops repeated rows (dns_map_from_rows).
                self.dns_events.append(_dns_event(flow))
            ip = flow.IP
            if ip is None or ip.source is None or ip.destination is None:
                yield number, NO_IP
                continue
            src_ip, dst_ip = normalize_ip(ip.source), normalize_ip(ip.destination)
            if src_ip is None or dst_ip is None:
                yield number, Malformed(BAD_IP)
                continue

            src_port = dst_port = 0
            protocol = is_reply = None
            l4 = flow.l4
            if l4:
                if len(l4) != 1:
                    yield number, None  # the general path takes the first key, an order lost
                    continue
                ((name, fields),) = l4.items()
                if name in _TRANSPORT:
                    protocol = name
                    if fields is not None:
                        src_port, dst_port = fields.source_port or 0, fields.destination_port or 0
                        if not (0 <= src_port <= 65535 and 0 <= dst_port <= 65535):
                            yield number, Malformed(BAD_PORT)
                            continue
                        flags = fields.flags
                        if name == "TCP" and flags is not None and flags.SYN:
                            is_reply = flags.ACK
                elif name in _ICMP_NAMES:
                    protocol = _ICMP_NAMES[name]
                    icmp_type = fields.type if fields is not None else 0
                    is_reply = ICMP_DIRECTION.get((protocol, icmp_type))
                else:
                    protocol = L4_PROTOCOLS.get(name)

            if flow.is_reply is not None:
                is_reply = flow.is_reply
            elif flow.reply is True:
                is_reply = True

            verdict_text = flow.verdict
            verdict = (
                VERDICTS.get(verdict_text, "unknown") if verdict_text is not None else "unknown"
            )
            drop = False
            if verdict_text == "DROPPED":
                desc, code = flow.drop_reason_desc, flow.drop_reason
                if desc:
                    drop = desc not in POLICY_DROP_REASONS
                elif code:
                    drop = code not in POLICY_DROP_CODES
            key = bytes(flow.source)
            src = raw.get(key, _MISSING)
            if src is _MISSING:
                src = self.code_raw(key)
            key = bytes(flow.destination)
            dst = raw.get(key, _MISSING)
            if dst is _MISSING:
                dst = self.code_raw(key)
            if src is None or dst is None:
                yield number, None
                continue
            row = (
                number, flow.time or envelope.time, src_ip, dst_ip, src_port, dst_port, protocol,
                src[0], dst[0], verdict, is_reply, drop,
            )  # fmt: skip
            if src[1] or dst[1]:
                yield number, BadLabels(row, (src[1], dst[1]))
                continue
            rows.append(row)
            if len(rows) >= limit:
                yield number, HANDLED_FULL

    def dns_rows(self) -> list[DnsRow]:
        """The DNS facts of the flows kept in :attr:`dns_events` (which it empties)."""
        out: list[DnsRow] = []
        for event in self.dns_events:
            out.extend(dns_rows(event))
        self.dns_events.clear()
        return out


def _dns_event(flow: Any) -> dict[str, Any]:
    """The fields of a decoded flow that :func:`~netpolgen.ingest.dns_answers.dns_rows` reads,
    as it would find them in the whole line parsed: only these are parsed (``l7``,
    ``destination_names``, the endpoints), and no reference to the decoded block is kept."""
    event: dict[str, Any] = {"time": flow.time}
    try:
        for name in ("l7", "destination_names"):
            value = getattr(flow, name)
            if value is not _NULL:
                event[name] = loads(bytes(value))
        for name in ("source", "destination"):
            value = getattr(flow, name)
            if value is not _NULL:
                event[name] = _endpoint_namespace(bytes(value))
    except JSON_ERRORS:
        return {}  # as a line the JSON parser rejects: no facts
    if flow.IP is not None:
        event["IP"] = {"destination": flow.IP.destination}
    return event


@lru_cache(maxsize=4096)
def _endpoint_namespace(raw: bytes) -> Any:
    """An endpoint's raw JSON -> what ``dns_rows`` reads of it (its namespace), parsed once for
    the many DNS events of one pod."""
    value = loads(raw)
    return {"namespace": value.get("namespace")} if isinstance(value, Mapping) else value
