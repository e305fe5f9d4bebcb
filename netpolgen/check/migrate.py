"""A staged plan from "everything is allowed" to default-deny, that breaks nothing observed.

The plan works per namespace and per direction. A stage applies, for one namespace, the
generated allow policies of one direction (``<workload>-access-ingress`` or ``-egress``) together
with the default-deny policy of that direction, so that the deny never lands before the allows it
relies on. Ingress comes before egress in each namespace (a wrong egress rule also breaks DNS, the
usual first casualty). Namespaces are ordered least risky first: those where default-deny would
break the fewest observed connections with today's policies (the allow policies are what carries
them, so fewer means less depends on the new rules); namespaces with no observed traffic come last,
since nothing proves what they need. System namespaces (``kube-system`` and friends) are left out
unless asked.

Every stage is checked before it is written: the existing policies plus all stages up to it are
replayed against the observed flows by :func:`~netpolgen.check.edges.evaluate_edges`, and the
count of denied flows is recorded (it is zero unless a flow cannot be expressed as a policy).
Existing policies are never changed; generated policies whose name is taken get a
``-netpolgen`` suffix.
Rolling back a stage deletes its policies, default-deny first.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from netpolgen._text import plural
from netpolgen.check.edges import cilium_context, describe_endpoint, edge_keys, evaluate_edges
from netpolgen.check.tables import (
    count_as_from_flows,
    render_table,
    with_workload_names,
    workload_names,
)
from netpolgen.check.verify import verify
from netpolgen.cluster.inventory import Inventory, load_inventory
from netpolgen.cluster.view import ClusterView, InventoryLike
from netpolgen.generator import generate
from netpolgen.ingest import Source, load_flows
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES, IngestReport
from netpolgen.policy.default_deny import (
    SYSTEM_NAMESPACES,
    SYSTEM_PREFIXES,
    default_deny_policies,
    is_default_deny,
    is_system_namespace,
)
from netpolgen.policy.from_reduction import GenerateOptions
from netpolgen.policy.load import load_policies
from netpolgen.policy.model import Policy
from netpolgen.policy.render import dump_yaml, sorted_policies
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator
from netpolgen.policy.write import kustomizations, policy_path, write_tree
from netpolgen.resolve import resolve_flows

__all__ = [
    "SYSTEM_NAMESPACES",
    "MigrationOptions",
    "MigrationPlan",
    "Stage",
    "is_system_namespace",
    "plan_migration",
    "plan_migration_from_files",
    "write_plan",
]

RENAME_SUFFIX = "-netpolgen"
BREAK_COLUMNS = ["src", "dst", "protocol", "dst_port", "flows"]


@dataclass(frozen=True)
class MigrationOptions:
    """How to plan.

    Attributes:
        include_system: stage system namespaces too.
        system_namespaces, system_prefixes: what counts as a system namespace.
        generate: options for the generated allow policies (both directions are staged);
            its ``namespaces``, when set, also limits the namespaces staged.

    Examples:
        >>> MigrationOptions(generate=GenerateOptions(namespaces=("shop",))).include_system
        False
    """

    include_system: bool = False
    system_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES
    system_prefixes: tuple[str, ...] = SYSTEM_PREFIXES
    generate: GenerateOptions = field(default_factory=GenerateOptions)


@dataclass
class Stage:
    """One step of the plan: one namespace, one direction.

    Attributes:
        number: 1-based position in the plan.
        namespace, direction: what the stage isolates (``Ingress`` or ``Egress``).
        allow: the generated allow policies applied in this stage.
        deny: the default-deny policy (empty when an existing policy already is one).
        breaks_today: the observed connections that this default-deny would break if it were
            applied alone on top of today's policies (``BREAK_COLUMNS``); the allow policies of
            the stage are what keeps them working.
        flows_denied_after: observed flows denied once stages 1..number are applied (0 expected).
    """

    number: int
    namespace: str
    direction: str
    allow: list[Policy]
    deny: list[Policy]
    breaks_today: pd.DataFrame
    flows_denied_after: int = 0

    @property
    def folder(self) -> str:
        return f"{self.number:02d}-{self.namespace}-{self.direction.lower()}"

    @property
    def policies(self) -> list[Policy]:
        return sorted_policies(self.allow) + self.deny

    @property
    def flows_at_risk(self) -> int:
        return int(self.breaks_today["flows"].sum()) if not self.breaks_today.empty else 0

    def rollback(self) -> list[str]:
        """kubectl commands that undo the stage, default-deny first."""
        order = self.deny + list(reversed(sorted_policies(self.allow)))
        return [f"kubectl delete networkpolicy -n {p.namespace} {p.name}" for p in order]


@dataclass
class MigrationPlan:
    """The whole plan: ordered stages, what was left out, and the checks that were run.

    Examples:
        >>> plan = plan_migration_from_files(["flows.jsonl"], None)  # doctest: +SKIP
        >>> [stage.namespace for stage in plan.stages]  # doctest: +SKIP
    """

    stages: list[Stage]
    left_out: list[str]
    unobserved: list[str]
    existing: list[Policy]
    flows_checked: int
    flows_denied_today: int
    flows_denied_final: int
    warnings: list[str] = field(default_factory=list)
    ingest: IngestReport | None = None
    # Records the replay left out, as from-flows leaves them out (see count_as_from_flows).
    records_reply: int = 0
    records_denied: int = 0
    # namespace/labels -> namespace/name, how the README names workloads (check.tables).
    names: dict[str, str] = field(default_factory=dict)

    @property
    def namespaces(self) -> list[str]:
        return list(dict.fromkeys(s.namespace for s in self.stages))

    def files(self) -> dict[str, str]:
        """Relative path -> text: per stage a folder of policy YAML, a ``kustomization.yaml``
        (``kubectl apply -k STAGE``) and ``rollback.txt``; a top-level ``README.md``.

        The top level has no kustomization on purpose: the stages are applied one at a time.
        """
        out: dict[str, str] = {}
        for stage in self.stages:
            for policy in stage.policies:
                path = policy_path(policy)  # checks the names are safe file names
                out[f"{stage.folder}/{path.name}"] = dump_yaml(policy.to_manifest())
            out[f"{stage.folder}/rollback.txt"] = "\n".join(stage.rollback()) + "\n"
        stages = [Path(stage.folder) for stage in self.stages]
        paths = {Path(name): text for name, text in out.items()}
        for path, text in kustomizations(paths, directories=stages).items():
            out[path.as_posix()] = text
        out["README.md"] = self.readme()
        return out

    def readme(self) -> str:
        """The report a person reviews before applying anything."""
        lines = [
            "# Default-deny migration plan",
            "",
            "Generated by `netpolgen migrate`. Apply the stages in order, one at a time, and watch",
            "for dropped traffic between stages. Existing policies are not changed.",
            "",
            f"- Observed flows checked: {self.flows_checked}",
            f"- Denied today by the existing {len(self.existing)} policies: "
            f"{self.flows_denied_today}",
            f"- Denied after the last stage: {self.flows_denied_final}",
            f"- Namespaces staged: {', '.join(self.namespaces) or 'none'}",
            f"- Left out (system namespaces): {', '.join(self.left_out) or 'none'}",
        ]
        if self.unobserved:
            lines.append(
                f"- No observed traffic (staged last; observe longer before applying): "
                f"{', '.join(self.unobserved)}"
            )
        for warning in self.warnings:
            lines.append(f"- Warning: {warning}")
        lines += ["", "## Stages", ""]
        summary = pd.DataFrame(
            [
                {
                    "stage": s.folder,
                    "namespace": s.namespace,
                    "direction": s.direction,
                    "allow policies": len(s.allow),
                    "default-deny": "yes" if s.deny else "already in place",
                    "connections default-deny alone would break": len(s.breaks_today),
                    "flows": s.flows_at_risk,
                    "denied after stage": s.flows_denied_after,
                }
                for s in self.stages
            ]
        )
        if not summary.empty:
            lines.append(render_table(summary, markdown=True, limit=None))
        for stage in self.stages:
            lines += [
                f"### {stage.number}. {stage.namespace}: default-deny {stage.direction.lower()}",
                "",
                f"Apply: `kubectl apply -k {stage.folder}/` (first `--dry-run=server`)",
                "",
                "Policies:",
                "",
            ]
            lines += [f"- `{p.name}`" for p in stage.policies]
            lines.append("")
            if stage.breaks_today.empty:
                lines.append("Default-deny alone would break no observed connection.")
            else:
                lines.append(
                    "Observed connections that default-deny alone would break today "
                    "(the allow policies above keep them working):"
                )
                lines.append("")
                # All of them: the README is what a person reviews before applying the stage.
                shown = with_workload_names(stage.breaks_today, self.names)
                lines.append(render_table(shown, markdown=True, limit=None))
            lines += [
                "",
                f"Check: after this stage, {plural(stage.flows_denied_after, 'observed flow')} "
                f"{'is' if stage.flows_denied_after == 1 else 'are'} denied.",
                "",
                f"Rollback (`{stage.folder}/rollback.txt`):",
                "",
                "```sh",
                *stage.rollback(),
                "```",
                "",
            ]
        return "\n".join(lines).rstrip("\n") + "\n"


def plan_migration(
    flows: pd.DataFrame,
    existing: Sequence[Policy],
    inventory: InventoryLike = None,
    options: MigrationOptions | None = None,
) -> MigrationPlan:
    """Plan the move to default-deny (see the module docstring).

    Args:
        flows: the observed traffic (a flow table).
        existing: the policies in force today.
        inventory: pods and namespaces (namespace labels, named ports, namespaces without flows).
        options: see :class:`MigrationOptions`.

    Returns:
        A :class:`MigrationPlan`; :func:`write_plan` writes it out.

    Examples:
        >>> plan = plan_migration(flows, load_policies("live/"))  # doctest: +SKIP
        >>> [s.folder for s in plan.stages]  # doctest: +SKIP
        ['01-shop-ingress', '02-shop-egress', ...]
    """
    options = options or MigrationOptions()
    if isinstance(inventory, str | os.PathLike) or (
        isinstance(inventory, list | tuple)
        and inventory
        and all(isinstance(i, str | os.PathLike) for i in inventory)
    ):
        paths = [inventory] if isinstance(inventory, str | os.PathLike) else inventory
        inventory = load_inventory([Path(p) for p in paths])
    cluster = ClusterView.from_inventory(inventory)
    existing = list(existing)
    warnings: list[str] = []

    today = verify(flows, existing, cluster, over_permissive=False)
    edges = today.edges
    keys = edge_keys(edges)
    allowed_today = edges["allowed"].to_numpy()
    if not today.ok:
        warnings.append(
            f"the existing policies already deny {today.counts['flows_denied']} observed flows "
            "(recorded before they were applied?); the generated policies allow them again"
        )

    generate_options = dataclasses.replace(options.generate, ingress=True, egress=True)
    generated = generate(
        flows, generate_options, inventory=inventory if isinstance(inventory, Inventory) else None
    )
    warnings += generated.warnings
    if generate_options.guardrails is not None:
        # What --guardrails left out of the policies (reduce/edges.py reports it as it filters).
        warnings += [m for m in generated.report.messages if m.startswith("guardrail ")]
    taken = {(p.namespace, p.name) for p in existing}
    # A generated policy equal to the one in force under its name (Policy equality: the spec
    # and names, not the evidence annotations) is in place already: the plan leaves it alone
    # rather than adding a "-netpolgen" twin (the set from-flows wrote, given back to migrate).
    in_force = {(p.namespace, p.name): p for p in existing}
    in_place = [p for p in generated.policies if in_force.get((p.namespace, p.name)) == p]
    if in_place:
        warnings.append(
            f"{len(in_place)} generated "
            f"{'policy is' if len(in_place) == 1 else 'policies are'} in force already, "
            "identical (not staged again): "
            + ", ".join(f"{p.namespace}/{p.name}" for p in sorted_policies(in_place)[:5])
            + (f" and {len(in_place) - 5} more" if len(in_place) > 5 else "")
        )
    in_place_keys = {(p.namespace, p.name) for p in in_place}

    def rename(policy: Policy) -> Policy:
        if (policy.namespace, policy.name) not in taken:
            return policy
        new_name = policy.name + RENAME_SUFFIX
        warnings.append(
            f"{policy.namespace}/{policy.name} exists already; the plan names it {new_name}"
        )
        return dataclasses.replace(policy, name=new_name)

    observed = {str(n) for n in edges["src_namespace"].dropna()} | {
        str(n) for n in edges["dst_namespace"].dropna()
    }
    every = (
        observed
        | set(cluster.namespaces)
        | {p.namespace for p in existing}
        | {p.namespace for p in generated.policies}
    )
    left_out = sorted(
        n
        for n in every
        if not options.include_system
        and is_system_namespace(n, options.system_namespaces, options.system_prefixes)
    )
    staged = sorted(every - set(left_out))
    if options.generate.namespaces:  # only the namespaces asked for
        staged = [n for n in staged if n in options.generate.namespaces]

    candidates: dict[str, list[Stage]] = {}
    for namespace in staged:
        stages = []
        for direction in (INGRESS, EGRESS):
            already = any(
                p.namespace == namespace and is_default_deny(p, direction) for p in existing
            )
            deny = (
                []
                if already
                else [
                    rename(p)
                    for p in default_deny_policies(
                        [namespace], ingress=direction == INGRESS, egress=direction == EGRESS
                    )
                ]
            )
            allow = [
                rename(p)
                for p in generated.policies
                if p.namespace == namespace
                and _stage_direction(p) == direction
                and (p.namespace, p.name) not in in_place_keys
            ]
            if not deny and not allow:
                continue
            touched = _touching(edges, namespace)
            alone = Evaluator([*existing, *deny], cluster.namespace_labels)
            with_deny = evaluate_edges(edges[touched], alone, _subset(keys, touched))
            broken = np.zeros(len(edges), dtype=bool)
            broken[touched] = allowed_today[touched] & ~with_deny["allowed"].to_numpy()
            stages.append(Stage(0, namespace, direction, allow, deny, _break_table(edges[broken])))
        candidates[namespace] = stages

    def risk(namespace: str) -> tuple[bool, int, int, str]:
        stages = candidates[namespace]
        return (
            namespace not in observed,
            sum(len(s.breaks_today) for s in stages),
            sum(s.flows_at_risk for s in stages),
            namespace,
        )

    ordered: list[Stage] = []
    applied: list[Policy] = list(existing)
    allowed_now = allowed_today.copy()
    for namespace in sorted(staged, key=risk):
        for stage in candidates[namespace]:
            stage.number = len(ordered) + 1
            applied += stage.policies
            touched = _touching(edges, namespace)
            after = evaluate_edges(
                edges[touched], Evaluator(applied, cluster.namespace_labels), _subset(keys, touched)
            )
            before = allowed_now.copy()
            allowed_now[touched] = after["allowed"].to_numpy()
            stage.flows_denied_after = int(edges.loc[~allowed_now, "flows"].sum())
            newly = before & ~allowed_now
            if newly.any():  # cannot happen with sound allow policies; say so loudly if it does
                warnings.append(
                    f"stage {stage.folder} denies {int(edges.loc[newly, 'flows'].sum())} observed "
                    "flows that were allowed before it (see netpolgen verify for which)"
                )
            ordered.append(stage)
    final = ordered[-1].flows_denied_after if ordered else today.counts["flows_denied"]
    return MigrationPlan(
        stages=ordered,
        left_out=left_out,
        unobserved=sorted(set(staged) - observed),
        existing=existing,
        flows_checked=today.counts["flows_checked"],
        flows_denied_today=today.counts["flows_denied"],
        flows_denied_final=final,
        warnings=warnings,
        records_reply=today.counts["records_reply"],
        records_denied=today.counts["records_denied_verdict"],
        names=workload_names(cluster),
    )


def plan_migration_from_files(
    flow_sources: Iterable[Source],
    policies_path: str | os.PathLike[str] | None,
    inventories: Sequence[str | Path] = (),
    options: MigrationOptions | None = None,
    *,
    format: str = "auto",
    strict: bool = False,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    on_chunk: Callable[[str, int], None] | None = None,
) -> MigrationPlan:
    """Read flows, existing policies (none when ``policies_path`` is None) and inventories, then
    :func:`plan_migration` (what ``netpolgen migrate`` runs).

    Args:
        flow_sources: flow files, ``-`` for standard input, or open binary files.
        policies_path: the policies in force (a file or directory), or None.
        inventories: inventory snapshot files.
        options: how to plan.
        format: ``auto`` or a flow format name.
        strict: make the first malformed record an error.
        max_line_bytes: lines longer than this (line-based formats) are skipped and counted.
        on_chunk: called as ``on_chunk(source, rows)`` after each chunk read (progress).

    Examples:
        >>> plan = plan_migration_from_files(["hubble.jsonl"], None, ["inventory.json"])
        ... # doctest: +SKIP
        >>> write_plan(plan, "migration/")  # doctest: +SKIP
    """
    notes: list[str] = []
    flow_sources = list(flow_sources)
    inventory = load_inventory(list(inventories)) if inventories else None
    # CiliumNetworkPolicies in force are read as verify reads them (edges.cilium_context).
    context = cilium_context(flow_sources, inventory)
    existing = (
        load_policies(policies_path, notes=notes, cilium=context)
        if policies_path is not None
        else []
    )
    ingest = IngestReport(strict=strict, max_line_bytes=max_line_bytes)
    flows = load_flows(list(flow_sources), format, report=ingest, on_chunk=on_chunk)
    if inventory is not None:
        ingest.messages.extend(inventory.warnings)
        flows = resolve_flows(flows, inventory, report=ingest)
    plan = plan_migration(flows, existing, inventory, options)
    plan.warnings[:0] = notes
    count_as_from_flows(ingest, replies=plan.records_reply, denied=plan.records_denied)
    plan.ingest = ingest
    return plan


def _touching(edges: pd.DataFrame, namespace: str) -> np.ndarray:
    # Policies in a namespace select only its pods: they can change the verdict of an edge only
    # when its source (egress) or destination (ingress) is there.
    src = (edges["src_namespace"] == namespace).fillna(False).to_numpy(dtype=bool)
    dst = (edges["dst_namespace"] == namespace).fillna(False).to_numpy(dtype=bool)
    return src | dst


def _subset(
    keys: tuple[list[EndpointKey], list[EndpointKey]], mask: np.ndarray
) -> tuple[list[EndpointKey], list[EndpointKey]]:
    positions = np.flatnonzero(mask).tolist()
    return [keys[0][i] for i in positions], [keys[1][i] for i in positions]


def _stage_direction(policy: Policy) -> str:
    # Generated policies carry one direction each; one with both goes with ingress, the first.
    return EGRESS if policy.policy_types == (EGRESS,) else INGRESS


def _break_table(edges: pd.DataFrame) -> pd.DataFrame:
    if edges.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BREAK_COLUMNS})
    table = pd.DataFrame(
        {
            "src": [
                describe_endpoint(n, lbl, ip)
                for n, lbl, ip in zip(
                    edges["src_namespace"], edges["src_labels"], edges["src_ip"], strict=True
                )
            ],
            "dst": [
                describe_endpoint(n, lbl, ip)
                for n, lbl, ip in zip(
                    edges["dst_namespace"], edges["dst_labels"], edges["dst_ip"], strict=True
                )
            ],
            "protocol": edges["protocol"].to_numpy(),
            "dst_port": edges["dst_port"].to_numpy(),
            "flows": edges["flows"].to_numpy(),
        }
    )
    return (
        table.groupby(["src", "dst", "protocol", "dst_port"], dropna=False, sort=True)["flows"]
        .sum()
        .reset_index()
        .sort_values(["flows", "src", "dst"], ascending=[False, True, True], kind="stable")
        .reset_index(drop=True)
    )


def write_plan(
    plan: MigrationPlan, directory: str | os.PathLike[str], *, force: bool = False
) -> list[Path]:
    """Write :meth:`MigrationPlan.files` under ``directory``, atomically.

    The files go to a temporary directory beside ``directory`` that then takes its place, so a
    failure leaves nothing half-written. A non-empty ``directory`` is refused unless ``force``.

    Args:
        plan: what :func:`plan_migration` returned.
        directory: where to write the stages.
        force: replace a non-empty directory.

    Returns:
        The paths written, relative to ``directory``.

    Examples:
        >>> write_plan(plan, "migration/")  # doctest: +SKIP

    Raises:
        OutputError: when the directory cannot be written or is not empty.
    """
    return write_tree({Path(p): text for p, text in plan.files().items()}, directory, force=force)
