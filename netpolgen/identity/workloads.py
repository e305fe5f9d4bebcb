"""Workload identity: which pods belong together, what to call them, how to select them.

Pods are grouped by namespace and *stable* label set: the labels that controllers put on pods for
one revision or one pod only (``pod-template-hash``, ``controller-revision-hash``, ...) are
dropped first, so every replica and every rollout of a Deployment lands in one workload.

Each workload then gets the smallest label selector that selects exactly its pods among the pods
known in its namespace. Kubernetes selectors are conjunctions of ``key=value`` terms
(``matchLabels``), so a selector built from a subset of the workload's shared labels selects all of
its pods, and is exact when no other known pod in the namespace carries the same subset.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations

import pandas as pd

from netpolgen.labels import labels_from_canonical
from netpolgen.reduce.pods import pod_endpoints
from netpolgen.selectors import LabelRequirement, LabelSelector

# Keys that name a workload, best first. A selector is anchored on the first one present, so
# that `role=backend` alone never captures another app's backend added to the namespace later.
NAME_KEYS = ("app.kubernetes.io/name", "app", "k8s-app")
# Then keys that tell parts of one app apart, in the order they are preferred in a selector.
PREFERRED_KEYS = NAME_KEYS + (
    "app.kubernetes.io/component",
    "component",
    "role",
    "tier",
    "app.kubernetes.io/instance",
    "name",
)
# Keys that change with every release: used only when nothing else tells pods apart.
LAST_RESORT_KEYS = frozenset(
    {"version", "app.kubernetes.io/version", "helm.sh/chart", "chart", "release", "heritage"}
)
MAX_EXTRA_KEYS = 3  # beyond the anchor; more than this falls back to the full label set


def _key_rank(key: str) -> tuple[int, int, str]:
    if key in PREFERRED_KEYS:
        return (0, PREFERRED_KEYS.index(key), key)
    return (2 if key in LAST_RESORT_KEYS else 1, 0, key)


def minimal_selector(
    labels: Mapping[str, str], others: Iterable[Mapping[str, str]]
) -> LabelSelector:
    """The smallest selector that selects pods labelled ``labels`` and none of ``others``.

    The selector starts from the workload's name key (``app.kubernetes.io/name``, ``app`` or
    ``k8s-app``) when it has one, then adds the fewest further labels needed, trying keys in the
    documented preference order, so the result is stable from run to run. When no subset of
    ``labels`` excludes every other pod (another pod carries all of them and more), the full set
    is used plus ``DoesNotExist`` requirements on keys that only those pods carry.

    Examples:
        >>> minimal_selector({"app": "shop", "role": "db"}, [{"app": "shop", "role": "web"}])
        LabelSelector(match_labels=(('app', 'shop'), ('role', 'db')), match_expressions=())
    """
    others = [o for o in others if dict(o) != dict(labels)]
    keys = sorted(labels, key=_key_rank)
    anchor = tuple(k for k in keys[:1] if k in NAME_KEYS)
    rest = [k for k in keys if k not in anchor]

    def exact(chosen: tuple[str, ...]) -> bool:
        return not any(all(o.get(k) == labels[k] for k in chosen) for o in others)

    for size in range(min(MAX_EXTRA_KEYS, len(rest)) + 1):
        for extra in combinations(rest, size):
            chosen = anchor + extra
            if chosen and exact(chosen):
                return LabelSelector.of({k: labels[k] for k in chosen})
    if exact(tuple(keys)) and keys:
        return LabelSelector.of(dict(labels))
    # Pods that carry every label of ours and more: exclude them by a key they have and we lack.
    supersets = [o for o in others if all(o.get(k) == v for k, v in labels.items())]
    excluded: list[str] = []
    for other in supersets:
        if any(k in other for k in excluded):
            continue
        extra_keys = sorted((k for k in other if k not in labels), key=_key_rank)
        if extra_keys:
            excluded.append(extra_keys[0])
    return LabelSelector(
        match_labels=tuple(sorted(labels.items())),
        match_expressions=tuple(LabelRequirement(k, "DoesNotExist") for k in sorted(excluded)),
    )


# Pod names made by controllers: <deployment>-<pod-template-hash>-<5>, <statefulset>-<ordinal>,
# <daemonset|job>-<5>. The random suffix alphabet is "bcdfghjklmnpqrstvwxz2456789".
_DEPLOYMENT_POD = re.compile(r"^(?P<base>.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_STATEFUL_POD = re.compile(r"^(?P<base>.+)-\d+$")
_RANDOM_SUFFIX_POD = re.compile(r"^(?P<base>.+)-[bcdfghjklmnpqrstvwxz2456789]{5}$")
# The CronJob controller names each Job <cronjob>-<scheduled time in minutes since the epoch>.
_CRONJOB_JOB = re.compile(r"^(?P<base>.+)-\d{8,}$")


def workload_name_from_pod(pod: str, labels: Mapping[str, str] | None = None) -> str:
    """The controller's name from a pod's labels first, its name's pattern second.

    The labels the controllers set say which controller made the pod (Kubernetes docs, "Well-Known
    Labels"; the Deployment, DaemonSet, StatefulSet and Job controller docs):

    * ``pod-template-hash``: a Deployment's ReplicaSet; the pod is
      ``<deployment>-<pod-template-hash>-<5>``.
    * ``controller-revision-hash`` without ``pod-template-hash``: a StatefulSet
      (``<statefulset>-<ordinal>``, with ``statefulset.kubernetes.io/pod-name``) or a DaemonSet
      (``<daemonset>-<5>``), never a Deployment, whatever the name looks like.
    * ``job-name``: a Job (``<job>-<5>``), whose name is the label's value; a CronJob's Job is
      ``<cronjob>-<minutes>``, so the CronJob's name is taken.

    Examples:
        >>> workload_name_from_pod("backend-7d4b9c6f5-x2kqp")
        'backend'
        >>> workload_name_from_pod("db-0")
        'db'
        >>> workload_name_from_pod("cog-agents-x7k2q", {"controller-revision-hash": "6b9f8d7c5"})
        'cog-agents'
    """
    labels = labels or {}
    template_hash = labels.get("pod-template-hash")
    if template_hash:
        marker = f"-{template_hash}-"
        if marker in pod:
            return pod[: pod.rindex(marker)]
        return _by_pattern(pod, (_DEPLOYMENT_POD, _RANDOM_SUFFIX_POD))
    if labels.get("controller-revision-hash"):
        if (
            "statefulset.kubernetes.io/pod-name" in labels
            or "apps.kubernetes.io/pod-index" in labels
        ):
            return _by_pattern(pod, (_STATEFUL_POD,))
        return _by_pattern(pod, (_RANDOM_SUFFIX_POD, _STATEFUL_POD))
    job = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name")
    if job:
        match = _CRONJOB_JOB.match(job)
        return match.group("base") if match else job
    return _by_pattern(pod, (_DEPLOYMENT_POD, _STATEFUL_POD, _RANDOM_SUFFIX_POD))


def _by_pattern(pod: str, patterns: Iterable[re.Pattern[str]]) -> str:
    for pattern in patterns:
        match = pattern.match(pod)
        if match:
            return match.group("base")
    return pod


_DNS_INVALID = re.compile(r"[^a-z0-9.-]+")


def dns_name(text: str, max_length: int = 253) -> str:
    """A valid DNS-1123 subdomain made from ``text``; too long a name keeps a stable hash suffix."""
    name = _DNS_INVALID.sub("-", text.lower())
    name = re.sub(r"-{2,}", "-", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"-?\.-?", ".", name).strip("-.") or "workload"
    if len(name) > max_length:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        name = name[: max_length - 9].rstrip("-.") + "-" + digest
    return name


@dataclass(frozen=True)
class Workloads:
    """The workloads found in a flow table.

    Attributes:
        table: one row per workload: ``workload`` (id ``ns/labels``), ``namespace``, ``labels``
            (stable, canonical), ``name`` (DNS-1123), ``pods`` (distinct pod names seen).
        selectors: workload id -> the minimal exact selector in its namespace.

    Examples:
        >>> workloads = identify_workloads(flows)  # doctest: +SKIP
        >>> workloads.selectors["shop/app=frontend"].describe()  # doctest: +SKIP
        'app=frontend'
    """

    table: pd.DataFrame
    selectors: Mapping[str, LabelSelector]
    # Endpoint key (``ns/stable labels``, as in edges) -> workload id, where they differ: with an
    # inventory, a workload is its owner (``ns/Deployment/name``) and may have several label sets.
    members: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def name_of(self, workload: str) -> str:
        return str(self.table.loc[workload, "name"])

    def workload_of(self, key: str) -> str:
        """The workload id of an endpoint key ``ns/stable-labels``."""
        return self.members.get(key, key)


def workload_id(namespace: str, labels: str) -> str:
    return f"{namespace}/{labels}"


def identify_workloads(flows: pd.DataFrame) -> Workloads:
    """Group the pods seen in ``flows`` into workloads and give each a name and a selector.

    Args:
        flows: a flow table; both sides' pods (kind ``pod``) are grouped.

    Returns:
        :class:`Workloads`: a table of workloads and the minimal selector of each.

    Examples:
        >>> workloads = identify_workloads(flows)  # doctest: +SKIP
        >>> workloads.table[["namespace", "name", "labels"]]  # doctest: +SKIP
    """
    return workloads_from_endpoints(pod_endpoints(flows))


def workloads_from_endpoints(endpoints: pd.DataFrame) -> Workloads:
    """:func:`identify_workloads` from the pod endpoints (:func:`pod_endpoints`) alone."""
    endpoints = endpoints.copy()
    if endpoints.empty:
        table = pd.DataFrame(
            {c: pd.Series(dtype="string") for c in ("workload", "namespace", "labels", "name")}
        ).assign(pods=pd.Series(dtype="object"))
        return Workloads(table.set_index("workload", drop=False), {})
    endpoints["workload"] = endpoints["namespace"].astype(str) + "/" + endpoints["labels"]
    # A plain dict: pandas 3 turns tuples aggregated from string columns into Arrow lists.
    pods = {
        str(w): tuple(sorted(set(names.astype(str))))
        for w, names in endpoints.dropna(subset=["pod"]).groupby("workload")["pod"]
    }
    table = (
        endpoints[["workload", "namespace", "labels"]]
        .drop_duplicates()
        .sort_values("workload")
        .set_index("workload", drop=False)
    )
    table["pods"] = [pods.get(str(w), ()) for w in table.index]
    # Controller names from each pod's own (raw) labels, which say which controller made it.
    named = endpoints.dropna(subset=["pod"]).drop_duplicates(["workload", "pod", "raw_labels"])
    bases: dict[str, set[str]] = {}
    if "raw_labels" in named:
        for workload, pod, raw in named[["workload", "pod", "raw_labels"]].itertuples(index=False):
            labels = dict(labels_from_canonical(raw)) if isinstance(raw, str) else {}
            bases.setdefault(str(workload), set()).add(workload_name_from_pod(str(pod), labels))

    selectors: dict[str, LabelSelector] = {}
    for _namespace, group in table.groupby("namespace", sort=True):
        label_sets = {w: dict(labels_from_canonical(lbl)) for w, lbl in group["labels"].items()}
        for workload, labels in label_sets.items():
            others = [v for k, v in label_sets.items() if k != workload]
            selectors[str(workload)] = minimal_selector(labels, others)
    table["name"] = workload_names(table, selectors, bases)
    return Workloads(table, selectors)


def workload_names(
    table: pd.DataFrame,
    selectors: Mapping[str, LabelSelector],
    bases: Mapping[str, set[str]] | None = None,
) -> list[str]:
    """Readable, unique-per-namespace names.

    Preference: the controller's name recovered from the pods (``bases``: per workload, the
    names :func:`workload_name_from_pod` gave its pods with their labels; else from the pod names
    alone: ``backend-7d4b9c6f5-x2kqp`` -> ``backend``); else the most specific value in the
    selector (``role=backend`` -> ``backend``); on a clash within a namespace, all selector
    values joined; then a hash of the label set.
    """
    candidates: list[tuple[str, str]] = []
    for workload, row in table.iterrows():
        selector = selectors[str(workload)]
        values = [v for _, v in sorted(selector.match_labels, key=lambda kv: _key_rank(kv[0]))]
        full = "-".join(values) or "pods"
        found = (bases or {}).get(str(workload))
        if found is None:
            found = {workload_name_from_pod(p) for p in row["pods"]}
        owner = row.get("owner")
        if isinstance(owner, str) and owner:
            short = owner  # the controller's own name, from the inventory's owner chain
            full = f"{owner}-{row.get('kind', '')}".rstrip("-").lower()
        elif len(found) == 1:
            short = next(iter(found))
        else:
            short = values[-1] if values else full
        candidates.append((dns_name(short, 200), dns_name(full, 200)))
    namespaces = table["namespace"].tolist()
    shorts = pd.Series([(ns, c[0]) for ns, c in zip(namespaces, candidates, strict=True)])
    fulls = pd.Series([(ns, c[1]) for ns, c in zip(namespaces, candidates, strict=True)])
    short_clash = shorts.duplicated(keep=False)
    full_clash = fulls.duplicated(keep=False)
    names = [
        short if not short_clash[i] else full if not full_clash[i] else f"{full}-{_digest(w)}"
        for i, (w, (short, full)) in enumerate(zip(table.index, candidates, strict=True))
    ]
    # A short name of one workload can still equal the long name of another: last resort.
    taken = pd.Series(list(zip(namespaces, names, strict=True))).duplicated(keep=False)
    return [
        f"{n}-{_digest(w)}" if taken[i] else n
        for i, (w, n) in enumerate(zip(table.index, names, strict=True))
    ]


def _digest(text: object) -> str:
    return hashlib.sha256(str(text).encode()).hexdigest()[:6]
