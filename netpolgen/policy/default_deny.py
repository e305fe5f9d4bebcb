"""Default-deny policies: the baseline that makes every other policy an allow-list.

A policy with an empty ``podSelector`` selects every pod of its namespace; with ``Ingress`` (or
``Egress``) in ``policyTypes`` and no rules of that direction, it isolates them all and allows
nothing itself, so only what other policies allow gets through (policies are additive).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from netpolgen.policy.model import Policy
from netpolgen.selectors import LabelSelector

__all__ = [
    "DEFAULT_DENY_NAMES",
    "SYSTEM_NAMESPACES",
    "SYSTEM_PREFIXES",
    "default_deny_policies",
    "is_default_deny",
    "is_system_namespace",
]

DEFAULT_DENY_NAMES = {"Ingress": "default-deny-ingress", "Egress": "default-deny-egress"}
_LABELS = (("app.kubernetes.io/managed-by", "netpolgen"),)
SYSTEM_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "local-path-storage")
# Namespaces run by the platform or the network plugin (Calico's default staged-policy selector
# excludes the same prefixes). Default-deny there breaks the cluster, not one app.
SYSTEM_PREFIXES = ("kube-", "openshift-", "calico-", "tigera-", "cilium-", "gke-", "gmp-")


def is_system_namespace(
    namespace: str,
    names: Sequence[str] = SYSTEM_NAMESPACES,
    prefixes: Sequence[str] = SYSTEM_PREFIXES,
) -> bool:
    """Whether a namespace belongs to the platform (left out of default-deny unless asked).

    Examples:
        >>> is_system_namespace("kube-system"), is_system_namespace("shop")
        (True, False)
    """
    return namespace in names or namespace.startswith(tuple(prefixes))


def default_deny_policies(
    namespaces: Iterable[str], *, ingress: bool = True, egress: bool = True
) -> list[Policy]:
    """One ``default-deny-ingress`` and/or ``default-deny-egress`` policy per namespace.

    Args:
        namespaces: the namespaces to isolate.
        ingress: write ``default-deny-ingress``.
        egress: write ``default-deny-egress``.

    Examples:
        >>> [p.name for p in default_deny_policies(["shop"])]
        ['default-deny-ingress', 'default-deny-egress']
    """
    directions = [d for d, wanted in (("Ingress", ingress), ("Egress", egress)) if wanted]
    return [
        Policy(
            name=DEFAULT_DENY_NAMES[direction],
            namespace=namespace,
            pod_selector=LabelSelector(),
            policy_types=(direction,),
            labels=_LABELS,
            annotations=(
                (
                    "netpolgen.io/purpose",
                    f"default-deny {direction.lower()}: every pod in {namespace} only "
                    f"{'accepts' if direction == 'Ingress' else 'sends'} what another policy "
                    "allows",
                ),
            ),
        )
        for namespace in sorted(set(namespaces))
        for direction in directions
    ]


def is_default_deny(policy: Policy, direction: str) -> bool:
    """Whether ``policy`` isolates every pod of its namespace in ``direction`` and allows nothing
    in that direction itself."""
    rules = policy.ingress if direction == "Ingress" else policy.egress
    return policy.pod_selector.is_empty and direction in policy.policy_types and not rules
