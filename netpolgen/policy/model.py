"""Frozen dataclasses for ``networking.k8s.io/v1`` NetworkPolicy.

The model can express everything the API can (``matchExpressions``, ``ipBlock.except``, named
ports, ``endPort``), so policies read from a cluster and policies we synthesize share one type
and one evaluator (``netpolgen.verify``). Instances are immutable and hashable: rules and peers can
be collected into sets and compared, which is what merging and diffing need.

Kubernetes dicts are produced only at the edge, by ``to_manifest()``; ``from_manifest()`` reads one
back, applying the API's defaulting (``policyTypes``, ``protocol: TCP``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from netpolgen.errors import PolicyParseError
from netpolgen.selectors import SELECTOR_OPERATORS, LabelRequirement, LabelSelector

API_VERSION = "networking.k8s.io/v1"
KIND = "NetworkPolicy"


@dataclass(frozen=True)
class IPBlock:
    """An ``ipBlock``: a CIDR, minus the ``except`` CIDRs inside it."""

    cidr: str
    except_: tuple[str, ...] = ()

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cidr": self.cidr}
        if self.except_:
            out["except"] = list(self.except_)
        return out


@dataclass(frozen=True)
class Peer:
    """A ``NetworkPolicyPeer``.

    Kubernetes semantics: ``pod_selector`` alone selects pods in the policy's own namespace;
    ``namespace_selector`` alone selects every pod in the matching namespaces; both together
    select the matching pods in the matching namespaces; ``ip_block`` stands alone.
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ip_block is not None:
            out["ipBlock"] = self.ip_block.to_manifest()
        if self.namespace_selector is not None:
            out["namespaceSelector"] = self.namespace_selector.to_manifest()
        if self.pod_selector is not None:
            out["podSelector"] = self.pod_selector.to_manifest()
        return out

    def sort_key(self) -> tuple[Any, ...]:
        # ipBlocks after selectors; then by namespace, then by pod selector.
        return (
            self.ip_block is not None,
            self.ip_block.cidr if self.ip_block else "",
            self.ip_block.except_ if self.ip_block else (),
            self.namespace_selector.sort_key() if self.namespace_selector else (),
            self.pod_selector.sort_key() if self.pod_selector else (),
        )


@dataclass(frozen=True)
class PortSpec:
    """A ``NetworkPolicyPort``: protocol, and a number, a name, or a range ``port..end_port``.

    ``port=None`` means every port of the protocol.
    """

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol}
        if self.port is not None:
            out["port"] = self.port
        if self.end_port is not None:
            out["endPort"] = self.end_port
        return out

    def sort_key(self) -> tuple[Any, ...]:
        numeric = isinstance(self.port, int)
        return (
            self.protocol,
            0 if self.port is None else (1 if numeric else 2),
            self.port if numeric else 0,
            str(self.port) if not numeric and self.port is not None else "",
            self.end_port or 0,
        )


@dataclass(frozen=True)
class Rule:
    """An ingress or egress rule. Empty ``peers`` means all peers; empty ``ports`` all ports.

    (The API does not distinguish a missing ``from``/``to`` from an empty list: both match all.)
    """

    peers: tuple[Peer, ...] = ()
    ports: tuple[PortSpec, ...] = ()

    def sort_key(self) -> tuple[Any, ...]:
        return (
            tuple(p.sort_key() for p in self.ports),
            tuple(p.sort_key() for p in self.peers),
        )


