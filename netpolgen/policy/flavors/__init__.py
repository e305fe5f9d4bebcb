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
from pathlib import Path
from typing import Any

from netpolgen.errors import OutputError
from netpolgen.policy.flavors.calico import staged_manifest
from netpolgen.policy.flavors.cilium import CiliumOptions, cilium_manifest
from netpolgen.policy.model import Policy
from netpolgen.policy.render import dump_yaml, render_yaml, sorted_policies
from netpolgen.policy.write import policy_path, write_policy_dir, write_tree

__all__ = ["FLAVORS", "CiliumOptions", "flavor_manifests", "flavor_yaml", "write_flavor_dir"]

FLAVORS = ("k8s", "cilium", "calico-staged")
"""The output flavours of ``--flavor``; ``k8s`` is the default."""


def check_flavor(flavor: str) -> None:
    if flavor not in FLAVORS:
        raise OutputError(f"unknown flavor {flavor!r}; choose one of {', '.join(FLAVORS)}")


def flavor_manifests(
    policies: Iterable[Policy], flavor: str = "k8s", *, cilium: CiliumOptions | None = None
) -> list[tuple[Policy, dict[str, Any]]]:
    """``(policy, manifest)`` for each policy in namespace and name order, in ``flavor``.

    Every flavour keeps each policy's namespace, name, labels and evidence annotations, so the
    files and the review read the same whatever the API.
    """
    check_flavor(flavor)
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
    policies: Iterable[Policy], flavor: str = "k8s", *, cilium: CiliumOptions | None = None
) -> str:
    """All ``policies`` as one multi-document YAML stream in ``flavor``.

    Args:
        policies: the policies (``GenerateResult.policies``).
        flavor: one of :data:`FLAVORS`; ``k8s`` is exactly :func:`netpolgen.render_yaml`.
        cilium: what the ``cilium`` flavour knows beyond the policies (entities, DNS names).

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
    if flavor == "k8s":
        return render_yaml(policies)  # the very code path of the default output
    return "".join(
        "---\n" + dump_yaml(manifest)
        for _, manifest in flavor_manifests(policies, flavor, cilium=cilium)
    )


def write_flavor_dir(
    policies: Iterable[Policy],
    directory: str | os.PathLike[str],
    flavor: str = "k8s",
    *,
    force: bool = False,
    cilium: CiliumOptions | None = None,
) -> list[Path]:
    """:func:`netpolgen.write_policy_dir` in ``flavor``: one file per policy,
    ``<namespace>/<name>.yaml``, written whole or not at all.

    Args:
        policies: the policies to write.
        directory: where; ``<namespace>/<name>.yaml`` beneath it.
        flavor: one of :data:`FLAVORS`.
        force: replace an existing non-empty directory.
        cilium: what the ``cilium`` flavour knows beyond the policies.

    Returns:
        The paths written, relative to ``directory``.

    Raises:
        OutputError: as :func:`netpolgen.write_policy_dir`, or for an unknown flavour.

    Examples:
        >>> write_flavor_dir(result.policies, "policies/", "cilium")  # doctest: +SKIP
        [PosixPath('shop/frontend-access-egress.yaml'), ...]
    """
    check_flavor(flavor)
    if flavor == "k8s":
        return write_policy_dir(policies, Path(directory), force=force)
    pairs = flavor_manifests(policies, flavor, cilium=cilium)
    files = {policy_path(policy): dump_yaml(manifest) for policy, manifest in pairs}
    if len(files) != len(pairs):
        raise OutputError("two policies would be written to the same file", source=str(directory))
    return write_tree(files, directory, force=force)
