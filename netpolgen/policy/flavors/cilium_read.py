"""Reading ``cilium.io/v2`` CiliumNetworkPolicy into the policy model, for verify, diff, migrate.

What :mod:`.cilium` writes, and the same L3/L4 allow subset when written by hand, becomes
:class:`~netpolgen.policy.model.Policy` objects that :class:`~netpolgen.policy.semantics.Evaluator`
decides exactly as Cilium would (the semantics of :mod:`.cilium_eval`, whose docstring cites
Cilium's policy reference), given what the cluster says the addresses are:

- ``endpointSelector`` -> ``podSelector`` (a CiliumNetworkPolicy selects its own namespace's
  endpoints only; a selector over the namespace's labels is decided on that namespace).
- ``fromEndpoints``/``toEndpoints``: pod labels stay a ``podSelector``; the
  ``io.kubernetes.pod.namespace`` key becomes ``kubernetes.io/metadata.name`` and
  ``io.cilium.k8s.namespace.labels.<key>`` the namespace label ``<key>`` of a
  ``namespaceSelector``; without the namespace key the peer is the policy's namespace (also when
  it names namespace labels: then that namespace must carry them). Label sources ``k8s:`` and
  ``any:`` (or none) are read; others (``reserved:``, ``cidr:``) are outside the subset.
- CIDR rules (``toCIDR``, ``toCIDRSet`` with ``except``) never match addresses with a cluster
  identity: the addresses of nodes and of the API server are added to the block's ``except``.
- Entities stand for the addresses they name: ``world`` every address but those (``0.0.0.0/0``
  and ``::/0`` less them), ``cluster`` every pod plus them, ``remote-node`` the nodes,
  ``kube-apiserver`` the API server, ``all`` every peer (a rule without peers). ``host`` is the
  pod's own node, whose traffic verify never checks (NetworkPolicy cannot block it either): it
  adds no address. ``none`` matches nothing; ``health``, ``init``, ``ingress`` and ``unmanaged``
  are Cilium's own endpoints, which flows never resolve to: nothing, with a note.
- ``toFQDNs``: the addresses the DNS map of the same logs answered for a matching name (each as a
  ``/32`` or ``/128``), cluster identities excepted, whenever in the logs the answer came (Cilium
  allows an address from the moment its proxy sees the answer; verify's edges carry no time);
  without DNS answers (diff has no flows), the addresses the policy's own
  ``netpolgen.io/fqdns`` annotation gives the names, with a note; without either, none (with a
  note).
- ``toPorts``: ``protocol`` ``ANY`` or missing is TCP, UDP and SCTP (Cilium matches no ICMP by
  port); ``port: "0"`` every port; ``endPort`` a range; a name the destination's container port.
  L7 ``rules`` are read at L3/L4 (the connection passes; the L7 filter may still refuse
  requests, which flow logs cannot show): a note, except for the DNS rules of :mod:`.cilium`.
- A direction is enforced when the section has rules, even ``[{}]`` (which matches no peer);
  ``ingress: []`` enforces nothing ("If omitted or empty, this rule does not apply", the CRD).

A ``CiliumClusterwideNetworkPolicy`` is read as one policy per namespace of the inventory
(``clusterwide:<name>`` in each), its selectors spanning namespaces (Cilium adds no namespace
to a clusterwide policy's selectors); without an inventory it is an error.

Outside that subset (deny sections, ``enableDefaultDeny: false``, ``toServices``, ``toGroups``,
``toRequires``, ``toNodes``, ``icmps``, ``authentication``, ``nodeSelector``, CIDR groups) a
policy cannot be decided from our model: reading it is an error naming the construct, never an
allow-all or deny-all guess.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from netpolgen.errors import PolicyParseError
from netpolgen.ingest.dns import DnsMap
from netpolgen.policy.flavors.cilium import (
    APISERVER,
    CILIUM_API_VERSION,
    CILIUM_KIND,
    WILDCARD_PORT,
    entities_from_annotations,
)
from netpolgen.policy.flavors.cilium_eval import fqdn_matches
from netpolgen.policy.fqdn import FQDNS_ANNOTATION
from netpolgen.policy.model import IPBlock, Peer, Policy, PortSpec, Rule
from netpolgen.selectors import NAMESPACE_NAME_LABEL, LabelRequirement, LabelSelector

__all__ = ["CiliumContext", "cilium_policies", "entities_from_inventory", "is_cilium_policy"]

CLUSTERWIDE_KIND = "CiliumClusterwideNetworkPolicy"
_POD_NAMESPACE = "io.kubernetes.pod.namespace"
_NAMESPACE_LABELS = "io.cilium.k8s.namespace.labels."
_POLICY_LABELS = "io.cilium.k8s.policy."
_SOURCES = ("k8s", "any")
_ANY_PROTOCOLS = ("TCP", "UDP", "SCTP")
_REMOTE_NODE = "remote-node"
_UNSEEN_ENTITIES = ("health", "init", "ingress", "unmanaged")
_SPEC_KEYS = {"endpointSelector", "ingress", "egress", "enableDefaultDeny", "description",
              "labels", "log"}  # fmt: skip
_MEMBERS = ("Endpoints", "CIDR", "CIDRSet", "Entities", "FQDNs")
_PORT_RULE_L7 = ("listener", "originatingTLS", "terminatingTLS", "serverNames")


# A rule that matches no peer: no namespace lacks kubernetes.io/metadata.name (the API server
# sets it on every namespace).
NO_PEER_RULE = Rule(
    peers=(
        Peer(
            namespace_selector=LabelSelector(
                match_expressions=(LabelRequirement(NAMESPACE_NAME_LABEL, "DoesNotExist", ()),)
            )
        ),
    )
)


@dataclass
class CiliumContext:
    """What reading CiliumNetworkPolicy needs beyond the manifests.

    Attributes:
        entities: address -> its Cilium entities (``kube-apiserver``, ``host``, ``remote-node``),
            from the inventory (:func:`entities_from_inventory`). Empty: each policy's own
            ``netpolgen.io/ip-blocks`` annotation, as the ``cilium`` flavour wrote it.
        dns: the DNS map of the flows, or a function that reads it (called once, when a policy
            has ``toFQDNs``).
        namespace_labels: labels per namespace (for ``endpointSelector`` over them).
    """

    entities: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dns: DnsMap | Callable[[], DnsMap] | None = None
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @cached_property
    def dns_map(self) -> DnsMap:
        if self.dns is None:
            return DnsMap()
        return self.dns if isinstance(self.dns, DnsMap) else self.dns()


def entities_from_inventory(inventory: Any) -> dict[str, tuple[str, ...]]:
    """Address -> Cilium entities for the inventory's nodes, hostNetwork pods (their node's
    address) and the API server's Service, as the ``cilium`` flavour reads them."""
    from netpolgen.identity.owners import address_notes

    found: dict[str, tuple[str, ...]] = {}
    for address, why in address_notes(inventory).items():
        if why.startswith("Kubernetes API server"):
            found[address] = (APISERVER,)
        elif why.startswith(("node ", "hostNetwork pod")):
            found[address] = ("host", _REMOTE_NODE)
    return found