@dataclass(frozen=True)
class Policy:
    """One NetworkPolicy.

    ``policy_types`` is always explicit here: ``from_manifest`` applies the API's default
    (``Ingress``, plus ``Egress`` when the spec has an ``egress`` section).

    Examples:
        >>> policy = Policy("deny-all", "shop", LabelSelector(), ("Ingress",))
        >>> policy.to_manifest()["spec"]
        {'podSelector': {}, 'policyTypes': ['Ingress'], 'ingress': []}
    """

    name: str
    namespace: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def to_manifest(self) -> dict[str, Any]:
        """The Kubernetes object, with keys in a fixed, conventional order."""
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if self.labels:
            metadata["labels"] = dict(self.labels)
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        spec: dict[str, Any] = {
            "podSelector": self.pod_selector.to_manifest(),
            "policyTypes": list(self.policy_types),
        }
        if "Ingress" in self.policy_types:
            spec["ingress"] = [_rule_manifest(r, "from") for r in self.ingress]
        if "Egress" in self.policy_types:
            spec["egress"] = [_rule_manifest(r, "to") for r in self.egress]
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], *, source: str | None = None) -> Policy:
        """Read a NetworkPolicy object (as parsed from YAML or JSON) into the model."""
        return _policy_from_manifest(manifest, source)


def _rule_manifest(rule: Rule, peers_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.peers:
        out[peers_key] = [p.to_manifest() for p in rule.peers]
    if rule.ports:
        out["ports"] = [p.to_manifest() for p in rule.ports]
    return out


# --- reading manifests -------------------------------------------------------------------------


def _fail(message: str, source: str | None) -> PolicyParseError:
    return PolicyParseError(message, source=source)


def _mapping(value: Any, what: str, source: str | None) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(f"{what} must be a mapping, not {type(value).__name__}", source)
    return value


def _list(value: Any, what: str, source: str | None) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"{what} must be a list, not {type(value).__name__}", source)
    return value


def _selector(value: Any, what: str, source: str | None) -> LabelSelector:
    data = _mapping(value, what, source)
    match_labels = _mapping(data.get("matchLabels"), f"{what}.matchLabels", source)
    requirements = []
    for item in _list(data.get("matchExpressions"), f"{what}.matchExpressions", source):
        item = _mapping(item, f"{what}.matchExpressions[]", source)
        operator = item.get("operator")
        if operator not in SELECTOR_OPERATORS:
            raise _fail(f"{what}: unknown operator {operator!r}", source)
        values = tuple(sorted(str(v) for v in _list(item.get("values"), "values", source)))
        if operator in ("In", "NotIn") and not values:
            raise _fail(f"{what}: operator {operator} needs values", source)
        requirements.append(LabelRequirement(str(item.get("key", "")), operator, values))
    return LabelSelector(
        match_labels=tuple(sorted((str(k), str(v)) for k, v in match_labels.items())),
        match_expressions=tuple(requirements),
    )


def _peer(value: Any, source: str | None) -> Peer:
    data = _mapping(value, "peer", source)
    ip_block = None
    if "ipBlock" in data:
        block = _mapping(data["ipBlock"], "ipBlock", source)
        if "cidr" not in block:
            raise _fail("ipBlock without cidr", source)
        ip_block = IPBlock(
            str(block["cidr"]),
            tuple(str(c) for c in _list(block.get("except"), "ipBlock.except", source)),
        )
        _check_ip_block(ip_block, source)
    pod = _selector(data["podSelector"], "podSelector", source) if "podSelector" in data else None
    namespace = (
        _selector(data["namespaceSelector"], "namespaceSelector", source)
        if "namespaceSelector" in data
        else None
    )
    if ip_block is not None and (pod is not None or namespace is not None):
        raise _fail("a peer with ipBlock cannot also have selectors", source)
    if ip_block is None and pod is None and namespace is None:
        raise _fail("a peer needs podSelector, namespaceSelector or ipBlock", source)
    return Peer(pod_selector=pod, namespace_selector=namespace, ip_block=ip_block)


