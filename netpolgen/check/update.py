"""Keep an edited policy set current: add what new traffic needs, refresh evidence, maybe prune.

``netpolgen update`` works on a directory that people own (it lives in Git, they edit it), so it
changes as little as it can and only in ways a reviewer can follow:

* **Additions only by default.** The new flows are reduced to edges and policies exactly as
  ``from-flows`` would (``netpolgen.generate``, the same options). Each edge is evaluated against
  the existing set (the evaluator of ``netpolgen.verify``). An edge the set already allows, on
  both sides, changes nothing: no rule that covers it is ever widened. For each side that an
  isolating policy denies (Kubernetes: a pod selected by a policy of that direction only admits
  what some rule of those policies allows), the *part* of the generated rule that carries this
  edge (its matching peer and its matching ports, nothing else) is appended as a new rule to the
  workload's existing policy: the one with the generated name (``<workload>-access-ingress``),
  else one in its namespace with the same ``podSelector`` and direction. Only when the workload
  has no such policy is the generated policy added whole, in a new file. An endpoint that no
  policy isolates in a direction already admits everything there, so nothing is added for it,
  unless ``isolate_new`` asks for its generated policy (which removes what the flows do not show).
* **Hand edits survive.** Files are edited structurally (:mod:`netpolgen.check.policy_tree`):
  rules are appended, annotations set in place; comments, key order, other annotations and
  other documents stay. Unchanged files are written back byte for byte.
* **Evidence is refreshed idempotently.** ``netpolgen.io/flows``, ``first-seen`` and
  ``last-seen`` of every policy that carries them (and of every policy that got a rule) count the
  flows its rules allow that are *later* than the second its ``last-seen`` records: the flows up
  to it were counted when it was written. So running ``update`` twice on the same flows changes
  nothing. Flows without a time cannot be placed before or after, and are not counted.
* **Pruning is a proposal, and opt-in.** With ``prune_after``, a rule whose last evidence is
  older than that before the newest flow of the input is removed: its evidence is the newest
  flow it allows in the input, else (no flow in the input) the policy's recorded ``last-seen``.
  A rule with no evidence at all (hand-written, never observed) is kept and listed, and so are
  DNS rules (port 53 only), which the generator allows observed or not.

The summary is the semantic diff between the set before and after (``netpolgen.diff_policies``),
so a reviewer reads the same report ``netpolgen diff`` would give on the two directories.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from netpolgen.check.diff import PolicyDiff, diff_policies
from netpolgen.check.policy_tree import PolicyDocument, PolicyTree, node, rule_manifest
from netpolgen.check.rule_matching import edge_endpoint, peer_text, port_text, rule_matches
from netpolgen.cluster.inventory import Inventory, load_inventory
from netpolgen.cluster.view import ClusterView
from netpolgen.errors import InputError, OutputError
from netpolgen.generator import generate
from netpolgen.ingest import Source, load_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.from_reduction import GenerateOptions
from netpolgen.policy.model import Peer, Policy, PortSpec, Rule
from netpolgen.policy.semantics import EGRESS, INGRESS, EndpointKey, Evaluator, port_matches
from netpolgen.policy.synthesize import ANNOTATION_PREFIX
from netpolgen.policy.write import policy_path, write_tree
from netpolgen.reduce.edges import aggregate_edges
from netpolgen.resolve import resolve_flows

UPDATE_FLAVORS = ("k8s", "calico-staged")
"""The ``--flavor`` values ``update`` edits: NetworkPolicies and Calico staged policies."""


__all__ = [
    "UpdateResult",
    "format_update",
    "parse_duration",
    "update_files",
    "update_policies",
    "write_update",
]

FLOWS = f"{ANNOTATION_PREFIX}flows"
FIRST_SEEN = f"{ANNOTATION_PREFIX}first-seen"
LAST_SEEN = f"{ANNOTATION_PREFIX}last-seen"
RULE_COLUMNS = ["change", "policy", "direction", "rule", "peers", "ports", "last_evidence"]
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS: dict[str, Literal["s", "min", "h", "D", "W"]] = {
    "s": "s",
    "m": "min",
    "h": "h",
    "d": "D",
    "w": "W",
}


@dataclass
class UpdateResult:
    """What :func:`update_policies` changed.

    Attributes:
        before, after: the policy set before and after (the model of every document).
        files: every file of the updated directory (relative path -> text).
        changed_files: the files whose text changed or that are new.
        rules: one row per rule added, pruned, or kept for lack of evidence (``change`` is
            ``added``, ``pruned`` or ``kept-no-evidence``); see ``RULE_COLUMNS``.
        diff: the semantic diff from ``before`` to ``after``.
        report: the ingest report of the flows.
        warnings: what the user should know.

    Examples:
        >>> netpolgen.update_files(["today.jsonl"], "policies/").rules  # doctest: +SKIP
    """

    before: list[Policy]
    after: list[Policy]
    files: dict[Path, str]
    changed_files: list[Path]
    rules: pd.DataFrame
    diff: PolicyDiff
    report: IngestReport = field(default_factory=IngestReport)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changed_files)


def parse_duration(text: str) -> pd.Timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` as a duration."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(f"not a duration: {text!r} (a number and s, m, h, d or w, e.g. 30d)")
    return pd.Timedelta(int(match.group(1)), unit=_UNITS[match.group(2)])


def update_files(
    sources: Iterable[Source],
    policies: str | Path,
    *,
    inventory: Sequence[str | Path] = (),
    options: GenerateOptions | None = None,
    format: str = "auto",
    strict: bool = False,
    prune_after: pd.Timedelta | None = None,
    isolate_new: bool = False,
    flavor: str = "k8s",
) -> UpdateResult:
    """Read flow files (and inventories) and run :func:`update_policies` on ``policies``
    (what ``netpolgen update`` runs; nothing is written: :func:`write_update` does).

    Args:
        sources: flow files, ``-`` for standard input, or open binary files.
        policies, inventory, options, prune_after, isolate_new, flavor: as for
            :func:`update_policies` (``inventory`` as snapshot files).
        format: ``auto`` or a flow format name (``netpolgen.FORMATS``).
        strict: make the first malformed record an error.

    Examples:
        >>> write_update(update_files(["today.jsonl"], "policies/"), "policies/")  # doctest: +SKIP
    """
    report = IngestReport(strict=strict)
    flows = load_flows(list(sources), format, report=report, strict=strict)
    cluster = load_inventory(inventory) if inventory else None
    if cluster is not None:
        flows = resolve_flows(flows, cluster, report=report)
    return update_policies(
        flows,
        policies,
        inventory=cluster,
        options=options,
        prune_after=prune_after,
        isolate_new=isolate_new,
        report=report,
        flavor=flavor,
    )


def update_policies(
    flows: pd.DataFrame,
    policies: str | Path,
    *,
    inventory: Inventory | None = None,
    options: GenerateOptions | None = None,
    prune_after: pd.Timedelta | None = None,
    report: IngestReport | None = None,
    isolate_new: bool = False,
    flavor: str = "k8s",
) -> UpdateResult:
    """Merge the traffic of ``flows`` into the policy directory ``policies`` (see the module
    docstring); nothing is written (:func:`write_update` does).

    Args:
        flows: a flow table, resolved (``resolve_flows``) when it has only addresses.
        policies: the directory of policies to update.
        inventory: the cluster's pods, as for ``generate``.
        options: the generation options, as for ``from-flows``.
        prune_after: propose removing rules whose last evidence is older than this.
        isolate_new: also give their generated policy to the workloads of the flows that no
            policy isolates in a direction (they admit everything there today). That *removes*
            every connection of theirs the flows do not show, so use it with flows that cover
            all their traffic; off by default (update then only adds).
        report: the ingest report to continue.
        flavor: ``k8s`` (NetworkPolicies) or ``calico-staged``: Calico staged policies are
            edited too, and new policies are written staged. ``cilium`` files cannot be
            updated (their rules are not NetworkPolicy rules).

    Raises:
        OutputError: for ``flavor`` ``cilium`` or an unknown one.

    Examples:
        >>> result = update_policies(load_flows("today.jsonl"), "policies/")  # doctest: +SKIP
        >>> print(format_update(result))  # doctest: +SKIP
    """
    options = options or GenerateOptions()
    if flavor not in UPDATE_FLAVORS:
        raise OutputError(
            f"update cannot edit --flavor {flavor} policies; it edits "
            + " and ".join(UPDATE_FLAVORS),
            hint="regenerate with netpolgen from-flows --flavor cilium, or keep the policies "
            "as k8s files, update those and translate them",
        )
    tree = PolicyTree.read(policies, staged=flavor == "calico-staged")
    before = tree.policies()
    generated = generate(flows, options, report=report, inventory=inventory)
    namespace_labels = ClusterView.from_inventory(inventory).namespace_labels
    warnings: list[str] = []
    rows: list[dict[str, object]] = []
    edges = generated.edges
    keys = [
        (edge_endpoint(s), edge_endpoint(d))
        for s, d in zip(edges["src"], edges["dst"], strict=True)
    ]
    old = Evaluator(before, namespace_labels)
    # Rules' last evidence is taken before anything changes (the rules as they were).
    last_evidence = _rule_evidence(tree.documents, edges, keys, namespace_labels)
    touched: set[tuple[str, str]] = set()
    wanted = [p for p in generated.policies if p.ingress or p.egress]
    atoms, owners = _atoms(wanted)
    needed: dict[int, dict[tuple[int, int], set[PortSpec]]] = defaultdict(lambda: defaultdict(set))
    for (src, dst), protocol, port in zip(keys, edges["protocol"], edges["dst_port"], strict=True):
        port_number = None if pd.isna(port) else int(port)
        egress_ok, ingress_ok = old.allows(src, dst, str(protocol), port_number)
        for direction, ok, selected, peer in (
            (EGRESS, egress_ok, src, dst),
            (INGRESS, ingress_ok, dst, src),
        ):
            if ok and not (
                isolate_new and selected[0] is not None and not old.selecting(selected, direction)
            ):
                continue  # allowed already: never widen what covers it
            ids = atoms.selecting(selected, direction)
            hit = False
            for i, _, ports in atoms.matching_rules(ids, direction, peer):
                for spec in ports:
                    if port_matches(spec, str(protocol), port_number, ()):
                        needed[owners[i][0]][owners[i][1:]].add(spec)
                        hit = True
            if not hit and not ok:
                warnings.append(
                    f"{_describe(selected)} {direction.lower()} {_describe(peer)} "
                    f"{protocol}/{port_number}: denied and no generated rule carries it "
                    "(outside -n, or not expressible); left as it is"
                )
    for index in sorted(needed):
        g = wanted[index]
        direction = "ingress" if g.ingress else "egress"
        target = _target(tree.documents, g, direction)
        if target is None:
            document = tree.add_file(policy_path(g), g.to_manifest())
            touched.add(document.key)
            for r, rule in enumerate(g.ingress or g.egress):
                rows.append(_row("added", g, direction, r, rule, None))
            continue
        rules = target.rules(direction)
        for rule in _rules_from(g, direction, needed[index]):
            rules.append(node(rule_manifest(rule, direction)))
            rows.append(_row("added", target.policy, direction, len(rules) - 1, rule, None))
        tree.mark_changed(target)
        touched.add(target.key)
    if prune_after is not None:
        rows += _prune(tree, last_evidence, edges, prune_after)
    _refresh_evidence(tree, flows, options, namespace_labels, touched)
    after = tree.policies()
    # As `netpolgen diff BEFORE AFTER -i INVENTORY` compares them (diff_files): same workloads.
    diff = diff_policies(before, after, inventory)
    files = tree.texts()
    changed = tree.changed_files()
    return UpdateResult(
        before=before,
        after=after,
        files=files,
        changed_files=changed,
        rules=pd.DataFrame(rows, columns=RULE_COLUMNS),
        diff=diff,
        report=generated.report,
        warnings=sorted(set(warnings)) + generated.warnings,
    )


def write_update(result: UpdateResult, directory: str | Path, *, force: bool = False) -> None:
    """Write the updated directory whole or not at all (``netpolgen.policy.write.write_tree``):
    in place (``directory`` the policy directory itself) in one rename; nothing if unchanged.

    Args:
        result, directory: what :func:`update_policies` returned; where to write it (the
            policy directory itself, or a new one).
        force: replace a directory that exists and is not the updated one.

    Examples:
        >>> write_update(result, "policies/")  # doctest: +SKIP
    """
    target = Path(directory)
    # write_tree stages in a mkdtemp directory (mode 0700) that takes the target's place: keep
    # the mode the directory had (in place), or give a new one a plain mkdir's.
    if target.is_dir():
        mode = target.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o777 & ~umask
    write_tree({Path(k): v for k, v in result.files.items()}, target, force=force)
    try:
        target.chmod(mode)
    except OSError as error:
        raise OutputError(f"cannot set its mode: {error.strerror}", source=str(target)) from None


def format_update(result: UpdateResult) -> str:
    """The rules added or pruned, then the semantic diff's summary line.

    Args:
        result: what :func:`update_policies` returned.

    Examples:
        >>> print(format_update(update_files(["today.jsonl"], "policies/")))  # doctest: +SKIP
    """
    lines = []
    for row in result.rules.astype(str).to_dict(orient="records"):
        lines.append(
            f"{row['change']}: {row['policy']} {row['direction']} rule {row['rule']}: "
            f"{row['peers']} on {row['ports']}"
            + (f" (last evidence {row['last_evidence']})" if row["last_evidence"] else "")
        )
    if not result.changed:
        lines.append("no change: the policies already allow every observed flow")
    lines.append(result.diff.summary())
    return "\n".join(lines)


# --- helpers -----------------------------------------------------------------------------------


def _describe(key: EndpointKey) -> str:
    namespace, labels, ip = key
    if namespace is None:
        return str(ip)
    return f"{namespace}/{','.join(f'{k}={v}' for k, v in labels) or '<no labels>'}"


def _atoms(policies: Sequence[Policy]) -> tuple[Evaluator, list[tuple[int, int, int]]]:
    """One single-peer policy per (policy, rule, peer) of ``policies``, so that the evaluator's
    ``matching_rules`` names the peer that carries an edge; ``owners`` maps each back."""
    atoms: list[Policy] = []
    owners: list[tuple[int, int, int]] = []
    for index, policy in enumerate(policies):
        direction = "ingress" if policy.ingress else "egress"
        for r, rule in enumerate(policy.ingress or policy.egress):
            for p, peer in enumerate(rule.peers):
                single = (Rule(peers=(peer,), ports=rule.ports),)
                atoms.append(
                    Policy(
                        policy.name,
                        policy.namespace,
                        policy.pod_selector,
                        policy.policy_types,
                        ingress=single if direction == "ingress" else (),
                        egress=single if direction == "egress" else (),
                    )
                )
                owners.append((index, r, p))
    return Evaluator(atoms), owners


def _rules_from(
    policy: Policy, direction: str, needed: dict[tuple[int, int], set[PortSpec]]
) -> list[Rule]:
    """The needed parts of ``policy``'s rules: peers grouped by the same ports (as synthesis
    merges them), so no peer gains a port it was not seen on."""
    rules = policy.ingress if direction == "ingress" else policy.egress
    by_ports: dict[tuple[PortSpec, ...], set[Peer]] = defaultdict(set)
    for (r, p), specs in needed.items():
        ports = tuple(sorted(specs, key=lambda s: s.sort_key()))
        by_ports[ports].add(rules[r].peers[p])
    out = [
        Rule(peers=tuple(sorted(peers, key=lambda p: p.sort_key())), ports=ports)
        for ports, peers in by_ports.items()
    ]
    return sorted(out, key=lambda r: r.sort_key())


def _target(
    documents: Sequence[PolicyDocument], g: Policy, direction: str
) -> PolicyDocument | None:
    """The workload's existing policy for ``direction``: same name, else same selector."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    candidates = [
        d for d in documents if d.policy.namespace == g.namespace and kind in d.policy.policy_types
    ]
    for document in candidates:
        if document.policy.name == g.name:
            return document
    for document in candidates:
        if document.policy.pod_selector == g.pod_selector:
            return document
    return None


