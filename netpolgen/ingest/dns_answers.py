"""The DNS facts of one Hubble event: which names an address was an answer for, and when.

Hubble reports what Cilium's DNS proxy sees as L7 events (``Type: L7``, ``event_type.type`` 129):
a ``RESPONSE`` carries ``l7.dns{query, ips[], ttl, cnames[], rcode}`` (``flow.proto`` of
cilium/cilium ``api/v1/flow``; /work/shared/FORMATS.md section 1), and with DNS visibility the
L3/L4 events to a resolved address carry ``destination_names[]`` from the agent's FQDN cache.
:func:`dns_rows` turns one event into rows ``(ip, name, time, ttl)``; the Hubble reader calls it
on the events it reads (so the DNS map comes out of the same pass as the flows), and
:func:`netpolgen.ingest.dns.read_dns_map` on the DNS lines of files. Names are normalised by
:func:`outside_name` (see :mod:`netpolgen.ingest.dns`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from netpolgen.ingest.jsonlines import JSON_ERRORS, loads

# (ip, name, time text or None, ttl seconds or None)
DnsRow = tuple[str, str, str | None, int | None]

CLUSTER_DOMAIN = "cluster.local"
# Cilium keeps an answered address at least this long (``--tofqdns-min-ttl``, default 3600 s)
# whatever the TTL: connections within it are still the name's.
MIN_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 7 * 24 * 3600  # 4294967295 (seen on NXDOMAIN answers) is no real TTL


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


# A line can hold a DNS fact only if it holds one of these (the field names).
DNS_TOKENS = (b'"dns"', b"destination_names")


def dns_rows_of_lines(lines: Iterable[bytes]) -> list[DnsRow]:
    """:func:`dns_rows` of each line (a JSON object) that holds a :data:`DNS_TOKENS` token;
    lines that are not JSON give none (the flow reader reports them)."""
    out: list[DnsRow] = []
    for line in lines:
        if DNS_TOKENS[0] not in line and DNS_TOKENS[1] not in line:
            continue
        try:
            value = loads(line)
        except JSON_ERRORS:
            continue
        if isinstance(value, Mapping):
            out.extend(dns_rows(value))
    return out


def dns_rows(event: Mapping[str, Any]) -> list[DnsRow]:
    """``(ip, name, time, ttl seconds)`` from one Hubble event (``{"flow": ...}`` or a bare flow).

    The Hubble reader calls it on the events that carry ``l7`` or ``destination_names``
    (:mod:`netpolgen.ingest.hubble`), so that the flows and the DNS map come out of one pass.
    """
    flow = event.get("flow", event)
    if not isinstance(flow, Mapping):
        return []
    time = flow.get("time") if isinstance(flow.get("time"), str) else None
    out: list[DnsRow] = []
    l7 = flow.get("l7")
    dns = l7.get("dns") if isinstance(l7, Mapping) else None
    if isinstance(dns, Mapping) and dns.get("ips"):
        # The answer goes back to the client: the response's destination is the asking pod.
        client = flow.get("destination") if flow.get("l7", {}).get("type") == "RESPONSE" else None
        namespace = client.get("namespace") if isinstance(client, Mapping) else None
        cnames = [str(c) for c in dns.get("cnames") or [] if isinstance(c, str)]
        name = _name(str(dns.get("query") or ""), namespace, tuple(cnames))
        ttl = dns.get("ttl")
        ttl_seconds = int(ttl) if isinstance(ttl, int) and 0 <= ttl <= MAX_TTL_SECONDS else None
        if name is not None:
            out.extend((str(ip), name, time, ttl_seconds) for ip in dns["ips"] if _is_ip(ip))
    ip_section = flow.get("IP")
    destination = ip_section.get("destination") if isinstance(ip_section, Mapping) else None
    names = flow.get("destination_names")
    if isinstance(names, list) and _is_ip(destination):
        source = flow.get("source")
        namespace = source.get("namespace") if isinstance(source, Mapping) else None
        for raw in names:
            if isinstance(raw, str) and (name := _name(raw, namespace, ())) is not None:
                out.append((str(destination), name, time, None))
    return out


def _name(query: str, namespace: Any, cnames: tuple[str, ...]) -> str | None:
    if namespace is None or isinstance(namespace, str):
        return _outside_name(query, namespace, cnames)
    return outside_name(query, namespace, cnames)  # an odd type: no cache key


# A capture asks for the same few names again and again: each answer is worked out once.
@lru_cache(maxsize=65536)
def _outside_name(query: str, namespace: str | None, cnames: tuple[str, ...]) -> str | None:
    return outside_name(query, namespace, cnames)


def _is_ip(value: Any) -> bool:
    return isinstance(value, str) and _is_ip_text(value)


@lru_cache(maxsize=65536)
def _is_ip_text(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
