"""Output flavours: the same policies as other APIs than ``networking.k8s.io/v1``.

The policy model stays Kubernetes NetworkPolicy (one evaluator, one synthesis); a flavour is a
last rendering step over the synthesized :class:`~netpolgen.policy.model.Policy` objects:

- ``k8s``: the NetworkPolicies themselves (the default; byte-identical to ``render_yaml``).
- ``calico-staged``: Calico ``StagedKubernetesNetworkPolicy`` objects, to audit before enforcing
  (:mod:`netpolgen.policy.flavors.calico`).
- ``cilium``: ``cilium.io/v2`` CiliumNetworkPolicy objects (:mod:`netpolgen.policy.flavors.cilium`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from netpolgen.errors import OutputError
from netpolgen.ingest.dns import DnsMap
from netpolgen.policy.default_deny import is_system_namespace
from netpolgen.policy.flavors.calico import staged_manifest
from netpolgen.policy.flavors.cilium import CiliumOptions, cilium_manifest
from netpolgen.policy.flavors.cluster_policy import baseline_default_deny, guardrail_manifests
from netpolgen.policy.fqdn import annotate_fqdns
from netpolgen.policy.guardrails import Guardrails
from netpolgen.policy.model import Policy
from netpolgen.policy.render import dump_yaml, render_yaml, sorted_policies
from netpolgen.policy.write import kustomizations, policy_path, write_policy_dir, write_tree

__all__ = [
    "FLAVORS",
    "CiliumOptions",
    "cluster_policy_manifests",
    "flavor_manifests",
    "flavor_yaml",
    "write_flavor_dir",
]

CLUSTER_DIR = "_cluster"  # not a valid namespace name: cannot collide with one

FLAVORS = ("k8s", "cilium", "calico-staged")
"""The output flavours of ``--flavor``; ``k8s`` is the default."""


def check_flavor(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise OutputError(f"unknown flavor {flavor!r}; choose one of {', '.join(FLAVORS)}")


def cluster_policy_manifests(
    policies: Iterable[Policy], guardrails: Guardrails | None = None, *, baseline: bool = True
) -> list[dict[str, Any]]:
    """The cluster-scoped objects: the Admin-tier objects of ``guardrails`` (``--guardrails``),
    then, with ``baseline`` (``--cluster-policies``), a Baseline-tier default deny
    (:mod:`.cluster_policy`) for the namespaces of ``policies`` (system ones left out, as by
    ``--default-deny``), for the directions they cover; none when there are no policies."""
    admin = guardrail_manifests(guardrails) if guardrails is not None else []
    if not baseline:
        return admin
    policies = list(policies)
    namespaces = {p.namespace for p in policies if not is_system_namespace(p.namespace)}
    if not namespaces:
        return admin
    types = {t for p in policies for t in p.policy_types}
    return admin + [
        baseline_default_deny(namespaces, ingress="Ingress" in types, egress="Egress" in types)
    ]


def flavor_manifests(
    policies: Iterable[Policy],
    flavor: str = "k8s",
    *,
    cilium: CiliumOptions | None = None,
    dns: DnsMap | None = None,
) -> list[tuple[Policy, dict[str, Any]]]:
    """``(policy, manifest)`` for each policy in namespace and name order, in ``flavor``.

    Every flavour keeps each policy's namespace, name, labels and evidence annotations, so the
    files and the review read the same whatever the API.
    """
    check_flavor(flavor)
    if dns:
        policies = annotate_fqdns(policies, dns)
        cilium = replace(cilium or CiliumOptions(), dns=dns)
    out = []
    for policy in sorted_policies(policies):
        manifest = policy.to_manifest()
        if flavor == "calico-staged":
            manifest = staged_manifest(manifest)
        elif flavor == "cilium":
            manifest = cilium_manifest(policy, cilium or CiliumOptions())
        out.append((policy, manifest))
    return out


def flavor_yaml(
    policies: Iterable[Policy],
    flavor: str = "k8s",
    *,
    cilium: CiliumOptions | None = None,
    dns: DnsMap | None = None,
    cluster_policies: bool = False,
    guardrails: Guardrails | None = None,
) -> str:
    """All ``policies`` as one multi-document YAML stream in ``flavor``.

    Args:
        policies: the policies (``GenerateResult.policies``).
        flavor: one of :data:`FLAVORS`; ``k8s`` is exactly :func:`netpolgen.render_yaml`.
        cilium: what the ``cilium`` flavour knows beyond the policies (entities, DNS names).
        dns: the DNS map of the same logs (:func:`netpolgen.read_dns_map`): names of egress
            ipBlocks in a ``netpolgen.io/fqdns`` annotation, and ``toFQDNs`` with ``cilium``.
        cluster_policies: also write the Baseline default deny of
            :func:`cluster_policy_manifests`, after the policies.
        guardrails: also write their Admin-tier objects, after the policies.

    Returns:
        The YAML text, each document starting with ``---``, ordered by namespace and name.

    Raises:
        OutputError: for an unknown flavour.

    Examples:
        >>> flavor_yaml([], "cilium")
        ''
        >>> print(flavor_yaml(result.policies, "calico-staged"))  # doctest: +SKIP
    """
    check_flavor(flavor)
    policies = list(policies)
    extra = "".join(
        "---\n" + dump_yaml(m)
        for m in cluster_policy_manifests(policies, guardrails, baseline=cluster_policies)
    )
    if flavor == "k8s":
        # The very code path of the default output (unchanged when no block has a name).
        return render_yaml(annotate_fqdns(policies, dns) if dns else policies) + extra
    return (
        "".join(
            "---\n" + dump_yaml(manifest)
            for _, manifest in flavor_manifests(policies, flavor, cilium=cilium, dns=dns)
        )
        + extra
    )


def write_flavor_dir(
    policies: Iterable[Policy],
    directory: str | os.PathLike[str],
    flavor: str = "k8s",
    *,
    force: bool = False,
    cilium: CiliumOptions | None = None,
    dns: DnsMap | None = None,
    cluster_policies: bool = False,
    guardrails: Guardrails | None = None,
) -> list[Path]:
    """:func:`netpolgen.write_policy_dir` in ``flavor``: one file per policy,
    ``<namespace>/<name>.yaml``, written whole or not at all.

    Args:
        policies: the policies to write.
        directory: where; ``<namespace>/<name>.yaml`` beneath it.
        flavor: one of :data:`FLAVORS`.
        force: replace an existing non-empty directory.
        cilium: what the ``cilium`` flavour knows beyond the policies.
        dns: the DNS map of the same logs (see :func:`flavor_yaml`).
        cluster_policies: also write the Baseline default deny of
            :func:`cluster_policy_manifests` under ``_cluster/``.
        guardrails: also write their Admin-tier objects under ``_cluster/``, and a
            ``kustomization.yaml`` in every directory (as :func:`netpolgen.write_policy_dir`).

    Returns:
        The paths written, relative to ``directory``.

    Raises:
        OutputError: as :func:`netpolgen.write_policy_dir`, or for an unknown flavour.

    Examples:
        >>> write_flavor_dir(result.policies, "policies/", "cilium")  # doctest: +SKIP
        [PosixPath('shop/frontend-access-egress.yaml'), ...]
    """
    check_flavor(flavor)
    policies = list(policies)
    if flavor == "k8s" and not cluster_policies and guardrails is None:
        annotated = annotate_fqdns(policies, dns) if dns else policies
        return write_policy_dir(annotated, Path(directory), force=force)
    pairs = flavor_manifests(policies, flavor, cilium=cilium, dns=dns)
    files = {policy_path(policy): dump_yaml(manifest) for policy, manifest in pairs}
    if len(files) != len(pairs):
        raise OutputError("two policies would be written to the same file", source=str(directory))
    for manifest in cluster_policy_manifests(policies, guardrails, baseline=cluster_policies):
        files[Path(CLUSTER_DIR) / f"{manifest['metadata']['name']}.yaml"] = dump_yaml(manifest)
    if guardrails is not None:
        # As write_policy_dir: kubectl apply -k DIR applies the policies and the guardrails.
        written = write_tree({**files, **kustomizations(files)}, directory, force=force)
        return [p for p in written if p in files]
    return write_tree(files, directory, force=force)
