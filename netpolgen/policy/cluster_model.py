"""``ClusterNetworkPolicy`` (``policy.networking.k8s.io/v1alpha2``) read into frozen dataclasses.

Field names are those of the CRD of kubernetes-sigs/network-policy-api v0.2.0 (vendored in
``tests/schemas``): ``spec.tier`` (``Admin``/``Baseline``), ``spec.priority`` (0..1000),
``spec.subject`` (``namespaces`` or ``pods: {namespaceSelector, podSelector}``), ``ingress[]``
with ``from[]`` (``namespaces`` | ``pods``) and ``egress[]`` with ``to[]`` (``namespaces`` |
``pods`` | ``networks``), each rule an ``action`` (``Accept``/``Deny``/``Pass``) and optional
``protocols[]`` (``tcp``/``udp``/``sctp`` with ``destinationPort: {number}`` or
``{range: {start, end}}``, or ``destinationNamedPort``).

A peer with no field this version knows (a newer CRD's ``nodes``, say) is kept as *unknown*: the
CRD says an implementation must then "fail closed", an ``Accept`` rule matching nothing and a
``Deny`` or ``Pass`` rule everything; :mod:`.cluster_eval` does so and says so.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netpolgen.errors import PolicyParseError
from netpolgen.policy.flavors.cluster_policy import CLUSTER_API_VERSION, CLUSTER_KIND
from netpolgen.policy.model import PortSpec, selector_from_manifest

__all__ = [
    "CLUSTER_API_VERSION", "CLUSTER_KIND", "ClusterPeer", "ClusterPolicy", "ClusterRule",
    "cluster_policy_from_manifest", "is_cluster_policy",
]  # fmt: skip
from netpolgen.selectors import LabelSelector

TIERS = ("Admin", "Baseline")
ACTIONS = ("Accept", "Deny", "Pass")
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "sctp": "SCTP"}


@dataclass(frozen=True)
class ClusterPeer:
    """One ``from``/``to`` entry: ``namespaces`` (pods of matching namespaces), ``pods``
    (``namespace_selector`` and ``pod_selector``), ``networks`` (CIDRs), or ``unknown`` (the
    fields of a peer this version does not define)."""

    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    networks: tuple[str, ...] = ()
    unknown: str = ""


@dataclass(frozen=True)
class ClusterRule:
    """A rule: ``action`` on traffic with one of ``peers`` on one of ``ports`` (None: any
    traffic, every protocol)."""

    name: str
    action: str
    peers: tuple[ClusterPeer, ...]
    ports: tuple[PortSpec, ...] | None = None


@dataclass(frozen=True)
class ClusterPolicy:
    """One ClusterNetworkPolicy; ``subject_pods`` None means ``subject.namespaces``."""

    name: str
    tier: str
    priority: int
    subject_namespaces: LabelSelector
    subject_pods: LabelSelector | None
    ingress: tuple[ClusterRule, ...] = ()
    egress: tuple[ClusterRule, ...] = ()

    @property
    def label(self) -> str:
        return f"ClusterNetworkPolicy/{self.name} ({self.tier} {self.priority})"


def is_cluster_policy(document: Mapping[str, Any]) -> bool:
    return document.get("kind") == CLUSTER_KIND and str(document.get("apiVersion", "")).startswith(
        "policy.networking.k8s.io/"
    )


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PolicyParseError(f"{what} must be a mapping")
    return value


def _list(value: Any, what: str, *, required: bool = False) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise PolicyParseError(
            f"{what} must be a non-empty list" if required else f"{what} must be a list"
        )
    return value


def _peer(value: Any, what: str, egress: bool) -> ClusterPeer:
    data = _mapping(value, what)
    known = {"namespaces", "pods", *(("networks",) if egress else ())}
    fields = [k for k in data if k in known]
    unknown = sorted(k for k in data if k not in known)
    if unknown or len(fields) != 1:
        # "Exactly one of the fields must be set"; otherwise fail closed (the CRD's words).
        return ClusterPeer(unknown=", ".join(unknown) or "no field")
    key = fields[0]
    if key == "namespaces":
        return ClusterPeer(
            namespace_selector=selector_from_manifest(data[key] or {}, f"{what}.namespaces")
        )
    if key == "pods":
        pods = _mapping(data[key], f"{what}.pods")
        if "podSelector" not in pods:
            raise PolicyParseError(f"{what}.pods without podSelector")
        return ClusterPeer(
            namespace_selector=selector_from_manifest(
                pods.get("namespaceSelector") or {}, f"{what}.pods.namespaceSelector"
            ),
            pod_selector=selector_from_manifest(
                pods["podSelector"] or {}, f"{what}.pods.podSelector"
            ),
        )
    networks = tuple(str(n) for n in _list(data[key], f"{what}.networks", required=True))
    for cidr in networks:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise PolicyParseError(f"{what}.networks: {cidr!r} is not a CIDR") from None
    return ClusterPeer(networks=networks)


def _ports(value: Any, what: str) -> tuple[PortSpec, ...] | None:
    if value is None:
        return None  # "If unspecified, protocol-specific attributes will not be used"
    out: list[PortSpec] = []
    for i, item in enumerate(_list(value, what, required=True)):
        item = _mapping(item, f"{what}[{i}]")
        if len(item) != 1:
            raise PolicyParseError(
                f"{what}[{i}]: exactly one of tcp, udp, sctp, destinationNamedPort"
            )
        ((key, body),) = item.items()
        if key == "destinationNamedPort":
            # A container port name, whatever its protocol (resolved on the destination pod).
            out.extend(PortSpec(p, str(body)) for p in _PROTOCOLS.values())
            continue
        if key not in _PROTOCOLS:
            raise PolicyParseError(f"{what}[{i}]: unknown protocol match {key!r}")
        port = _mapping(
            _mapping(body, f"{what}[{i}].{key}").get("destinationPort"),
            f"{what}[{i}].{key}.destinationPort",
        )
        if "number" in port:
            out.append(PortSpec(_PROTOCOLS[key], int(port["number"])))
        elif "range" in port:
            span = _mapping(port["range"], "range")
            start, end = int(span["start"]), int(span["end"])
            if not 1 <= start < end <= 65535:
                raise PolicyParseError(
                    f"{what}[{i}]: range {start}-{end} (start must be below end)"
                )
            out.append(PortSpec(_PROTOCOLS[key], start, end))
        else:
            raise PolicyParseError(f"{what}[{i}].{key}.destinationPort: number or range")
    return tuple(out)


def _rules(value: Any, section: str, egress: bool) -> tuple[ClusterRule, ...]:
    rules = []
    peers_key = "to" if egress else "from"
    for i, item in enumerate(_list(value, section)):
        what = f"{section}[{i}]"
        item = _mapping(item, what)
        action = item.get("action")
        if action not in ACTIONS:
            raise PolicyParseError(
                f"{what}: action must be one of {', '.join(ACTIONS)}, not {action!r}"
            )
        peers = tuple(
            _peer(p, f"{what}.{peers_key}[{j}]", egress)
            for j, p in enumerate(_list(item.get(peers_key), f"{what}.{peers_key}", required=True))
        )
        rules.append(
            ClusterRule(
                str(item.get("name") or f"{section}[{i}]"),
                str(action),
                peers,
                _ports(item.get("protocols"), f"{what}.protocols"),
            )
        )
    return tuple(rules)


def cluster_policy_from_manifest(document: Mapping[str, Any]) -> ClusterPolicy:
    """Read one ClusterNetworkPolicy (errors say which field; the caller names the file)."""
    if document.get("apiVersion") != CLUSTER_API_VERSION:
        raise PolicyParseError(
            f"{document.get('apiVersion')} {CLUSTER_KIND}: expected {CLUSTER_API_VERSION}"
        )
    metadata = document.get("metadata")
    name = str(metadata.get("name") or "") if isinstance(metadata, Mapping) else ""
    if not name:
        raise PolicyParseError(f"{CLUSTER_KIND} without metadata.name")
    spec = _mapping(document.get("spec"), "spec")
    tier = spec.get("tier")
    if tier not in TIERS:
        raise PolicyParseError(f"{name}: spec.tier must be Admin or Baseline, not {tier!r}")
    priority = spec.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 1000:
        raise PolicyParseError(f"{name}: spec.priority must be a number 0..1000, not {priority!r}")
    subject = _mapping(spec.get("subject"), "spec.subject")
    if len(subject) != 1 or next(iter(subject)) not in ("namespaces", "pods"):
        raise PolicyParseError(f"{name}: spec.subject needs exactly one of namespaces, pods")
    if "namespaces" in subject:
        namespaces, pods = (
            selector_from_manifest(subject["namespaces"] or {}, "subject.namespaces"),
            None,
        )
    else:
        data = _mapping(subject["pods"], "subject.pods")
        namespaces = selector_from_manifest(
            data.get("namespaceSelector") or {}, "subject.pods.namespaceSelector"
        )
        pods = selector_from_manifest(data.get("podSelector") or {}, "subject.pods.podSelector")
    return ClusterPolicy(
        name=name,
        tier=str(tier),
        priority=priority,
        subject_namespaces=namespaces,
        subject_pods=pods,
        ingress=_rules(spec.get("ingress"), "ingress", False),
        egress=_rules(spec.get("egress"), "egress", True),
    )