def _row(
    change: str, policy: Policy, direction: str, r: int, rule: Rule, last: str | None
) -> dict[str, object]:
    return {
        "change": change,
        "policy": f"{policy.namespace}/{policy.name}",
        "direction": direction,
        "rule": r,
        "peers": "; ".join(peer_text(p) for p in rule.peers) or "all peers",
        "ports": ", ".join(port_text(s) for s in rule.ports) or "all ports",
        "last_evidence": last or "",
    }


def _rule_evidence(
    documents: Sequence[PolicyDocument],
    edges: pd.DataFrame,
    keys: list[tuple[EndpointKey, EndpointKey]],
    namespace_labels: dict[str, dict[str, str]],
) -> dict[tuple[tuple[str, str], str, int], pd.Timestamp | None]:
    """(policy, direction, rule) -> the newest flow of the input it allows (None: none)."""
    out: dict[tuple[tuple[str, str], str, int], pd.Timestamp | None] = {}
    last_seen = pd.to_datetime(edges["last_seen"], utc=True)
    for document in documents:
        for direction in ("ingress", "egress"):
            rules = document.policy.ingress if direction == "ingress" else document.policy.egress
            if direction.capitalize() not in document.policy.policy_types:
                continue
            matched = rule_matches(document.policy, direction, edges, keys, namespace_labels)
            for r in range(len(rules)):
                times = last_seen.iloc[matched.get(r, [])].dropna()
                out[(document.key, direction, r)] = times.max() if len(times) else None
    return out


