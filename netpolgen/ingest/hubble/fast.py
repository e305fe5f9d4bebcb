"""Typed decoding of Hubble flow lines with msgspec: only the fields a policy needs are built.

A Hubble line is about 2 KB of JSON, most of it (ethernet, node labels, summaries, workloads)
irrelevant to a NetworkPolicy. ``orjson.loads`` builds all of it as Python objects; a msgspec
decoder for the structs below skips what it does not name, and keeps each endpoint as its raw
bytes, so that the ~20 distinct endpoints of a busy pod pair are decoded once, not once per line.

This is an optimisation only. The reader (``hubble._fast_row``) gives up on anything it is not
sure to read exactly as ``hubble._extract`` does (a line that is not plain ASCII, a field of an
unexpected type, an ``l4`` with a second protocol, a bare legacy flow, a Docker log wrapper, an
event that is not a flow), and then takes the general path for that line.
``tests/ingest/test_hubble_fast.py`` checks that both paths give the same rows. Without msgspec
installed (it is in the ``fast`` extra) every line takes the general path.
"""

from __future__ import annotations

from typing import Any

try:
    import msgspec
except ImportError:  # pragma: no cover - exercised only without the extra
    msgspec = None  # type: ignore[assignment]


AVAILABLE = msgspec is not None

if msgspec is not None:
    _NULL = msgspec.Raw(b"null")

    class _Flags(msgspec.Struct):
        SYN: bool = False
        ACK: bool = False

    class _L4Fields(msgspec.Struct):
        """The fields of any ``l4`` protocol that the reader uses (ports; TCP flags; ICMP type)."""

        source_port: int | None = None
        destination_port: int | None = None
        flags: _Flags | None = None
        type: int = 0  # ICMP: echo reply (0) is protojson's omitted zero value

    class _IP(msgspec.Struct):
        source: str | None = None
        destination: str | None = None

    class _Flow(msgspec.Struct):
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

    class Envelope(msgspec.Struct):
        """A ``GetFlowsResponse`` line; ``log``/``stream`` present mean a Docker log wrapper."""

        flow: _Flow | None = None
        time: str | None = None
        log: Any = msgspec.UNSET
        stream: Any = msgspec.UNSET

    DECODE = msgspec.json.Decoder(Envelope).decode
    # Deeply nested input makes msgspec raise RecursionError: the general path reports it.
    ERRORS: tuple[type[Exception], ...] = (msgspec.MsgspecError, RecursionError)
    UNSET: Any = msgspec.UNSET
else:  # pragma: no cover
    DECODE = None
    ERRORS = ()
    UNSET = None
