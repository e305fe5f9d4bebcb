"""Outside peers as ``ipBlock``s: exact merging, optional widening, and protected ranges.

NetworkPolicy reaches anything that is not a pod selected by label only through ``ipBlock``.
One ``/32`` per address is exact but unreadable; merging adjacent addresses into their covering
CIDRs (``10.0.0.0/32`` + ``10.0.0.1/32`` = ``10.0.0.0/31``) stays exact. Widening to a shorter
prefix allows more than was seen, so it happens only when the user asks (``--cidr-prefix-min``),
and a widened block never covers addresses known to be inside the cluster: those go into the
block's ``except`` list (the API requires ``except`` entries to lie inside ``cidr``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from netpolgen.policy.model import IPBlock

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Addresses that show up in flows for a reason a reviewer should see next to the rule.
WELL_KNOWN_ADDRESSES = {
    "169.254.169.254": "cloud instance metadata service (also GKE's Cloud DNS resolver)",
    "169.254.20.10": "NodeLocal DNSCache",
    "fd00:ec2::254": "AWS instance metadata service (IPv6)",
}


def merge_addresses(
    addresses: Iterable[str],
    *,
    prefix_v4: int = 32,
    prefix_v6: int = 128,
    protected: Sequence[str] = (),
) -> list[IPBlock]:
    """CIDR blocks that cover ``addresses``.

    Args:
        addresses: IPv4/IPv6 addresses (or CIDRs) observed as peers.
        prefix_v4: widen each IPv4 address to at most this prefix length (32 = no widening).
        prefix_v6: the same for IPv6 (128 = no widening).
        protected: addresses or CIDRs that must stay out (pod, service and node ranges): where a
            widened block would cover one, it is listed under ``except``.

    Returns:
        Blocks sorted by address, IPv4 first; adjacent blocks are merged exactly.

    Examples:
        >>> [b.cidr for b in merge_addresses(["10.0.0.1", "10.0.0.0", "10.0.0.7"])]
        ['10.0.0.0/31', '10.0.0.7/32']
    """
    networks: list[IPNetwork] = []
    for address in addresses:
        network = _network(address)
        limit = prefix_v4 if network.version == 4 else prefix_v6
        if network.prefixlen > limit:
            network = network.supernet(new_prefix=limit)
        networks.append(network)
    guarded = [_network(p) for p in protected]
    observed = {_network(a) for a in addresses}
    blocks: list[IPBlock] = []
    for version in (4, 6):
        same = [n for n in networks if n.version == version]
        for network in ipaddress.collapse_addresses(same):  # type: ignore[type-var]
            inside = [
                g for g in guarded
                if g.version == version and g.subnet_of(network) and g != network  # type: ignore[arg-type]
                and not any(o.subnet_of(g) for o in observed if o.version == version)  # type: ignore[arg-type]
            ]  # fmt: skip
            excepted = ipaddress.collapse_addresses(inside)  # type: ignore[type-var]
            blocks.append(IPBlock(str(network), tuple(str(e) for e in excepted)))
    return blocks


@lru_cache(maxsize=65536)
def _network(text: str) -> IPNetwork:
    """``ipaddress.ip_network(text, strict=False)``, parsed once per text: every policy with an
    ``ipBlock`` is checked against the same protected ranges (the networks are immutable)."""
    return ipaddress.ip_network(text, strict=False)


def describe_address(cidr: str, notes: Mapping[str, str] | None = None) -> str | None:
    """Why an address is in a policy, if it is a known one (``notes`` first: the inventory's
    nodes, hostNetwork pods and API server; then well-known link-local services).

    A block wider than one address (``10.0.0.12/31``, merged from two nodes' addresses, or
    widened by ``--cidr-prefix-min``) is described by the known addresses it covers:
    ``covers 10.0.0.12 (node a), 10.0.0.13 (node b)``, in address order.
    """
    network = ipaddress.ip_network(cidr, strict=False)
    known = {**WELL_KNOWN_ADDRESSES, **(notes or {})}
    if network.num_addresses == 1:
        return known.get(str(network.network_address))
    inside = []
    for address, why in known.items():
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.version == network.version and ip in network:
            inside.append((ip, why))
    if not inside:
        return None
    return "covers " + ", ".join(f"{ip} ({why})" for ip, why in sorted(inside))