def _check_ip_block(block: IPBlock, source: str | None) -> None:
    # API validation: cidr and every except entry are CIDRs; except entries lie inside cidr.
    try:
        network = ipaddress.ip_network(block.cidr, strict=False)
    except ValueError:
        raise _fail(f"ipBlock cidr {block.cidr!r} is not a CIDR", source) from None
    for entry in block.except_:
        try:
            inner = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise _fail(f"ipBlock except {entry!r} is not a CIDR", source) from None
        if inner.version != network.version or not inner.subnet_of(network):  # type: ignore[arg-type]
            raise _fail(f"ipBlock except {entry} is not inside {block.cidr}", source)


def _port(value: Any, source: str | None) -> PortSpec:
    data = _mapping(value, "port", source)
    protocol = str(data.get("protocol", "TCP"))
    port = data.get("port")
    if port is not None and not isinstance(port, int | str):
        raise _fail(f"port must be a number or a name, not {port!r}", source)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    end_port = data.get("endPort")
    if end_port is not None and (not isinstance(end_port, int) or isinstance(end_port, bool)):
        raise _fail(f"endPort must be a number, not {end_port!r}", source)
    if end_port is not None and not isinstance(port, int):
        # API validation: endPort requires a numeric port.
        raise _fail("endPort needs a numeric port", source)
    if end_port is not None and isinstance(port, int) and end_port < port:
        raise _fail(f"endPort {end_port} is below port {port}", source)
    return PortSpec(protocol=protocol, port=port, end_port=end_port)


def _rules(value: Any, peers_key: str, source: str | None) -> tuple[Rule, ...]:
    rules = []
    for item in _list(value, "rules", source):
        data = _mapping(item, "rule", source)
        peers = tuple(_peer(p, source) for p in _list(data.get(peers_key), peers_key, source))
        ports = tuple(_port(p, source) for p in _list(data.get("ports"), "ports", source))
        rules.append(Rule(peers=peers, ports=ports))
    return tuple(rules)


def _policy_from_manifest(manifest: Mapping[str, Any], source: str | None) -> Policy:
    if not isinstance(manifest, Mapping):
        raise _fail("a policy document must be a mapping", source)
    if manifest.get("kind") != KIND:
        raise _fail(f"expected kind {KIND}, found {manifest.get('kind')!r}", source)
    metadata = _mapping(manifest.get("metadata"), "metadata", source)
    spec = _mapping(manifest.get("spec"), "spec", source)
    name = str(metadata.get("name", ""))
    if not name:
        raise _fail("NetworkPolicy without metadata.name", source)
    types = spec.get("policyTypes")
    if not types:
        # API defaulting (k8s.io/kubernetes pkg/apis/networking/v1 SetDefaults_NetworkPolicy): a
        # missing or empty policyTypes becomes Ingress, plus Egress only when the spec has at
        # least one egress rule. So ``egress: []`` alone does not isolate egress.
        egress_rules = _list(spec.get("egress"), "egress", source)
        policy_types: tuple[str, ...] = ("Ingress", "Egress") if egress_rules else ("Ingress",)
    else:
        policy_types = tuple(str(t) for t in _list(types, "policyTypes", source))
        unknown = set(policy_types) - {"Ingress", "Egress"}
        if unknown:
            raise _fail(f"unknown policyTypes {sorted(unknown)}", source)
    return Policy(
        name=name,
        namespace=str(metadata.get("namespace") or "default"),
        pod_selector=_selector(spec.get("podSelector"), "podSelector", source),
        policy_types=policy_types,
        ingress=_rules(spec.get("ingress"), "from", source),
        egress=_rules(spec.get("egress"), "to", source),
        labels=tuple(
            sorted(
                (str(k), str(v))
                for k, v in _mapping(metadata.get("labels"), "labels", source).items()
            )
        ),
        annotations=tuple(
            sorted(
                (str(k), str(v))
                for k, v in _mapping(metadata.get("annotations"), "annotations", source).items()
            )
        ),
    )


def selector_from_manifest(value: Any, what: str, source: str | None = None) -> LabelSelector:
    """A ``LabelSelector`` object read into the model (errors name ``what`` and ``source``)."""
    return _selector(value, what, source)
