"""DNS names for the outside peers of generated policies (from :mod:`netpolgen.ingest.dns`).

NetworkPolicy cannot name a DNS name, so with the ``k8s`` flavour the names only document the
``ipBlock`` peers, in the ``netpolgen.io/fqdns`` annotation (``<cidr>: <name>, <name>; ...``);
a policy none of whose blocks has a name is left as it is, byte for byte. The ``cilium`` flavour
replaces blocks all of whose addresses have names by ``toFQDNs`` (:func:`fqdn_peers`), when they
have at least ``--fqdn-min-names`` names (default 1; 0 keeps every block a CIDR). With ``k8s`` the
option changes nothing: the blocks stay, and their names stay in the annotation.

Time: only answers received by the policy's ``netpolgen.io/last-seen`` count (a later answer
cannot explain a connection that came before it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import replace

import pandas as pd

from netpolgen.ingest.dns import DnsMap
from netpolgen.policy.model import Policy

FQDNS_ANNOTATION = "netpolgen.io/fqdns"
_LAST_SEEN = "netpolgen.io/last-seen"


def _until(policy: Policy) -> pd.Timestamp | None:
    last = dict(policy.annotations).get(_LAST_SEEN)
    return pd.Timestamp(last) if last else None


def block_names(policy: Policy, dns: DnsMap) -> dict[str, tuple[str, ...]]:
    """``cidr -> names`` for the egress ipBlock peers of ``policy`` with answered addresses."""
    if not dns:
        return {}
    until = _until(policy)
    out: dict[str, tuple[str, ...]] = {}
    for rule in policy.egress:
        for peer in rule.peers:
            block = peer.ip_block
            if block is None or block.cidr in out:
                continue
            found = dns.names_in(block.cidr, until)
            excepted = [ipaddress.ip_network(c, strict=False) for c in block.except_]
            names = {
                name
                for ip, ip_names in found.items()
                if not any(ipaddress.ip_address(ip) in e for e in excepted)
                for name in ip_names
            }
            if names:
                out[block.cidr] = tuple(sorted(names))
    return out


def annotate_fqdns(policies: Iterable[Policy], dns: DnsMap) -> list[Policy]:
    """``policies`` with the names of their egress ipBlocks in ``netpolgen.io/fqdns``.

    Examples:
        >>> annotate_fqdns([], DnsMap())
        []
    """
    out = []
    for policy in policies:
        names = block_names(policy, dns)
        if names:
            text = "; ".join(f"{cidr}: {', '.join(n)}" for cidr, n in sorted(names.items()))
            annotations = tuple(
                sorted({**dict(policy.annotations), FQDNS_ANNOTATION: text}.items())
            )
            policy = replace(policy, annotations=annotations)
        out.append(policy)
    return out


def fqdn_peers(
    policy: Policy, dns: DnsMap, max_addresses: int = 256, *, min_names: int = 1
) -> dict[str, tuple[str, ...]]:
    """The egress blocks the ``cilium`` flavour writes as ``toFQDNs``: those every address of
    which (outside its ``except``) was answered for a name, and that have at least
    ``min_names`` distinct names (``--fqdn-min-names``; 0: none, every block stays a CIDR); a
    block that also holds unnamed addresses stays a CIDR, as the names would not cover them.
    (Adjacent observed addresses are merged into one block, so a block of several addresses is
    common.)"""
    out: dict[str, tuple[str, ...]] = {}
    if min_names < 1:
        return out
    named = {c: n for c, n in block_names(policy, dns).items() if len(n) >= min_names}
    until = _until(policy)
    for rule in policy.egress:
        for peer in rule.peers:
            block = peer.ip_block
            if block is None or block.cidr not in named or block.cidr in out:
                continue
            network = ipaddress.ip_network(block.cidr, strict=False)
            if network.num_addresses > max_addresses:
                continue
            excepted = [ipaddress.ip_network(c, strict=False) for c in block.except_]
            wanted = {str(a) for a in network if not any(a in e for e in excepted)}
            if wanted <= set(dns.names_in(block.cidr, until)):
                out[block.cidr] = named[block.cidr]
    return out
