"""Which DNS names an outside address was resolved from, learnt from Hubble's own DNS events.

Hubble reports what Cilium's DNS proxy sees as L7 events (``Type: L7``, ``event_type.type`` 129):
a ``RESPONSE`` carries ``l7.dns{query, ips[], ttl, cnames[], rcode}`` (``flow.proto`` of
cilium/cilium ``api/v1/flow``; /work/shared/FORMATS.md section 1), and with DNS visibility the
L3/L4 events to a resolved address carry ``destination_names[]`` from the agent's FQDN cache.
Both become rows ``(ip, name, time, expires)`` of a :class:`DnsMap`: an answer received at
``time`` holds for its ``ttl``; a ``destination_names`` entry holds at its event's time.

Names are normalised (:func:`outside_name`): lowercase, no trailing dot, and the pod's search
path undone. A pod in namespace ``N`` resolves ``api.example.com`` by first trying
``api.example.com.N.svc.cluster.local``, ``api.example.com.svc.cluster.local`` and
``api.example.com.cluster.local`` (``ndots:5`` in the resolv.conf Kubernetes writes, "DNS for
Services and Pods"); with CoreDNS's ``autopath`` the first of them is answered with a CNAME to the
real name and its addresses. Names inside the cluster domain that are no such expansion are
cluster names (Services, pods) and never name an outside peer.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from netpolgen.ingest.dns_answers import (
    CLUSTER_DOMAIN,
    DNS_TOKENS,
    MIN_TTL_SECONDS,
    DnsRow,
    dns_rows,
    dns_rows_of_lines,
    outside_name,
)
from netpolgen.ingest.hubble import sniff
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES
from netpolgen.ingest.sources import STDIN, expand_directories, open_source, peek

__all__ = [
    "CLUSTER_DOMAIN",
    "MIN_TTL_SECONDS",
    "DnsMap",
    "dns_map_from_rows",
    "dns_rows",
    "outside_name",
    "read_dns_map",
]
_COLUMNS = ("ip", "name", "time", "expires")


@dataclass(frozen=True)
class DnsMap:
    """Address -> names over time; ``table`` has columns ``ip``, ``name``, ``time``, ``expires``
    (UTC; NaT when the event had no time).

    Examples:
        >>> empty = DnsMap()
        >>> bool(empty), empty.names("203.0.113.7")
        (False, ())
    """

    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(_COLUMNS)))

    def __bool__(self) -> bool:
        return len(self.table) > 0

    def names(self, ip: str, at: pd.Timestamp | None = None) -> tuple[str, ...]:
        """The names ``ip`` was an answer for (at ``at``: answers received by then, not expired,
        with Cilium's minimum TTL), sorted."""
        rows = self.table[self.table["ip"] == ip]
        if at is not None and len(rows):
            known = rows["time"].notna()
            within = known & (rows["time"] <= at) & (rows["expires"] >= at)
            rows = rows[within | ~known]
        return tuple(sorted(set(rows["name"])))

    def names_in(self, cidr: str, until: pd.Timestamp | None = None) -> dict[str, tuple[str, ...]]:
        """``ip -> names`` for the answered addresses inside ``cidr`` (answered by ``until``)."""
        network = ipaddress.ip_network(cidr, strict=False)
        rows = self.table
        if until is not None:
            rows = rows[rows["time"].isna() | (rows["time"] <= until)]
        out: dict[str, set[str]] = {}
        for ip, name in zip(rows["ip"], rows["name"], strict=True):
            address = ipaddress.ip_address(ip)
            if address.version == network.version and address in network:
                out.setdefault(ip, set()).add(name)
        return {ip: tuple(sorted(names)) for ip, names in sorted(out.items())}

    def addresses(self, name: str) -> tuple[str, ...]:
        """Every address answered for ``name``."""
        return tuple(sorted(set(self.table.loc[self.table["name"] == name, "ip"])))


def dns_map_from_rows(rows: Iterable[DnsRow]) -> DnsMap:
    """A :class:`DnsMap` from :func:`dns_rows` output (vectorised: one frame, one conversion)."""
    frame = pd.DataFrame(list(rows), columns=["ip", "name", "time", "ttl"])
    if frame.empty:
        return DnsMap()
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    ttl = pd.to_numeric(frame["ttl"], errors="coerce").fillna(0).clip(lower=MIN_TTL_SECONDS)
    frame["expires"] = frame["time"] + pd.to_timedelta(ttl, unit="s")
    frame = frame.drop(columns="ttl").drop_duplicates().sort_values(["ip", "name", "time"])
    return DnsMap(frame.reset_index(drop=True)[list(_COLUMNS)])


def _source_dns_lines(sources: Iterable[str | os.PathLike[str]]) -> Iterator[bytes]:
    for source in sources:
        if str(source) == STDIN:
            continue  # standard input is read once, by the flow reader (its DNS facts: see above)
        with open_source(str(source)) as (stream, _):
            if not sniff(peek(stream)):
                continue  # DNS events are Hubble's; other formats are not scanned
            yield from _dns_lines(stream)


_BLOCK = 1 << 22


def _dns_lines(stream: Any, max_line: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of ``stream`` that mention DNS. Blocks are searched for
    the tokens by bytes.find (C), and only the lines around a hit are cut out: the lines
    without DNS are never split nor parsed. A line longer than ``max_line`` is dropped (the
    flow reader skips and counts it) without being held."""
    carry = b""
    overlong = False
    while block := stream.read(_BLOCK):
        cut = block.rfind(b"\n")
        if cut < 0:
            carry += block
            if len(carry) > max_line:
                carry, overlong = b"", True
            continue
        data, carry = carry + block[: cut + 1], block[cut + 1 :]
        if overlong:
            data, overlong = data[data.find(b"\n") + 1 :], False
        yield from token_lines(data)
    if carry and not overlong:
        yield from token_lines(carry)


def token_lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` (split as ``bytes.splitlines`` does) that hold a DNS token.

    Examples:
        >>> token_lines(b'{"a":1}\\n{"l7":{"dns":{}}}\\r\\n{"b":2}\\n')
        [b'{"l7":{"dns":{}}}']
    """
    lines: list[bytes] = []
    size = len(data)
    # The next hit of each token at or after ``position`` (-1: none left), searched again only
    # once passed, so that the whole search is one scan of the data per token.
    hits = [data.find(token) for token in DNS_TOKENS]
    position = 0
    while True:
        for index, hit in enumerate(hits):
            if 0 <= hit < position:
                hits[index] = data.find(DNS_TOKENS[index], position)
        found = [hit for hit in hits if hit >= 0]
        if not found:
            return lines
        hit = min(found)
        # Every line break is "\n", "\r" or "\r\n" (bytes.splitlines); the searches stay
        # within the line.
        start = max(data.rfind(b"\n", position, hit), data.rfind(b"\r", position, hit)) + 1
        end = data.find(b"\n", hit)
        end = size if end < 0 else end
        carriage = data.find(b"\r", hit, end)
        end = carriage if carriage >= 0 else end
        lines.append(data[max(start, position) : end])
        position = end + 1
        if position >= size:
            return lines


def read_dns_map(sources: Iterable[str | os.PathLike[str]]) -> DnsMap:
    """The :class:`DnsMap` of the Hubble DNS events in ``sources`` (other formats give none).

    ``netpolgen from-flows`` needs no second pass: its Hubble reader collects the same facts
    while it reads the flows (:attr:`netpolgen.GenerateResult.dns`). This function is for files
    on their own.

    Args:
        sources: flow files (gzip read transparently); ``-`` is skipped (it is read once, by the
            flow reader).

    Returns:
        The map; empty when the files hold no DNS answers.

    Examples:
        >>> read_dns_map(["hubble.jsonl"]).names("203.0.113.7")  # doctest: +SKIP
        ('api.example.com',)
    """
    # A directory stands for the files under it, as for every reader (ingest.sources).
    return dns_map_from_rows(dns_rows_of_lines(_source_dns_lines(expand_directories(sources))))