def is_cilium_policy(document: Mapping[str, Any]) -> bool:
    """Whether a document is a ``cilium.io`` policy (namespaced or clusterwide)."""
    return document.get("kind") in (CILIUM_KIND, CLUSTERWIDE_KIND) and str(
        document.get("apiVersion", "")
    ).startswith("cilium.io/")


class _Unsupported(Exception):
    """A construct outside the subset; the caller names the file and document."""


def cilium_policies(
    document: Mapping[str, Any], context: CiliumContext, notes: list[str], where: str
) -> list[Policy]:
    """The policies one CiliumNetworkPolicy document stands for (one per ``spec``/``specs``).

    Raises:
        PolicyParseError: for a malformed document or a construct outside the subset (its
            message names it; the caller adds the file and document).
    """
    kind = str(document.get("kind"))
    if document.get("apiVersion") != CILIUM_API_VERSION:
        raise PolicyParseError(
            f"{document.get('apiVersion')} {kind}: expected {CILIUM_API_VERSION}"
        )
    metadata = _mapping(document.get("metadata"), "metadata")
    name = str(metadata.get("name") or "")
    if not name:
        raise PolicyParseError(f"{kind} without metadata.name")
    namespace = str(metadata.get("namespace") or "default")
    clusterwide = kind == CLUSTERWIDE_KIND
    if clusterwide:
        # Every namespace's endpoints, and peers of every namespace: read as one policy per
        # namespace of the inventory, the selectors spanning namespaces.
        namespaces = sorted(context.namespace_labels)
        if not namespaces:
            raise PolicyParseError(
                f"{kind} {name}: reading it needs the cluster's namespaces",
                hint="pass -i INVENTORY",
            )
    else:
        namespaces = [namespace]
    labels = tuple(
        sorted((str(k), str(v)) for k, v in _mapping(metadata.get("labels"), "labels").items())
    )
    annotations = tuple(
        sorted(
            (str(k), str(v))
            for k, v in _mapping(metadata.get("annotations"), "annotations").items()
        )
    )
    specs: list[tuple[str, Any]] = []
    if document.get("spec") is not None:
        specs.append((name, document["spec"]))
    for i, spec in enumerate(_list(document.get("specs"), "specs")):
        specs.append((f"{name}#specs[{i}]", spec))
    if not specs:
        raise PolicyParseError(f"{kind} {name} has neither spec nor specs")
    entities = dict(context.entities)
    if not entities:
        entities = entities_from_annotations(
            Policy(name, namespace, LabelSelector(), (), annotations=annotations)
        )
    out = []
    for (policy_name, spec), ns in ((a, b) for a in specs for b in namespaces):
        shown = f"clusterwide:{policy_name}" if clusterwide else policy_name
        reader = _Reader(ns, entities, context, notes, f"{where}: {ns}/{shown}", annotations)
        reader.clusterwide = clusterwide
        try:
            policy = reader.policy(shown, _mapping(spec, "spec"), labels, annotations)
        except _Unsupported as error:
            raise PolicyParseError(
                f"{kind} {name if clusterwide else f'{ns}/{policy_name}'}: {error} is outside "
                "what verify and diff read (L3/L4 allow rules)",
                hint="verify and diff decide L3/L4 allow rules only; check such a policy "
                "in the cluster (hubble observe, cilium policy trace)",
            ) from None
        if policy is not None:
            out.append(policy)
    return out


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyParseError(f"{what} must be a mapping, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyParseError(f"{what} must be a list, not {type(value).__name__}")
    return value


def _split(key: str) -> tuple[str, str]:
    source, sep, rest = key.partition(":")
    return (source, rest) if sep else ("any", key)


@dataclass(frozen=True)
class _Requirements:
    """A Cilium label selector split into pod and namespace requirements."""

    pods: LabelSelector
    namespaces: LabelSelector | None  # None: no namespace key at all
    names_namespace: bool  # the selector has the io.kubernetes.pod.namespace key


def _requirements(selector: Mapping[str, Any], what: str) -> _Requirements:
    pod_labels: list[tuple[str, str]] = []
    pod_expr: list[LabelRequirement] = []
    ns_labels: list[tuple[str, str]] = []
    ns_expr: list[LabelRequirement] = []
    names_namespace = False

    def target(key: str) -> tuple[str, bool]:
        source, label = _split(key)
        if source not in _SOURCES:
            raise _Unsupported(f"{what}: label source {source!r} ({key})")
        if label == _POD_NAMESPACE:
            return NAMESPACE_NAME_LABEL, True
        if label.startswith(_NAMESPACE_LABELS):
            return label[len(_NAMESPACE_LABELS) :], True
        if label.startswith(_POLICY_LABELS):
            # Service account and cluster labels: flows do not carry them.
            raise _Unsupported(f"{what}: label {key}")
        return label, False

    for key, value in _mapping(selector.get("matchLabels"), f"{what}.matchLabels").items():
        label, on_namespace = target(str(key))
        names_namespace |= on_namespace and label == NAMESPACE_NAME_LABEL
        (ns_labels if on_namespace else pod_labels).append((label, str(value)))
    for item in _list(selector.get("matchExpressions"), f"{what}.matchExpressions"):
        item = _mapping(item, f"{what}.matchExpressions[]")
        label, on_namespace = target(str(item.get("key", "")))
        operator = str(item.get("operator"))
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise PolicyParseError(f"{what}: unknown operator {operator!r}")
        values = tuple(sorted(str(v) for v in _list(item.get("values"), "values")))
        names_namespace |= on_namespace and label == NAMESPACE_NAME_LABEL
        (ns_expr if on_namespace else pod_expr).append(LabelRequirement(label, operator, values))
    pods = LabelSelector(tuple(sorted(pod_labels)), tuple(pod_expr))
    namespaces = (
        LabelSelector(tuple(sorted(ns_labels)), tuple(ns_expr)) if ns_labels or ns_expr else None
    )
    return _Requirements(pods, namespaces, names_namespace)


def _host_bits(address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{ip}/{ip.max_prefixlen}"


class _Reader:
    """One spec of one CiliumNetworkPolicy, read into the model."""

    def __init__(
        self,
        namespace: str,
        entities: Mapping[str, tuple[str, ...]],
        context: CiliumContext,
        notes: list[str],
        where: str,
        annotations: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.annotations = annotations
        self.clusterwide = False  # a CiliumClusterwideNetworkPolicy: selectors span namespaces
        self.namespace = namespace
        self.entities = entities
        self.context = context
        self.notes = notes
        self.where = where

    def note(self, text: str) -> None:
        line = f"{self.where}: {text}"
        if line not in self.notes:
            self.notes.append(line)

    def policy(
        self,
        name: str,
        spec: Mapping[str, Any],
        labels: tuple[tuple[str, str], ...],
        annotations: tuple[tuple[str, str], ...],
    ) -> Policy | None:
        for key in spec:
            if key not in _SPEC_KEYS:
                raise _Unsupported(f"spec.{key}")
        if "endpointSelector" not in spec:
            raise PolicyParseError("spec without endpointSelector")
        subject = self.subject(_mapping(spec["endpointSelector"], "endpointSelector"))
        if subject is None:
            return None  # selects no endpoint of its namespace
        default_deny = _mapping(spec.get("enableDefaultDeny"), "enableDefaultDeny")
        types: list[str] = []
        rules: dict[str, tuple[Rule, ...]] = {"Ingress": (), "Egress": ()}
        for direction, section, prefix in (
            ("Ingress", "ingress", "from"),
            ("Egress", "egress", "to"),
        ):
            items = _list(spec.get(section), section)
            enforce = default_deny.get(section)
            if enforce is False and items:
                # Rules that only add to other policies' enforcement: not a NetworkPolicy.
                raise _Unsupported(f"enableDefaultDeny.{section}: false")
            if not items and enforce is not True:
                continue  # "If omitted or empty, this rule does not apply"
            types.append(direction)
            read = [
                self.rule(_mapping(r, f"{section}[]"), prefix, f"{section}[{i}]")
                for i, r in enumerate(items)
            ]
            # A rule that matches nothing keeps its place (reports number rules as written),
            # unless no rule matches anything: then the direction is a plain default deny.
            if any(r is not None for r in read):
                rules[direction] = tuple(r if r is not None else NO_PEER_RULE for r in read)
        return Policy(
            name=name,
            namespace=self.namespace,
            pod_selector=subject,
            policy_types=tuple(types),
            ingress=rules["Ingress"],
            egress=rules["Egress"],
            labels=labels,
            annotations=annotations,
        )

    def subject(self, selector: Mapping[str, Any]) -> LabelSelector | None:
        """The pod selector, the namespace requirements decided on the policy's namespace."""
        found = _requirements(selector, "endpointSelector")
        if found.namespaces is not None:
            labels = dict(self.context.namespace_labels.get(self.namespace, {}))
            labels.setdefault(NAMESPACE_NAME_LABEL, self.namespace)
            if not found.namespaces.matches(labels):
                return None
        return found.pods

    def rule(self, rule: Mapping[str, Any], prefix: str, what: str) -> Rule | None:
        """The model rule, or None when it matches no peer (``{}``, or members that stand for
        no address)."""
        allowed = {f"{prefix}{m}" for m in _MEMBERS if not (prefix == "from" and m == "FQDNs")}
        for key in rule:
            if key not in allowed and key != "toPorts":
                raise _Unsupported(f"{what}.{key}")
        members = [k for k in rule if k in allowed]
        ports = self.ports(_list(rule.get("toPorts"), f"{what}.toPorts"), what)
        if not members:
            if "toPorts" in rule and ports is not None:
                return Rule(peers=(), ports=ports)  # L4 only: every peer
            if "toPorts" in rule:
                return Rule()  # an empty toPorts list: every peer, every port
            return None  # {}: default deny, selects no peer
        peers: list[Peer] = []
        every_peer = False
        for key in members:
            kind = key[len(prefix) :]
            values = _list(rule[key], f"{what}.{key}")
            if kind == "Endpoints":
                peers.extend(self.endpoint(_mapping(v, key), f"{what}.{key}") for v in values)
            elif kind == "CIDR":
                peers.extend(self.cidr(str(v), ()) for v in values)
            elif kind == "CIDRSet":
                for item in values:
                    item = _mapping(item, key)
                    for extra in ("cidrGroupRef", "cidrGroupSelector"):
                        if extra in item:
                            raise _Unsupported(f"{what}.{key}.{extra}")
                    if "cidr" not in item:
                        raise PolicyParseError(f"{what}.{key}: an entry without cidr")
                    excepts = tuple(str(c) for c in _list(item.get("except"), "except"))
                    peers.append(self.cidr(str(item["cidr"]), excepts))
            elif kind == "Entities":
                for entity in values:
                    if entity == "all":
                        every_peer = True
                    peers.extend(self.entity(str(entity)))
            else:
                peers.extend(self.fqdns([_mapping(v, key) for v in values], what))
        if every_peer:
            return Rule(peers=(), ports=ports or ())
        unique = tuple(dict.fromkeys(peers))
        if not unique:
            return None  # members that stand for no address: the rule matches nothing
        return Rule(peers=unique, ports=ports or ())

    def endpoint(self, selector: Mapping[str, Any], what: str) -> Peer:
        found = _requirements(selector, what)
        if self.clusterwide:  # no namespace key: every namespace
            pods = found.pods if found.pods != LabelSelector() else None
            return Peer(pod_selector=pods, namespace_selector=found.namespaces or LabelSelector())
        if found.namespaces is None:
            return Peer(pod_selector=found.pods)  # the policy's own namespace
        namespaces = found.namespaces
        if not found.names_namespace:
            # Without io.kubernetes.pod.namespace Cilium keeps the policy's namespace.
            namespaces = LabelSelector(
                tuple(sorted((*namespaces.match_labels, (NAMESPACE_NAME_LABEL, self.namespace)))),
                namespaces.match_expressions,
            )
        pods = found.pods if found.pods != LabelSelector() else None
        return Peer(pod_selector=pods, namespace_selector=namespaces)

    def identities(self, version: int) -> list[str]:
        return sorted(a for a in self.entities if ipaddress.ip_address(a).version == version)

    def cidr(self, cidr: str, excepts: tuple[str, ...]) -> Peer:
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise PolicyParseError(f"CIDR {cidr!r} is not a CIDR") from None
        # CIDR rules never match a cluster identity: its address is excepted.
        inside = [
            _host_bits(a)
            for a in self.identities(network.version)
            if ipaddress.ip_address(a) in network
        ]
        return Peer(ip_block=IPBlock(cidr, tuple(dict.fromkeys((*excepts, *inside)))))

    def entity(self, entity: str) -> list[Peer]:
        def addresses(wanted: str) -> list[Peer]:
            return [
                Peer(ip_block=IPBlock(_host_bits(a)))
                for a in sorted(self.entities)
                if wanted in self.entities[a]
            ]

        if entity in ("all", "none", "host"):
            return []
        if entity == "world":
            return [self.cidr("0.0.0.0/0", ()), self.cidr("::/0", ())]
        if entity == "cluster":
            return [Peer(namespace_selector=LabelSelector()), *(
                Peer(ip_block=IPBlock(_host_bits(a))) for a in sorted(self.entities)
            )]  # fmt: skip
        if entity in (_REMOTE_NODE, APISERVER):
            found = addresses(entity)
            if not found:
                self.note(f"entity {entity} stands for no known address (pass -i INVENTORY)")
            return found
        if entity in _UNSEEN_ENTITIES:
            self.note(f"entity {entity} is Cilium's own endpoint, which flows never name")
            return []
        raise _Unsupported(f"entity {entity!r}")

    def fqdns(self, selectors: list[Mapping[str, Any]], what: str) -> list[Peer]:
        for selector in selectors:
            if not ("matchName" in selector) ^ ("matchPattern" in selector):
                raise PolicyParseError(f"{what}.toFQDNs: one of matchName or matchPattern")
        table = self.context.dns_map.table
        pairs = set(zip(table["ip"].tolist(), table["name"].tolist(), strict=True))
        if not pairs:
            pairs = self.annotated_names()
            if pairs:
                self.note(
                    f"toFQDNs read through the policy's {FQDNS_ANNOTATION} annotation "
                    "(no DNS answers at hand)"
                )
        addresses = sorted(
            {
                ip
                for ip, name in pairs
                if ip not in self.entities and any(fqdn_matches(s, str(name)) for s in selectors)
            },
            key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)),
        )
        if not addresses:
            self.note(
                "toFQDNs names no address: no DNS answer in the flows (Hubble DNS events) "
                "resolved a matching name"
            )
        return [Peer(ip_block=IPBlock(_host_bits(a))) for a in addresses]

    def annotated_names(self) -> set[tuple[str, str]]:
        """``(address, name)`` from the ``netpolgen.io/fqdns`` annotation the flavours write
        (``<cidr>: <name>, <name>; ...``): what the names stood for when generated."""
        text = dict(self.annotations).get(FQDNS_ANNOTATION, "")
        found: set[tuple[str, str]] = set()
        for entry in text.split(";") if text else ():
            cidr, _, names = entry.strip().partition(": ")
            try:
                network = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            if network.num_addresses > 256:
                continue
            for address in network:
                found.update((str(address), n.strip()) for n in names.split(",") if n.strip())
        return found

    def ports(self, port_rules: list[Any], what: str) -> tuple[PortSpec, ...] | None:
        """The port specs of ``toPorts`` (None: no restriction)."""
        if not port_rules:
            return None
        out: list[PortSpec] = []
        for item in port_rules:
            item = _mapping(item, f"{what}.toPorts[]")
            l7 = _mapping(item.get("rules"), "rules")
            others = [k for k in l7 if k != "dns"] + [k for k in _PORT_RULE_L7 if k in item]
            if others:
                self.note(
                    f"{what}: L7 {', '.join(others)} read at L3/L4 (the connection is allowed; "
                    "requests the L7 rules refuse are not in flow logs)"
                )
            specs = _list(item.get("ports"), "ports")
            if not specs:
                raise _Unsupported(f"{what}.toPorts without ports")
            for spec in specs:
                out.extend(self.port(_mapping(spec, "ports[]"), what))
        return tuple(dict.fromkeys(out))

    @staticmethod
    def port(spec: Mapping[str, Any], what: str) -> list[PortSpec]:
        protocol = str(spec.get("protocol") or "ANY")
        if protocol not in ("ANY", *_ANY_PROTOCOLS):
            raise PolicyParseError(f"{what}: unknown protocol {protocol!r}")
        protocols = _ANY_PROTOCOLS if protocol == "ANY" else (protocol,)
        value = str(spec.get("port", WILDCARD_PORT)).strip()
        end = spec.get("endPort")
        port: int | str | None
        end_port: int | None = None
        if value.isdigit():
            number = int(value)
            port = None if number == 0 else number
            if port is not None and isinstance(end, int) and end > number:
                end_port = end
            if port is not None and not 1 <= number <= 65535:
                raise PolicyParseError(f"{what}: port {value} out of range")
        elif value:
            port = value  # a container port name
        else:
            raise PolicyParseError(f"{what}: an empty port")
        return [PortSpec(p, port, end_port) for p in protocols]
