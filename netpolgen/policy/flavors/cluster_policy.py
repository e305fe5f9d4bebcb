"""Cluster-wide guardrails: ``ClusterNetworkPolicy`` (``policy.networking.k8s.io/v1alpha2``).

The upstream cluster policy API (kubernetes-sigs/network-policy-api v0.2.0, which replaced
AdminNetworkPolicy and BaselineAdminNetworkPolicy) evaluates tiers in order: ``Admin`` rules
first (``Accept``/``Deny`` decide, ``Pass`` hands over), then the namespaces' NetworkPolicies
(a pod any of them selects for a direction is decided there), then ``Baseline`` rules for the
traffic no NetworkPolicy decided. Within a tier a lower ``priority`` (0..1000) is evaluated first.

A Baseline ``Deny`` of everything for the generated namespaces is therefore the cluster-wide form
of ``--default-deny``: pods our NetworkPolicies select keep exactly what those allow, and every
other pod of those namespaces is denied, without a ``default-deny-*`` object per namespace.

Priorities we write (documented for the user's own objects): the Baseline default deny is 1000,
the last evaluated, so any Baseline policy of the cluster's own comes before it.

Guardrails (``--guardrails``, :mod:`netpolgen.policy.guardrails`) are Admin-tier objects, one per
action and subject (the pods a rule protects: the ``to`` side for ingress rules, the ``from``
side for egress rules), at most :data:`MAX_RULES` rules per direction (more are split into
further objects, ``-2``, ``-3``, ...):

- ``deny`` entries are ``netpolgen-guardrail-deny-<n>`` at priorities 100, 101, ...; ``allow``
  entries (and ``allow-dns``) are ``netpolgen-guardrail-accept-<n>`` at 200, 201, .... Every
  Deny comes before every Accept, so an allow entry that overlaps a deny entry cannot open it:
  a deny is a "never", as it is for generation, which leaves the connections it covers out
  whatever else allows them. Each object has its own priority, so the order is never the one the
  API leaves undefined (two objects at one priority); 0..99 and 300..999 stay free for the
  cluster's own Admin policies, before, between or after ours.
- An entry between pods becomes an ingress rule on its ``to`` pods and an egress rule on its
  ``from`` pods: a Deny needs only one of them, but an Accept must be accepted at both ends (the
  API decides each direction on its own, and a NetworkPolicy of either end could deny it), so
  both are written for both actions. An entry to ``networks`` is an egress rule only.
- Ports are ``protocols`` entries (``tcp: {destinationPort: {number: 9090}}`` or ``range``);
  an entry without ports has no ``protocols`` (every protocol and port).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import Any

from netpolgen.errors import OutputError
from netpolgen.policy.guardrails import Guardrail, Guardrails, PortRange, Side
from netpolgen.selectors import NAMESPACE_NAME_LABEL

CLUSTER_API_VERSION = "policy.networking.k8s.io/v1alpha2"
CLUSTER_KIND = "ClusterNetworkPolicy"
BASELINE_DENY_NAME = "netpolgen-baseline-default-deny"
BASELINE_DENY_PRIORITY = 1000
MAX_RULES = 25  # ingress and egress each: maxItems in the CRD
DENY_PRIORITY = 100  # the first deny object; accept objects start at ACCEPT_PRIORITY
ACCEPT_PRIORITY = 200
_MANAGED = {"app.kubernetes.io/managed-by": "netpolgen"}
_EVERYWHERE = ["0.0.0.0/0", "::/0"]


def baseline_default_deny(
    namespaces: Iterable[str], *, ingress: bool = True, egress: bool = True
) -> dict[str, Any]:
    """The Baseline-tier ``ClusterNetworkPolicy`` denying, in ``namespaces``, what no
    NetworkPolicy decides: ingress from every pod, egress to every pod and every address.

    Examples:
        >>> baseline_default_deny(["shop"], egress=False)["spec"]["ingress"][0]["action"]
        'Deny'
    """
    names = sorted(set(namespaces))
    spec: dict[str, Any] = {
        "tier": "Baseline",
        "priority": BASELINE_DENY_PRIORITY,
        "subject": {
            "namespaces": {
                "matchExpressions": [
                    {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": names}
                ]
            }
        },
    }
    if ingress:
        # Ingress peers are pods only in v1alpha2 (from: namespaces|pods): {} is every namespace.
        spec["ingress"] = [
            {"name": "default-deny-ingress", "action": "Deny", "from": [{"namespaces": {}}]}
        ]
    if egress:
        spec["egress"] = [
            {
                "name": "default-deny-egress",
                "action": "Deny",
                "to": [{"namespaces": {}}, {"networks": list(_EVERYWHERE)}],
            }
        ]
    return {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": CLUSTER_KIND,
        "metadata": {
            "name": BASELINE_DENY_NAME,
            "labels": dict(_MANAGED),
            "annotations": {
                "netpolgen.io/purpose": (
                    "cluster-wide default deny (Baseline tier): in "
                    + ", ".join(names)
                    + ", traffic no NetworkPolicy allows is denied"
                )
            },
        },
        "spec": spec,
    }


def _side_selector(side: Side) -> dict[str, Any]:
    """A subject or peer: ``namespaces`` for every pod of the namespaces, else ``pods``."""
    namespaces = side.namespaces.to_manifest()
    if side.pods.is_empty:
        return {"namespaces": namespaces}
    return {"pods": {"namespaceSelector": namespaces, "podSelector": side.pods.to_manifest()}}


def _protocol(item: PortRange) -> dict[str, Any]:
    port: dict[str, Any] = (
        {"number": item.first}
        if item.first == item.last
        else {"range": {"start": item.first, "end": item.last}}
    )
    return {item.protocol.lower(): {"destinationPort": port}}


def _rule(guardrail: Guardrail, peers_key: str, peer: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": guardrail.name, "action": guardrail.action, peers_key: [peer]}
    if guardrail.ports:
        rule["protocols"] = [_protocol(p) for p in guardrail.ports]
    return rule


def _rules_of(
    by_subject: dict[str, tuple[dict[str, Any], list[Any], list[Any]]], subject: dict[str, Any]
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    return by_subject.setdefault(json.dumps(subject, sort_keys=True), (subject, [], []))


def guardrail_manifests(guardrails: Guardrails) -> list[dict[str, Any]]:
    """The Admin-tier ``ClusterNetworkPolicy`` objects of ``guardrails`` (see the module
    docstring for their names, priorities and rules).

    Raises:
        OutputError: more subjects than the priorities set aside for one action (100).

    Examples:
        >>> from netpolgen.policy.guardrails import parse_guardrails
        >>> g = parse_guardrails({"deny": [{"from": {"namespace": "dev"},
        ...                                 "to": {"namespace": "prod"}}]})
        >>> [(m["metadata"]["name"], m["spec"]["priority"]) for m in guardrail_manifests(g)]
        [('netpolgen-guardrail-deny-1', 100), ('netpolgen-guardrail-deny-2', 101)]
    """
    out: list[dict[str, Any]] = []
    for action, entries, base in (
        ("deny", guardrails.deny, DENY_PRIORITY),
        ("accept", guardrails.allow, ACCEPT_PRIORITY),
    ):
        # subject (as JSON, for a stable key) -> (subject, ingress rules, egress rules)
        by_subject: dict[str, tuple[dict[str, Any], list[Any], list[Any]]] = {}
        rules_of = partial(_rules_of, by_subject)

        for guardrail in entries:
            if not guardrail.target.is_networks:
                rules_of(_side_selector(guardrail.target))[1].append(
                    _rule(guardrail, "from", _side_selector(guardrail.source))
                )
            peer = (
                {"networks": list(guardrail.target.networks)}
                if guardrail.target.is_networks
                else _side_selector(guardrail.target)
            )
            rules_of(_side_selector(guardrail.source))[2].append(_rule(guardrail, "to", peer))
        objects = []
        for subject, ingress, egress in by_subject.values():
            for start in range(0, max(len(ingress), len(egress)), MAX_RULES):
                spec: dict[str, Any] = {"tier": "Admin", "subject": subject}
                if ingress[start : start + MAX_RULES]:
                    spec["ingress"] = ingress[start : start + MAX_RULES]
                if egress[start : start + MAX_RULES]:
                    spec["egress"] = egress[start : start + MAX_RULES]
                objects.append(spec)
        if len(objects) > ACCEPT_PRIORITY - DENY_PRIORITY:
            raise OutputError(
                f"{len(objects)} {action} guardrail objects: at most "
                f"{ACCEPT_PRIORITY - DENY_PRIORITY} have a priority of their own",
                source=guardrails.source,
                hint="merge entries that protect the same pods",
            )
        for index, spec in enumerate(objects):
            names = sorted({r["name"] for r in spec.get("ingress", []) + spec.get("egress", [])})
            out.append(
                {
                    "apiVersion": CLUSTER_API_VERSION,
                    "kind": CLUSTER_KIND,
                    "metadata": {
                        "name": f"netpolgen-guardrail-{action}-{index + 1}",
                        "labels": dict(_MANAGED),
                        "annotations": {
                            "netpolgen.io/purpose": (
                                f"guardrails from {guardrails.source} (Admin tier): "
                                + ", ".join(names)
                            )
                        },
                    },
                    "spec": {"priority": base + index, **spec},
                }
            )
    return out
