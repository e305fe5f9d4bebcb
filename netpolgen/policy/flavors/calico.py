"""Calico staged policies: ``StagedKubernetesNetworkPolicy`` (``projectcalico.org/v3``).

Calico's staged policies let a cluster audit a policy before enforcing it: a staged policy is
evaluated and reported (flow logs, "staged" verdicts) but never drops traffic. The
``StagedKubernetesNetworkPolicy`` kind carries a ``networking.k8s.io/v1`` NetworkPolicy spec
unchanged (Calico docs, "Stage, preview impacts, and enforce policy"; the CRD in Calico v3.32's
``api/config/crd/projectcalico.org_stagedkubernetesnetworkpolicies.yaml``: ``podSelector``,
``policyTypes``, ``ingress``, ``egress`` with the upstream field names), plus ``stagedAction``:
``Set`` (the default) stages the policy as written; ``Delete`` stages the removal of the enforced
policy of that name; ``Learn`` and ``Ignore`` are not ours to write.

Enforcing a staged policy (``calicoctl``/the UI's "enforce") creates the NetworkPolicy of the same
namespace and name with the same spec, so reading one back as its enforced form is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STAGED_API_VERSION = "projectcalico.org/v3"
STAGED_KIND = "StagedKubernetesNetworkPolicy"
STAGED_LIST_KIND = "StagedKubernetesNetworkPolicyList"
SET = "Set"


def staged_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The staged form of a ``networking.k8s.io/v1`` NetworkPolicy manifest: same metadata
    and spec, ``stagedAction: Set`` written out (it is the default) so the intent is explicit."""
    spec = dict(manifest["spec"])
    spec["stagedAction"] = SET
    return {
        "apiVersion": STAGED_API_VERSION,
        "kind": STAGED_KIND,
        "metadata": dict(manifest["metadata"]),
        "spec": spec,
    }


def is_staged(document: Mapping[str, Any]) -> bool:
    """Whether ``document`` is a Calico ``StagedKubernetesNetworkPolicy``."""
    return document.get("kind") == STAGED_KIND and str(
        document.get("apiVersion", STAGED_API_VERSION)
    ).startswith("projectcalico.org/")


def staged_action(document: Mapping[str, Any]) -> str:
    """``spec.stagedAction`` with the CRD's default (``Set``)."""
    spec = document.get("spec")
    action = spec.get("stagedAction") if isinstance(spec, Mapping) else None
    return str(action) if action else SET


def enforced_manifest(document: Mapping[str, Any]) -> dict[str, Any]:
    """The NetworkPolicy that enforcing a ``stagedAction: Set`` staged policy creates."""
    spec = document.get("spec")
    spec = (
        {k: v for k, v in spec.items() if k != "stagedAction"} if isinstance(spec, Mapping) else {}
    )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": document.get("metadata"),
        "spec": spec,
    }
