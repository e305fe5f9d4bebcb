"""Guardrails: cluster-wide rules of the user's own that generation respects (``--guardrails``).

A guardrails file is a small YAML document::

    deny:                                   # never allowed, whatever the flows show
      - name: dev-to-prod                   # optional; default deny-1, deny-2, ...
        from: {namespace: dev}
        to: {namespace: prod}
      - from: {namespaces: [dev, qa]}
        to: {networks: [169.254.169.254/32]}    # the cloud metadata service
    allow:                                  # always allowed (Admin-tier Accept)
      - from: {namespace: monitoring}
        to: {pods: all}
        ports: [9090/TCP, 9100-9102/TCP]
    allow-dns: true                         # every pod to kube-dns on 53/UDP and 53/TCP

Each side (``from``, ``to``) is a set of pods or, for ``to`` only, of outside addresses:

- namespaces: ``namespace: NAME``, ``namespaces: [NAME, ...]`` or ``namespaceSelector:`` (a
  Kubernetes label selector, ``matchLabels``/``matchExpressions``); none of them: every namespace.
  Names match the ``kubernetes.io/metadata.name`` label the API server sets on every namespace;
  other namespace labels are known only from an inventory (``-i``).
- pods: ``pods: all`` (the default), ``pods: {app: web}`` (labels, ANDed) or ``podSelector:`` (a
  label selector).
- ``networks: [CIDR, ...]`` (``to`` only): outside addresses. The ClusterNetworkPolicy API
  (v1alpha2) has no ingress ``networks`` peer, so a ``from`` side is always pods; pods are named
  by namespaces and labels, never by address.
- ``ports`` (optional, default every port of every protocol): ``PORT/PROTO`` or
  ``FIRST-LAST/PROTO`` with ``TCP``, ``UDP`` or ``SCTP``; the protocol is required, so that a
  deny on ``53`` cannot silently mean TCP only. At most 25 per entry (the CRD's limit).

What generation does with them (:mod:`netpolgen.policy.guardrail_enforce`):

- an observed connection a ``deny`` entry covers is left out of the policies, counted in the
  accounting as filtered (``denied by a guardrail``) and named in a warning; a rule whose peers
  would still reach a denied pair (the DNS rule, a workload selector that also selects the denied
  pods) loses that peer for the denied ports, with a warning. Widened ipBlocks
  (``--cidr-prefix-min``) except the denied networks.
- ``allow`` entries change nothing in the NetworkPolicies: the connections they cover that were
  observed keep their rules, so the NetworkPolicies stand alone where the CNI does not implement
  ClusterNetworkPolicy, and nothing unobserved is added to them.
- both are written as Admin-tier ``ClusterNetworkPolicy`` objects
  (:func:`netpolgen.policy.flavors.cluster_policy.guardrail_manifests`, which documents the
  priorities).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netpolgen.errors import PolicyParseError
from netpolgen.selectors import (
    NAMESPACE_NAME_LABEL,
    SELECTOR_OPERATORS,
    LabelRequirement,
    LabelSelector,
)

MAX_ITEMS = 25  # ports and networks per entry: the ClusterNetworkPolicy CRD's maxItems
GUARDRAIL_PROTOCOLS = ("TCP", "UDP", "SCTP")
DNS_NAMESPACE = "kube-system"
DNS_LABELS = (("k8s-app", "kube-dns"),)
_PORT = re.compile(r"^\s*(\d+)(?:\s*-\s*(\d+))?\s*/\s*([A-Za-z]+)\s*$")
_SIDE_KEYS = ("namespace", "namespaces", "namespaceSelector", "pods", "podSelector", "networks")
_ENTRY_KEYS = ("name", "from", "to", "ports")
_TOP_KEYS = ("deny", "allow", "allow-dns")
_EVERY = LabelSelector()


@dataclass(frozen=True)
class PortRange:
    """``protocol`` ports ``first``..``last`` (equal for one port)."""

    protocol: str
    first: int
    last: int

    def covers(self, protocol: str, port: int | None) -> bool:
        return protocol == self.protocol and port is not None and self.first <= port <= self.last

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{ports}/{self.protocol}"


@dataclass(frozen=True)
class Side:
    """One end of a guardrail: pods (namespaces x pod labels) or outside networks."""

    namespaces: LabelSelector = _EVERY
    pods: LabelSelector = _EVERY
    networks: tuple[str, ...] = ()

    @property
    def is_networks(self) -> bool:
        return bool(self.networks)

    def matches_pod(
        self, namespace: str, labels: Mapping[str, str], namespace_labels: Mapping[str, str]
    ) -> bool:
        if self.is_networks:
            return False
        ns_labels = {**namespace_labels, NAMESPACE_NAME_LABEL: namespace}
        return self.namespaces.matches(ns_labels) and self.pods.matches(labels)

    def matches_address(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(
            address.version == (n := ipaddress.ip_network(c, strict=False)).version and address in n
            for c in self.networks
        )

    def describe(self) -> str:
        if self.is_networks:
            return ", ".join(self.networks)
        names = _namespace_names(self.namespaces)
        where = (
            "every namespace"
            if self.namespaces.is_empty
            else ("namespace " + ", ".join(names) if names else self.namespaces.describe())
        )
        return where if self.pods.is_empty else f"pods {self.pods.describe()} in {where}"


@dataclass(frozen=True)
class Guardrail:
    """One ``deny`` or ``allow`` entry: ``source`` to ``target`` on ``ports`` (empty: all)."""

    action: str  # "Deny" or "Accept"
    name: str
    source: Side
    target: Side
    ports: tuple[PortRange, ...] = ()

    def covers_port(self, protocol: str, port: int | None) -> bool:
        return not self.ports or any(p.covers(protocol, port) for p in self.ports)

    def describe(self) -> str:
        ports = f" on {', '.join(map(str, self.ports))}" if self.ports else ""
        return f"{self.name} ({self.source.describe()} -> {self.target.describe()}{ports})"


@dataclass(frozen=True)
class Guardrails:
    """The entries of a guardrails file, in file order (see the module docstring).

    Attributes:
        deny: the ``deny`` entries (action ``Deny``).
        allow: the ``allow`` entries, then ``allow-dns`` (action ``Accept``).
        source: the file they were read from (named in messages).
        namespace_labels: the namespaces' labels (an inventory's), for namespace selectors.

    Examples:
        >>> parse_guardrails({"allow-dns": True}).allow[0].name
        'allow-dns'
    """

    deny: tuple[Guardrail, ...] = ()
    allow: tuple[Guardrail, ...] = ()
    source: str = "<guardrails>"
    namespace_labels: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = field(default=())

    @property
    def entries(self) -> tuple[Guardrail, ...]:
        return self.deny + self.allow

    def with_namespace_labels(self, labels: Mapping[str, Mapping[str, str]]) -> Guardrails:
        """The same guardrails, matching namespace selectors against these namespaces' labels
        (the inventory's); a namespace not listed has only its name label."""
        items = tuple(sorted((ns, tuple(sorted(v.items()))) for ns, v in labels.items()))
        return Guardrails(self.deny, self.allow, self.source, items)

    def labels_of(self, namespace: str) -> dict[str, str]:
        return dict(dict(self.namespace_labels).get(namespace, ()))


def _namespace_names(selector: LabelSelector) -> tuple[str, ...]:
    if selector.match_labels or len(selector.match_expressions) != 1:
        return ()
    (requirement,) = selector.match_expressions
    if requirement.key == NAMESPACE_NAME_LABEL and requirement.operator == "In":
        return requirement.values
    return ()


def dns_guardrail() -> Guardrail:
    """``allow-dns: true``: every pod to the cluster resolver (kube-system, k8s-app=kube-dns)."""
    return Guardrail(
        "Accept",
        "allow-dns",
        Side(),
        Side(
            namespaces=LabelSelector(
                match_expressions=(LabelRequirement(NAMESPACE_NAME_LABEL, "In", (DNS_NAMESPACE,)),)
            ),
            pods=LabelSelector(match_labels=DNS_LABELS),
        ),
        (PortRange("UDP", 53, 53), PortRange("TCP", 53, 53)),
    )


# --- parsing -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> PolicyParseError:
        return PolicyParseError(
            f"guardrails {where}: {message}",
            source=self.source,
            hint="the README section Guardrails describes the format",
        )

    def mapping(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be a mapping, not {type(value).__name__}")
        return value

    def keys(self, value: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail(
                where, f"unknown key {', '.join(unknown)} (expected one of {', '.join(allowed)})"
            )

    def selector(self, value: Any, where: str) -> LabelSelector:
        data = self.mapping(value, where)
        self.keys(data, ("matchLabels", "matchExpressions"), where)
        labels = self.mapping(data.get("matchLabels") or {}, f"{where}.matchLabels")
        requirements = []
        expressions = data.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise self.fail(f"{where}.matchExpressions", "must be a list")
        for index, item in enumerate(expressions):
            at = f"{where}.matchExpressions[{index}]"
            item = self.mapping(item, at)
            operator = item.get("operator")
            if operator not in SELECTOR_OPERATORS:
                raise self.fail(at, f"unknown operator {operator!r}")
            values = item.get("values") or []
            if not isinstance(values, list):
                raise self.fail(at, "values must be a list")
            if operator in ("In", "NotIn") and not values:
                raise self.fail(at, f"operator {operator} needs values")
            if not item.get("key"):
                raise self.fail(at, "key is missing")
            requirements.append(
                LabelRequirement(str(item["key"]), operator, tuple(sorted(map(str, values))))
            )
        return LabelSelector(
            match_labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
            match_expressions=tuple(requirements),
        )

    def side(self, value: Any, where: str, *, networks: bool) -> Side:
        if value is None:
            raise self.fail(where, "is missing (write pods: all for every pod)")
        data = self.mapping(value, where)
        self.keys(data, _SIDE_KEYS, where)
        if not data:
            raise self.fail(where, "is empty (write pods: all for every pod)")
        if "networks" in data:
            if not networks:
                raise self.fail(
                    where,
                    "networks is only for to: ClusterNetworkPolicy v1alpha2 has no ingress "
                    "networks peer",
                )
            if len(data) > 1:
                raise self.fail(where, "networks cannot be combined with namespaces or pods")
            return Side(networks=self.networks(data["networks"], f"{where}.networks"))
        given = [k for k in ("namespace", "namespaces", "namespaceSelector") if k in data]
        if len(given) > 1:
            raise self.fail(where, f"give one of {', '.join(given)}, not several")
        namespaces = _EVERY
        if given == ["namespace"] or given == ["namespaces"]:
            raw = data[given[0]]
            names = [raw] if given == ["namespace"] else raw
            if (
                not isinstance(names, list)
                or not names
                or not all(isinstance(n, str) and n for n in names)
            ):
                raise self.fail(f"{where}.{given[0]}", "must be a namespace name or a list of them")
            namespaces = LabelSelector(
                match_expressions=(
                    LabelRequirement(NAMESPACE_NAME_LABEL, "In", tuple(sorted(set(names)))),
                )
            )
        elif given == ["namespaceSelector"]:
            namespaces = self.selector(data["namespaceSelector"], f"{where}.namespaceSelector")
        if "pods" in data and "podSelector" in data:
            raise self.fail(where, "give pods or podSelector, not both")
        pods = _EVERY
        if "podSelector" in data:
            pods = self.selector(data["podSelector"], f"{where}.podSelector")
        elif "pods" in data and data["pods"] != "all":
            labels = self.mapping(data["pods"], f"{where}.pods")
            if not labels:
                raise self.fail(f"{where}.pods", "is empty (write pods: all for every pod)")
            pods = LabelSelector.of({str(k): str(v) for k, v in labels.items()})
        return Side(namespaces=namespaces, pods=pods)

    def networks(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, "must be a non-empty list of CIDRs")
        if len(value) > MAX_ITEMS:
            raise self.fail(where, f"at most {MAX_ITEMS} networks per entry (the CRD's limit)")
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_network(str(item), strict=False)))
            except ValueError:
                raise self.fail(where, f"{item!r} is not a CIDR") from None
        return tuple(out)

    def ports(self, value: Any, where: str) -> tuple[PortRange, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not value:
            raise self.fail(where, "must be a non-empty list such as [443/TCP, 8000-8100/TCP]")
        if len(value) > MAX_ITEMS:
            raise self.fail(where, f"at most {MAX_ITEMS} ports per entry (the CRD's limit)")
        out = []
        for item in value:
            match = _PORT.match(str(item))
            if not match:
                raise self.fail(
                    where, f"{item!r}: write PORT/PROTOCOL or FIRST-LAST/PROTOCOL (443/TCP)"
                )
            first = int(match[1])
            last = int(match[2]) if match[2] else first
            protocol = match[3].upper()
            if protocol not in GUARDRAIL_PROTOCOLS:
                raise self.fail(where, f"{item!r}: protocol must be TCP, UDP or SCTP")
            if not 1 <= first <= last <= 65535:
                raise self.fail(where, f"{item!r}: ports are 1..65535, first <= last")
            out.append(PortRange(protocol, first, last))
        return tuple(dict.fromkeys(out))

    def entry(self, value: Any, action: str, where: str, default_name: str) -> Guardrail:
        data = self.mapping(value, where)
        self.keys(data, _ENTRY_KEYS, where)
        name = data.get("name", default_name)
        if not isinstance(name, str) or not re.fullmatch(
            r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name
        ):
            raise self.fail(f"{where}.name", f"{name!r} is not a lower-case DNS label")
        return Guardrail(
            action,
            name,
            self.side(data.get("from"), f"{where}.from", networks=False),
            self.side(data.get("to"), f"{where}.to", networks=True),
            self.ports(data.get("ports"), f"{where}.ports"),
        )


def parse_guardrails(document: Any, source: str = "<guardrails>") -> Guardrails:
    """Guardrails from a parsed YAML document (see the module docstring for the format).

    Raises:
        PolicyParseError: naming ``source`` and the entry (``deny[1].to``) for bad input.

    Examples:
        >>> g = parse_guardrails({"deny": [{"from": {"namespace": "dev"},
        ...                                 "to": {"namespace": "prod"}}]})
        >>> g.deny[0].describe()
        'deny-1 (namespace dev -> namespace prod)'
    """
    parser = _Parser(source)
    if document is None:
        document = {}
    data = parser.mapping(document, "file")
    parser.keys(data, _TOP_KEYS, "file")
    lists: dict[str, list[Guardrail]] = {}
    for key, action in (("deny", "Deny"), ("allow", "Accept")):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise parser.fail(key, "must be a list of entries")
        lists[key] = [
            parser.entry(item, action, f"{key}[{i}]", f"{key}-{i + 1}")
            for i, item in enumerate(items)
        ]
    allow_dns = data.get("allow-dns", False)
    if not isinstance(allow_dns, bool):
        raise parser.fail("allow-dns", "must be true or false")
    if allow_dns:
        lists["allow"].append(dns_guardrail())
    names = [g.name for g in lists["deny"] + lists["allow"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise parser.fail("names", f"{', '.join(duplicates)} used more than once")
    return Guardrails(tuple(lists["deny"]), tuple(lists["allow"]), source)


def load_guardrails(path: str | Path) -> Guardrails:
    """Read a guardrails file (the format: :mod:`netpolgen.policy.guardrails`).

    Args:
        path: the YAML file (``deny``, ``allow``, ``allow-dns``).

    Returns:
        The guardrails, for ``GenerateOptions(guardrails=...)`` and ``flavor_yaml(...,
        guardrails=...)``.

    Raises:
        PolicyParseError: the file cannot be read, is not YAML, or has a bad entry (the message
            names the file and the entry, ``deny[1].to``).

    Examples:
        >>> guardrails = load_guardrails("tests/data/guardrails-online-shop.yaml")
        >>> [g.name for g in guardrails.deny]
        ['no-loadgen-in-shop', 'no-metadata-service']
        >>> result = generate_from_files(["flows.csv"], GenerateOptions(guardrails=guardrails))
        ... # doctest: +SKIP
    """
    from netpolgen.safe_yaml import YAML_ERRORS, load_all

    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PolicyParseError(f"cannot read guardrails: {error}", source=source) from None
    try:
        documents = load_all(text)
    except YAML_ERRORS as error:
        raise PolicyParseError(
            f"not valid YAML: {str(error).splitlines()[0]}", source=source
        ) from None
    documents = [d for d in documents if d is not None]
    if len(documents) > 1:
        raise PolicyParseError("a guardrails file is one YAML document", source=source)
    return parse_guardrails(documents[0] if documents else None, source)
