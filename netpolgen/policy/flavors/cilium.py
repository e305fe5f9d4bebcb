"""``cilium.io/v2`` CiliumNetworkPolicy from the NetworkPolicy model.

One CiliumNetworkPolicy per NetworkPolicy, with the same namespace, name, labels and evidence
annotations. The translation follows Cilium's policy language reference (docs.cilium.io,
"Layer 3 Examples", "Layer 4 Examples", and the CRD of Cilium v1.18):

- ``podSelector`` -> ``endpointSelector``. A CiliumNetworkPolicy is namespaced: its
  ``endpointSelector`` only selects endpoints of its namespace, and a ``fromEndpoints``/
  ``toEndpoints`` selector without the ``k8s:io.kubernetes.pod.namespace`` label is limited to
  the policy's namespace too, exactly like a NetworkPolicy ``podSelector`` peer.
- ``namespaceSelector`` -> the namespace as an endpoint label: ``kubernetes.io/metadata.name``
  is ``k8s:io.kubernetes.pod.namespace``; other namespace labels are
  ``k8s:io.cilium.k8s.namespace.labels.<key>`` (Cilium copies them onto every endpoint). A
  selector over namespace labels alone also gets ``k8s:io.kubernetes.pod.namespace Exists``, so
  that it spans namespaces whatever Cilium's defaulting of the namespace does.
- ``ipBlock`` -> ``toCIDRSet``/``fromCIDRSet`` with ``except``. Cilium's CIDR rules never match
  addresses with a cluster identity (pods, nodes, the API server), as a NetworkPolicy ipBlock in
  practice never matches pods; an ipBlock that covers an address the evidence names as a node or
  the API server also gets ``toEntities: [host, remote-node]`` or ``[kube-apiserver]``, the
  identities Cilium gives those addresses (an exact ``/32`` of one becomes the entity alone).
- A rule with no peers (every peer) -> ``toEntities: [all]``: Cilium reads a rule without any L3
  member but with ``toPorts`` as every peer as well, but writing it out leaves nothing implicit.
- ``ports`` -> ``toPorts``: ``port`` is a string (a number or a container port name), ``endPort``
  a number, ``protocol`` ``TCP``/``UDP``/``SCTP``; a NetworkPolicy port without a number (every
  port of the protocol) is Cilium's wildcard ``port: "0"``. Each PortRule holds at most 40 ports
  (the CRD's ``maxItems: 40``): longer lists are split into several PortRules of one rule, which
  Cilium ORs.
- ``--world-as-entity`` (``world_as_entity``): an ``ipBlock`` of every address, ``0.0.0.0/0``
  or ``::/0`` -> ``toEntities``/``fromEntities: [world]``, Cilium's name for everything outside
  the cluster (both address families: a rule with ``0.0.0.0/0`` alone then also allows IPv6
  outside addresses). Its ``except`` entries are the cluster's own addresses (pods, nodes,
  Services, which generation never lets a widened block cover): Cilium gives those cluster
  identities, which ``world`` does not include, so they stay out. A block that excepts an
  address of ``outside_excepts`` (a guardrail's denied networks) stays a ``toCIDRSet``, as
  ``world`` would let that address in. Off by default: the CIDR form is exact.
- With a DNS map (``netpolgen.ingest.dns``), an egress ``ipBlock`` every address of which was
  answered for names, with at least ``fqdn_min_names`` names (``--fqdn-min-names``) ->
  ``toFQDNs``: ``matchName`` per name, or one ``matchPattern: "*.<parent>"`` when at least
  ``fqdn_pattern_min`` names (``--fqdn-pattern-min``) share a parent domain of two labels or
  more. Cilium
  learns the addresses of those names only from DNS answers its proxy sees, so a policy with
  ``toFQDNs`` also gets the documented DNS-visibility rule: the resolver on port 53 (any
  protocol) with ``rules: {dns: [{matchPattern: "*"}]}`` ("DNS Proxy" in Cilium's docs).
- A direction with no rules (a default deny) is ``[{}]``: Cilium's documented default-deny form,
  an empty rule that selects no peer but puts the direction under enforcement.

Cilium allows no mixing of ``toEndpoints``, ``toCIDRSet`` and ``toEntities`` in one rule, so one
NetworkPolicy rule becomes up to three Cilium rules with the same ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netpolgen.ingest.dns import DnsMap
from netpolgen.policy.fqdn import fqdn_peers
from netpolgen.policy.model import IPBlock, Peer, Policy, PortSpec, Rule
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelSelector

CILIUM_API_VERSION = "cilium.io/v2"
CILIUM_KIND = "CiliumNetworkPolicy"
POD_NAMESPACE_LABEL = "k8s:io.kubernetes.pod.namespace"
NAMESPACE_LABELS_PREFIX = "k8s:io.cilium.k8s.namespace.labels."
MAX_PORTS_PER_RULE = 40  # PortRule.ports maxItems in the CRD
WILDCARD_PORT = "0"
APISERVER = "kube-apiserver"
NODE_ENTITIES = ("host", "remote-node")
_IP_BLOCKS_ANNOTATION = "netpolgen.io/ip-blocks"


@dataclass(frozen=True)
class CiliumOptions:
    """What the Cilium rendering knows beyond the policies.

    Attributes:
        entities: address -> the Cilium entities it belongs to (``kube-apiserver``, ``host``,
            ``remote-node``). Empty: read from each policy's ``netpolgen.io/ip-blocks``
            annotation (the inventory's nodes and API server Service).
        dns: the DNS map of the same logs; single-address egress peers with names become
            ``toFQDNs`` (see the module docstring).
        fqdn_pattern_min: this many names or more under one parent domain become one
            ``matchPattern: "*.<parent>"``.
        fqdn_min_names: a block becomes ``toFQDNs`` only with at least this many names
            (0: never).
        world_as_entity: ``0.0.0.0/0`` and ``::/0`` become the ``world`` entity.
        outside_excepts: networks that an ``except`` keeps out and ``world`` would let in
            (a guardrail's denied networks): a block excepting one stays a CIDR set.
    """

    entities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dns: DnsMap | None = None
    fqdn_pattern_min: int = 3
    fqdn_min_names: int = 1
    world_as_entity: bool = False
    outside_excepts: tuple[str, ...] = ()


def entities_from_annotations(policy: Policy) -> dict[str, tuple[str, ...]]:
    """Addresses the policy's evidence annotation names as nodes or the API server."""
    text = dict(policy.annotations).get(_IP_BLOCKS_ANNOTATION, "")
    found: dict[str, tuple[str, ...]] = {}
    for note in text.split("; ") if text else ():
        cidr, _, why = note.partition(": ")
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        if network.num_addresses != 1:
            continue
        address = str(network.network_address)
        if why.startswith("Kubernetes API server"):
            found[address] = (APISERVER,)
        elif why.startswith(("node ", "hostNetwork pod")):
            found[address] = NODE_ENTITIES
    return found


def cilium_manifest(policy: Policy, options: CiliumOptions) -> dict[str, Any]:
    """The CiliumNetworkPolicy for ``policy`` (see the module docstring for the mapping)."""
    entities = dict(options.entities) or entities_from_annotations(policy)
    fqdns = (
        fqdn_peers(policy, options.dns, min_names=options.fqdn_min_names)
        if options.dns is not None
        else {}
    )
    metadata: dict[str, Any] = {"name": policy.name, "namespace": policy.namespace}
    if policy.labels:
        metadata["labels"] = dict(policy.labels)
    if policy.annotations:
        metadata["annotations"] = dict(policy.annotations)
    spec: dict[str, Any] = {"endpointSelector": _selector(policy.pod_selector)}
    for direction, rules in (("Ingress", policy.ingress), ("Egress", policy.egress)):
        if direction not in policy.policy_types:
            continue
        prefix = "from" if direction == "Ingress" else "to"
        out: list[dict[str, Any]] = []
        for rule in rules:
            out.extend(_rules(rule, prefix, entities, fqdns if prefix == "to" else {}, options))
        if any("toFQDNs" in rule for rule in out):
            out.append(_dns_proxy_rule(policy))
        spec[direction.lower()] = out or [{}]
    return {
        "apiVersion": CILIUM_API_VERSION,
        "kind": CILIUM_KIND,
        "metadata": metadata,
        "spec": spec,
    }


def _selector(selector: LabelSelector, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    out = selector.to_manifest()
    if extra:
        out["matchLabels"] = {**out.get("matchLabels", {}), **extra}
    return out


def _namespace_key(key: str) -> str:
    return POD_NAMESPACE_LABEL if key == NAMESPACE_NAME_LABEL else NAMESPACE_LABELS_PREFIX + key


def _endpoint_selector(peer: Peer) -> dict[str, Any]:
    pods = peer.pod_selector or LabelSelector()
    out = pods.to_manifest()
    namespaces = peer.namespace_selector
    if namespaces is None:
        return out  # the policy's own namespace, implied by Cilium as by Kubernetes
    labels = dict(out.get("matchLabels", {}))
    expressions = list(out.get("matchExpressions", []))
    for key, value in namespaces.match_labels:
        labels[_namespace_key(key)] = value
    for requirement in namespaces.match_expressions:
        item: dict[str, Any] = {
            "key": _namespace_key(requirement.key),
            "operator": requirement.operator,
        }
        if requirement.values:
            item["values"] = list(requirement.values)
        expressions.append(item)
    keys = set(labels) | {e["key"] for e in expressions}
    if POD_NAMESPACE_LABEL not in keys:
        # Any namespace (an empty namespaceSelector, or one over other namespace labels).
        expressions.append({"key": POD_NAMESPACE_LABEL, "operator": "Exists"})
    result: dict[str, Any] = {}
    if labels:
        result["matchLabels"] = dict(sorted(labels.items()))
    if expressions:
        result["matchExpressions"] = expressions
    return result


def _covered(block: IPBlock, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    network = ipaddress.ip_network(block.cidr, strict=False)
    if ip.version != network.version or ip not in network:
        return False
    return not any(
        ip in (e := ipaddress.ip_network(c, strict=False)) and ip.version == e.version
        for c in block.except_
    )


def _is_exactly(block: IPBlock, address: str) -> bool:
    network = ipaddress.ip_network(block.cidr, strict=False)
    return network.num_addresses == 1 and str(network.network_address) == address


def _rules(
    rule: Rule,
    prefix: str,
    entities: Mapping[str, tuple[str, ...]],
    fqdns: Mapping[str, tuple[str, ...]],
    options: CiliumOptions,
) -> list[dict[str, Any]]:
    endpoints: list[dict[str, Any]] = []
    cidrs: list[dict[str, Any]] = []
    named: set[str] = set()
    names: set[str] = set()
    if not rule.peers:
        named.add("all")
    for peer in rule.peers:
        block = peer.ip_block
        if block is None:
            endpoints.append(_endpoint_selector(peer))
            continue
        if block.cidr in fqdns:
            names.update(fqdns[block.cidr])
            continue
        covered = [a for a in sorted(entities) if _covered(block, a)]
        for address in covered:
            named.update(entities[address])
        if len(covered) == 1 and _is_exactly(block, covered[0]):
            continue
        if options.world_as_entity and _is_world(block, options.outside_excepts):
            named.add("world")
            continue
        cidrs.append(block.to_manifest())
    ports = _port_rules(rule.ports)
    out: list[dict[str, Any]] = []
    for key, members in (
        (f"{prefix}Endpoints", endpoints),
        (f"{prefix}CIDRSet", cidrs),
        (f"{prefix}Entities", sorted(named)),
        (f"{prefix}FQDNs", _fqdn_selectors(names, options.fqdn_pattern_min)),
    ):
        if members:
            item: dict[str, Any] = {key: members}
            if ports:
                item["toPorts"] = ports
            out.append(item)
    return out


_EVERY_ADDRESS = ("0.0.0.0/0", "::/0")


def _is_world(block: IPBlock, outside_excepts: tuple[str, ...]) -> bool:
    """Whether ``block`` is every address and excepts nothing ``world`` would let in."""
    if block.cidr not in _EVERY_ADDRESS:
        return False
    keep = [ipaddress.ip_network(c, strict=False) for c in outside_excepts]
    for text in block.except_:
        excepted = ipaddress.ip_network(text, strict=False)
        if any(k.version == excepted.version and k.overlaps(excepted) for k in keep):
            return False
    return True


def _port(spec: PortSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"port": WILDCARD_PORT if spec.port is None else str(spec.port)}
    if spec.end_port is not None:
        out["endPort"] = spec.end_port
    out["protocol"] = spec.protocol
    return out


def _port_rules(ports: tuple[PortSpec, ...]) -> list[dict[str, Any]]:
    items = [_port(p) for p in ports]
    return [
        {"ports": items[start : start + MAX_PORTS_PER_RULE]}
        for start in range(0, len(items), MAX_PORTS_PER_RULE)
    ]


def _fqdn_selectors(names: set[str], pattern_min: int) -> list[dict[str, str]]:
    by_parent: dict[str, list[str]] = {}
    for name in sorted(names):
        parent = name.partition(".")[2]
        by_parent.setdefault(parent if parent.count(".") >= 1 else "", []).append(name)
    out: list[dict[str, str]] = []
    for parent, members in sorted(by_parent.items()):
        if parent and len(members) >= pattern_min:
            out.append({"matchPattern": f"*.{parent}"})
        else:
            out.extend({"matchName": name} for name in members)
    return out


_DEFAULT_RESOLVER = {POD_NAMESPACE_LABEL: "kube-system", "k8s:k8s-app": "kube-dns"}


def _dns_proxy_rule(policy: Policy) -> dict[str, Any]:
    """The resolver on port 53 through Cilium's DNS proxy; the resolver is the one the
    policy's own DNS rule names (the inventory's CoreDNS pods, say), else kube-dns."""
    selector: dict[str, Any] = {"matchLabels": dict(_DEFAULT_RESOLVER)}
    for rule in policy.egress:
        ports = {(p.protocol, p.port) for p in rule.ports}
        if ports == {("TCP", 53), ("UDP", 53)} and rule.peers and rule.peers[0].ip_block is None:
            selector = _endpoint_selector(rule.peers[0])
            break
    return {
        "toEndpoints": [selector],
        "toPorts": [
            {
                "ports": [{"port": "53", "protocol": "ANY"}],
                "rules": {"dns": [{"matchPattern": "*"}]},
            }
        ],
    }