def _recorded(policy: Policy, key: str) -> pd.Timestamp | None:
    value = dict(policy.annotations).get(key)
    if not value:
        return None
    try:
        return (
            pd.Timestamp(value).tz_convert("UTC")
            if pd.Timestamp(value).tzinfo
            else pd.Timestamp(value).tz_localize("UTC")
        )
    except ValueError:
        return None


def _prune(
    tree: PolicyTree,
    evidence: dict[tuple[tuple[str, str], str, int], pd.Timestamp | None],
    edges: pd.DataFrame,
    prune_after: pd.Timedelta,
) -> list[dict[str, object]]:
    newest = pd.to_datetime(edges["last_seen"], utc=True).max()
    if pd.isna(newest):
        return []  # no time in the input: nothing to measure age against
    cutoff = newest - prune_after
    rows: list[dict[str, object]] = []
    for document in tree.documents:
        recorded = _recorded(document.policy, LAST_SEEN)
        removed = False
        for direction in ("ingress", "egress"):
            rules = document.policy.ingress if direction == "ingress" else document.policy.egress
            drop = []
            for r, rule in enumerate(rules):
                if (document.key, direction, r) not in evidence:
                    continue  # added by this run
                if rule.ports and all(s.port == 53 for s in rule.ports):
                    continue  # DNS: allowed observed or not (netpolgen.policy.synthesize)
                last = evidence[(document.key, direction, r)]
                last = last if last is not None else recorded
                if last is None:
                    rows.append(_row("kept-no-evidence", document.policy, direction, r, rule, None))
                elif last < cutoff:
                    rows.append(
                        _row(
                            "pruned",
                            document.policy,
                            direction,
                            r,
                            rule,
                            last.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        )
                    )
                    drop.append(r)
            if drop:
                node_rules = document.rules(direction)
                for r in sorted(drop, reverse=True):
                    del node_rules[r]
                removed = True
        if removed:
            tree.mark_changed(document)
    return rows


