"""Plain text and markdown tables for reports (verify, diff, migrate), and workload names.

Reports name a workload ``namespace/name``, as ``inspect`` and the policies do: the root of its
pods' owner chain (a Deployment's name) when the inventory says it, else the value of its name
label (``app.kubernetes.io/name``, ``app``, ``k8s-app``, the labels Kubernetes recommends for
it) where that is unique in the report, else, only then, its labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import pandas as pd

from netpolgen.cluster.view import ClusterView
from netpolgen.ingest.report import IngestReport
from netpolgen.labels import labels_from_canonical

# https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/, then the
# older conventions; the same order the selectors start from (README, "How it decides").
NAME_LABELS = ("app.kubernetes.io/name", "app", "k8s-app")


def render_table(
    frame: pd.DataFrame, *, markdown: bool = False, limit: int | None = 50, plain: bool = False
) -> str:
    """A DataFrame as an aligned text table, tab-separated text, or a Markdown table.

    ``limit`` rows at most (``None``: all), with a ``... N more rows`` line after the cut.
    ``plain`` is tab-separated, one line per row, for a pipe or a file: nothing wraps, and
    ``cut -f`` and spreadsheets read it.
    """
    shown = frame if limit is None else frame.head(limit)
    header = [str(c) for c in shown.columns]
    body = [
        ["" if pd.isna(v) else str(v) for v in row]
        for row in shown.astype(object).itertuples(index=False)
    ]
    cut = 0 if limit is None else len(frame) - limit
    more = f"... {cut} more {'row' if cut == 1 else 'rows'}\n" if cut > 0 else ""
    if markdown:

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in body]
        return "\n".join(lines) + "\n" + more
    if plain:

        def cell(text: str) -> str:
            return text.replace("\t", " ").replace("\n", " ")

        lines = ["\t".join(cell(h) for h in header)]
        lines += ["\t".join(cell(v) for v in row) for row in body]
        return "\n".join(lines) + "\n" + more
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines) + "\n" + more


def workload_names(cluster: ClusterView) -> dict[str, str]:
    """``namespace/labels`` (stable labels, as reports key pods) -> ``namespace/owner``.

    Only for pods whose owner the inventory names, and only where every pod with those labels
    has the same owner (two owners with identical labels are one workload to a selector, and
    a name would hide that).
    """
    owners: dict[str, set[str]] = {}
    for pod in cluster.pods:
        if pod.owner and not pod.host_network:
            owners.setdefault(f"{pod.namespace}/{pod.workload_labels}", set()).add(pod.owner)
    return {
        key: f"{key.split('/', 1)[0]}/{next(iter(names))}"
        for key, names in sorted(owners.items())
        if len(names) == 1
    }


def display_names(keys: Iterable[str], known: Mapping[str, str]) -> dict[str, str]:
    """How each endpoint key (``namespace/labels``, or an address) is shown in a report.

    ``known`` are the inventory's names (:func:`workload_names`). A key it does not name gets
    ``namespace/<name label>`` when no other key in ``keys`` (or name in ``known``) would show
    the same; otherwise it stays as it is. Addresses stay as they are.
    """
    keys = sorted(set(keys))
    guessed: dict[str, str] = {}
    for key in keys:
        if key in known or "/" not in key:
            continue
        namespace, labels = key.split("/", 1)
        pairs = dict(labels_from_canonical(labels))
        value = next((pairs[label] for label in NAME_LABELS if label in pairs), None)
        if value:
            guessed[key] = f"{namespace}/{value}"
    shown = Counter([*(known[k] for k in keys if k in known), *guessed.values()])
    out = {}
    for key in keys:
        if key in known:
            out[key] = known[key]
        elif key in guessed and shown[guessed[key]] == 1:
            out[key] = guessed[key]
        else:
            out[key] = key
    return out


def endpoint_key(namespace: object, labels: object, address: object) -> str:
    """``namespace/labels`` for a pod endpoint (``<no labels>`` when it has none), else the
    address: the key :func:`display_names` maps (``netpolgen.check.edges.describe_endpoint``)."""
    if namespace is not None and not pd.isna(namespace):  # type: ignore[call-overload]
        return f"{namespace}/{labels or '<no labels>'}"
    return str(address)


def with_workload_names(
    frame: pd.DataFrame, names: Mapping[str, str], *, columns: Iterable[str] = ("src", "dst")
) -> pd.DataFrame:
    """``frame`` with its endpoint columns shown by name (:func:`display_names`).

    An endpoint given as ``{side}_namespace`` and ``{side}_labels`` (plus ``{side}_ip`` or
    ``{side}_addresses`` when present) becomes one ``{side}`` column where the first of them
    was; a ``{side}`` column of keys is mapped in place.
    """
    out = frame.copy()
    keyed: dict[str, list[str]] = {}
    for side in columns:
        ns, labels = f"{side}_namespace", f"{side}_labels"
        if ns in out.columns and labels in out.columns:
            address = next((c for c in (f"{side}_ip", f"{side}_addresses") if c in out), None)
            addresses = out[address].tolist() if address else [None] * len(out)
            keyed[side] = [
                endpoint_key(n, lb, a)
                for n, lb, a in zip(out[ns].tolist(), out[labels].tolist(), addresses, strict=True)
            ]
        elif side in out.columns:
            keyed[side] = [str(v) for v in out[side].tolist()]
    mapping = display_names([k for values in keyed.values() for k in values], names)
    for side, values in keyed.items():
        shown = [mapping[v] for v in values]
        ns = f"{side}_namespace"
        if ns in out.columns:
            at = list(out.columns).index(ns)
            drop = [c for c in (ns, f"{side}_labels", f"{side}_ip", f"{side}_addresses")
                    if c in out.columns]  # fmt: skip
            out = out.drop(columns=drop)
            out.insert(min(at, len(out.columns)), side, shown)
        else:
            out[side] = shown
    return out


def count_as_from_flows(report: IngestReport, *, replies: int, denied: int) -> None:
    """Move the records a replay did not check from ``used`` to ``filtered``, by the reasons
    from-flows gives, so the accounting line means the same in every command.

    from-flows filters flows the network denied (``denied verdict``) and replies (``reply
    traffic``) before it reduces (``netpolgen.reduce.edges.wanted_flows``); verify and migrate
    read them and leave them unchecked. Counted here, "used" is the records each command
    treats as traffic, and the three lines for one file agree.
    """
    report.filter("denied verdict", denied)
    report.filter("reply traffic", replies)
