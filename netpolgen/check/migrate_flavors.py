"""A migration plan (:mod:`netpolgen.check.migrate`) in another policy API (``--flavor``).

- ``calico-staged``: each stage is written twice, audit first: ``<stage>/1-staged/`` holds the
  stage's policies as Calico ``StagedKubernetesNetworkPolicy`` objects (evaluated and reported by
  Calico, enforcing nothing), ``<stage>/2-enforced/`` the same policies as NetworkPolicies, to
  apply once the staged verdicts show no denied flow. ``rollback.txt`` deletes both kinds.
- ``cilium``: each stage's policies as CiliumNetworkPolicies; ``rollback.txt`` deletes those.
- ``k8s``: :meth:`MigrationPlan.files` unchanged.

With guardrails (``migrate --guardrails FILE``), ``00-guardrails/`` comes before the stages: the
Admin-tier ClusterNetworkPolicy objects (:func:`~netpolgen.policy.flavors.cluster_policy.
guardrail_manifests`), to apply first, as the stages' policies were generated under them.
"""

from __future__ import annotations

import os
from pathlib import Path

from netpolgen.check.migrate import MigrationPlan, Stage
from netpolgen.policy.flavors import check_flavor, flavor_manifests
from netpolgen.policy.flavors.cluster_policy import guardrail_manifests
from netpolgen.policy.guardrails import Guardrails
from netpolgen.policy.render import dump_yaml, sorted_policies
from netpolgen.policy.write import kustomizations, policy_path, write_tree

_KIND = {"calico-staged": "stagedkubernetesnetworkpolicy", "cilium": "ciliumnetworkpolicy"}


def _rollback(stage: Stage, flavor: str) -> list[str]:
    order = stage.deny + list(reversed(sorted_policies(stage.allow)))
    lines = [f"kubectl delete {_KIND[flavor]} -n {p.namespace} {p.name}" for p in order]
    if flavor == "calico-staged":
        # Enforced after staging: undo the enforced policies first, then the staged ones.
        lines = [f"kubectl delete networkpolicy -n {p.namespace} {p.name}" for p in order] + lines
    return lines


GUARDRAILS_FOLDER = "00-guardrails"  # stage folders are 01-..., so this one comes first


def plan_files(
    plan: MigrationPlan, flavor: str = "k8s", *, guardrails: Guardrails | None = None
) -> dict[str, str]:
    """Relative path -> text of ``plan`` in ``flavor`` (see the module docstring).

    Examples:
        >>> plan_files(plan, "calico-staged")  # doctest: +SKIP
    """
    check_flavor(flavor)
    out = _flavor_files(plan, flavor)
    if guardrails is None:
        return out
    manifests = guardrail_manifests(guardrails)
    files = {
        Path(GUARDRAILS_FOLDER) / f"{m['metadata']['name']}.yaml": dump_yaml(m) for m in manifests
    }
    files.update(kustomizations(files, directories=[Path(GUARDRAILS_FOLDER)]))
    out.update({path.as_posix(): text for path, text in files.items()})
    out[f"{GUARDRAILS_FOLDER}/rollback.txt"] = "".join(
        f"kubectl delete clusternetworkpolicy {m['metadata']['name']}\n" for m in manifests
    )
    out["README.md"] += (
        f"\n`{GUARDRAILS_FOLDER}/` holds the guardrails of {guardrails.source} as Admin-tier "
        "ClusterNetworkPolicy objects (policy.networking.k8s.io/v1alpha2): apply it first "
        f"(`kubectl apply -k {GUARDRAILS_FOLDER}`); the stages were generated under them, and "
        "no stage allows what a deny entry forbids.\n"
    )
    return dict(sorted(out.items()))


def _flavor_files(plan: MigrationPlan, flavor: str) -> dict[str, str]:
    if flavor == "k8s":
        return plan.files()
    out: dict[str, str] = {}
    for stage in plan.stages:
        policies = stage.allow + stage.deny
        staged_or_cilium = flavor_manifests(policies, flavor)
        folders = ["1-staged/", "2-enforced/"] if flavor == "calico-staged" else [""]
        for policy, manifest in staged_or_cilium:
            name = policy_path(policy).name  # checks the names are safe file names
            out[f"{stage.folder}/{folders[0]}{name}"] = dump_yaml(manifest)
            if flavor == "calico-staged":
                out[f"{stage.folder}/{folders[1]}{name}"] = dump_yaml(policy.to_manifest())
        out[f"{stage.folder}/rollback.txt"] = "\n".join(_rollback(stage, flavor)) + "\n"
    # kubectl apply -k on each folder of a stage, as for the k8s plan (none at the top level).
    folders_of = [
        Path(stage.folder) / folder.rstrip("/")
        for stage in plan.stages
        for folder in (["1-staged/", "2-enforced/"] if flavor == "calico-staged" else [""])
    ]
    paths = {Path(name): text for name, text in out.items()}
    for path, text in kustomizations(paths, directories=folders_of).items():
        out[path.as_posix()] = text
    readme = plan.readme()
    if flavor == "calico-staged":
        readme += (
            "\nEach stage has `1-staged/` (Calico StagedKubernetesNetworkPolicy: apply, then watch "
            "the staged verdicts in Calico's flow logs) and `2-enforced/` (the same policies as "
            "NetworkPolicies: apply once no staged verdict denies wanted traffic).\n"
        )
    out["README.md"] = readme
    return out


def write_plan_flavor(
    plan: MigrationPlan,
    directory: str | os.PathLike[str],
    flavor: str = "k8s",
    *,
    force: bool = False,
    guardrails: Guardrails | None = None,
) -> list[Path]:
    """:func:`netpolgen.write_plan` in ``flavor`` (with the ``guardrails``' objects first):
    written whole or not at all."""
    files = plan_files(plan, flavor, guardrails=guardrails)
    return write_tree({Path(p): t for p, t in files.items()}, directory, force=force)
