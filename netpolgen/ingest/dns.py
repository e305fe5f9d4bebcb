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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from netpolgen.ingest.hubble import sniff
from netpolgen.ingest.jsonlines import JSON_ERRORS, loads
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES
from netpolgen.ingest.sources import STDIN, expand_directories, open_source, peek

CLUSTER_DOMAIN = "cluster.local"
# Cilium keeps an answered address at least this long (``--tofqdns-min-ttl``, default 3600 s)
# whatever the TTL: connections within it are still the name's.
MIN_TTL_SECONDS = 3600
_MAX_TTL_SECONDS = 7 * 24 * 3600  # 4294967295 (seen on NXDOMAIN answers) is no real TTL
_COLUMNS = ("ip", "name", "time", "expires")


def outside_name(
    query: str,
    client_namespace: str | None = None,
    cnames: Iterable[str] = (),
    cluster_domain: str = CLUSTER_DOMAIN,
) -> str | None:
    """The outside name ``query`` stands for, or None when it is a cluster name.

    Examples:
        >>> outside_name("API.Example.com.")
        'api.example.com'
        >>> outside_name("api.example.com.shop.svc.cluster.local.", "shop")
        'api.example.com'
        >>> outside_name("cart.shop.svc.cluster.local.", "shop") is None
        True
    """
    name = query.strip().rstrip(".").lower()
    if not name:
        return None
    domain = cluster_domain.strip(".").lower()
    if name != domain and not name.endswith("." + domain):
        return name
    # A CNAME out of the cluster domain (autopath, or an ExternalName Service) is the real name.
    for cname in cnames:
        target = outside_name(cname, None, (), cluster_domain)
        if target is not None and not target.endswith("." + domain):
            return target
    labels = name[: -len(domain) - 1].split(".") if name != domain else []
    # Kubernetes DNS records under the domain: <svc>.<ns>.svc, <host>.<svc>.<ns>.svc (headless),
    # <ip>.<ns>.pod. A search expansion appends "<ns>.svc", "svc" or nothing to the asked name;
    # what is left must have more labels than a record of the cluster could, else it is one.
    if client_namespace and labels[-2:] == [client_namespace.lower(), "svc"]:
        rest = labels[:-2]
        return ".".join(rest) if len(rest) >= 3 else None
    if labels[-1:] == ["svc"]:
        rest = labels[:-1]
        if len(rest) < 4:
            return None  # <svc>.<ns> or <host>.<svc>.<ns>
        if client_namespace is None:
            rest = rest[:-1]  # most likely the "<ns>.svc" step, tried first
        return ".".join(rest)
    if labels[-1:] == ["pod"] or len(labels) < 2:
        return None
    return ".".join(labels)


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


def dns_rows(event: Mapping[str, Any]) -> list[tuple[str, str, str | None, int | None]]:
    """``(ip, name, time, ttl seconds)`` from one Hubble event (``{"flow": ...}`` or a bare flow).

    This is the reader-side hook: ``netpolgen.ingest.hubble`` can call it on every event it parses
    (it is cheap on events without DNS) instead of the separate pass of :func:`read_dns_map`.
    """
    flow = event.get("flow", event)
    if not isinstance(flow, Mapping):
        return []
    time = flow.get("time") if isinstance(flow.get("time"), str) else None
    out: list[tuple[str, str, str | None, int | None]] = []
    l7 = flow.get("l7")
    dns = l7.get("dns") if isinstance(l7, Mapping) else None
    if isinstance(dns, Mapping) and dns.get("ips"):
        # The answer goes back to the client: the response's destination is the asking pod.
        client = flow.get("destination") if flow.get("l7", {}).get("type") == "RESPONSE" else None
        namespace = client.get("namespace") if isinstance(client, Mapping) else None
        cnames = [str(c) for c in dns.get("cnames") or [] if isinstance(c, str)]
        name = outside_name(str(dns.get("query") or ""), namespace, cnames)
        ttl = dns.get("ttl")
        ttl_seconds = int(ttl) if isinstance(ttl, int) and 0 <= ttl <= _MAX_TTL_SECONDS else None
        if name is not None:
            out.extend((str(ip), name, time, ttl_seconds) for ip in dns["ips"] if _is_ip(ip))
    ip_section = flow.get("IP")
    destination = ip_section.get("destination") if isinstance(ip_section, Mapping) else None
    names = flow.get("destination_names")
    if isinstance(names, list) and _is_ip(destination):
        source = flow.get("source")
        namespace = source.get("namespace") if isinstance(source, Mapping) else None
        for raw in names:
            if isinstance(raw, str) and (name := outside_name(raw, namespace)) is not None:
                out.append((str(destination), name, time, None))
    return out


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def dns_map_from_rows(rows: Iterable[tuple[str, str, str | None, int | None]]) -> DnsMap:
    """A :class:`DnsMap` from :func:`dns_rows` output (vectorised: one frame, one conversion)."""
    frame = pd.DataFrame(list(rows), columns=["ip", "name", "time", "ttl"])
    if frame.empty:
        return DnsMap()
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    ttl = pd.to_numeric(frame["ttl"], errors="coerce").fillna(0).clip(lower=MIN_TTL_SECONDS)
    frame["expires"] = frame["time"] + pd.to_timedelta(ttl, unit="s")
    frame = frame.drop(columns="ttl").drop_duplicates().sort_values(["ip", "name", "time"])
    return DnsMap(frame.reset_index(drop=True)[list(_COLUMNS)])


def _events(sources: Iterable[str | os.PathLike[str]]) -> Iterator[Mapping[str, Any]]:
    for source in sources:
        if str(source) == STDIN:
            continue  # standard input is read once, by the flow reader
        with open_source(str(source)) as (stream, _):
            if not sniff(peek(stream)):
                continue  # DNS events are Hubble's; other formats are not scanned
            for line in _dns_lines(stream):
                try:
                    value = loads(line)
                except JSON_ERRORS:
                    continue  # the flow reader reports malformed lines
                if isinstance(value, Mapping):
                    yield value


_TOKENS = (b'"dns"', b"destination_names")
_BLOCK = 1 << 22


def _dns_lines(stream: Any, max_line: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of ``stream`` that mention DNS. Most events carry none: whole blocks without
    either token are passed over by a byte search, never split into lines nor parsed. A line
    longer than ``max_line`` is dropped (the flow reader skips and counts it) without being held."""
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
        if any(token in data for token in _TOKENS):
            yield from (line for line in data.splitlines() if any(t in line for t in _TOKENS))
    if carry and not overlong and any(token in carry for token in _TOKENS):
        yield carry


def read_dns_map(sources: Iterable[str | os.PathLike[str]]) -> DnsMap:
    """The :class:`DnsMap` of the Hubble DNS events in ``sources`` (other formats give none).

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
    rows = [row for event in _events(expand_directories(sources)) for row in dns_rows(event)]
    return dns_map_from_rows(rows)
