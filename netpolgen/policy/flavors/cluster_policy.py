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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from netpolgen.selectors import NAMESPACE_NAME_LABEL

CLUSTER_API_VERSION = "policy.networking.k8s.io/v1alpha2"
CLUSTER_KIND = "ClusterNetworkPolicy"
BASELINE_DENY_NAME = "netpolgen-baseline-default-deny"
BASELINE_DENY_PRIORITY = 1000
MAX_RULES = 25  # ingress and egress each: maxItems in the CRD
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
            "labels": {"app.kubernetes.io/managed-by": "netpolgen"},
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