def _refresh_evidence(
    tree: PolicyTree,
    flows: pd.DataFrame,
    options: GenerateOptions,
    namespace_labels: dict[str, dict[str, str]],
    touched: set[tuple[str, str]],
) -> None:
    """Add the flows after each policy's recorded ``last-seen`` to its evidence."""
    documents = [
        d for d in tree.documents if d.key in touched or FLOWS in dict(d.policy.annotations)
    ]
    times = pd.to_datetime(flows["time"], utc=True)
    by_mark: dict[pd.Timestamp | None, list[PolicyDocument]] = defaultdict(list)
    for document in documents:
        by_mark[_recorded(document.policy, LAST_SEEN)].append(document)
    for mark, group in by_mark.items():
        # The annotation keeps whole seconds: every flow within its second was counted then.
        after = times.notna() & (
            times >= mark + pd.Timedelta(seconds=1) if mark is not None else times.notna()
        )
        if not after.any():
            continue
        edges, _ = aggregate_edges(flows[after.to_numpy()], options.edge_options())
        keys = [
            (edge_endpoint(s), edge_endpoint(d))
            for s, d in zip(edges["src"], edges["dst"], strict=True)
        ]
        for document in group:
            positions: set[int] = set()
            for direction in ("ingress", "egress"):
                if direction.capitalize() in document.policy.policy_types:
                    for hits in rule_matches(
                        document.policy, direction, edges, keys, namespace_labels
                    ).values():
                        positions.update(hits)
            if not positions:
                continue
            chosen = edges.iloc[sorted(positions)]
            annotations = dict(document.policy.annotations)
            count = int(chosen["count"].sum())
            try:
                count += int(annotations.get(FLOWS, "0"))
            except ValueError:
                pass  # a hand-written value that is not a number: replaced
            first = pd.to_datetime(chosen["first_seen"], utc=True).min()
            last = pd.to_datetime(chosen["last_seen"], utc=True).max()
            node = document.annotations()
            node[FLOWS] = str(count)
            if FIRST_SEEN not in annotations and not pd.isna(first):
                node[FIRST_SEEN] = first.strftime("%Y-%m-%dT%H:%M:%SZ")
            if not pd.isna(last):
                node[LAST_SEEN] = last.strftime("%Y-%m-%dT%H:%M:%SZ")
            tree.mark_changed(document)
