"""The last check on every chunk a reader yields: names and labels Kubernetes would accept.

Namespaces, pod names and labels come from logs, and logs can hold anything: ``../etc``,
``/root``, uppercase, 300 characters, a label value with ``: # { }`` or a newline. Downstream
they become policy namespaces, file paths (``<namespace>/<name>.yaml``), workload names and
selectors, so whatever a reader let through is checked here, once, for every format:

* a namespace that is not a DNS-1123 label: the record is skipped (its identity is unusable, and
  guessing another namespace would write policy for the wrong one);
* a pod name that is not a DNS-1123 subdomain: the name is dropped (it only names workloads and
  matches inventory pods, which it cannot); the record stays;
* a label that is not a valid Kubernetes label: left out of the label set (and so of every
  selector), and reported.

Readers that check these themselves report with line numbers. The CSV reader checks all three,
exactly as here (a property test holds it to that), so its chunks skip this backstop; for every
other format it is the check.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import pandas as pd

from netpolgen.errors import InputError
from netpolgen.ingest.report import MAX_MESSAGES_PER_REASON, IngestReport
from netpolgen.labels import canonical_labels, is_valid_label_key, is_valid_label_value

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
INVALID_LABELS = "invalid labels left out of selectors"
INVALID_POD_NAME = "invalid pod name dropped"


def is_namespace_name(text: str) -> bool:
    """Whether ``text`` is a valid namespace name (a DNS-1123 label)."""
    return bool(DNS_LABEL.match(text))


def is_pod_name(text: str) -> bool:
    """Whether ``text`` is a valid pod name (a DNS-1123 subdomain)."""
    return bool(DNS_SUBDOMAIN.match(text))


@lru_cache(maxsize=65536)
def valid_labels(canonical: str) -> tuple[str, tuple[str, ...]]:
    """Split canonical label text into its valid part and the items Kubernetes would reject.

    Canonical text cannot carry ``,`` or ``=`` inside a value, so an item that does not split
    cleanly is itself invalid.
    """
    if not canonical:
        return canonical, ()
    good: dict[str, str] = {}
    bad: list[str] = []
    for item in canonical.split(","):
        key, sep, value = item.partition("=")
        if sep and is_valid_label_key(key) and is_valid_label_value(value):
            good[key] = value
        else:
            bad.append(item)
    return (canonical_labels(good) if bad else canonical), tuple(bad)


def sanitize_flows(frame: pd.DataFrame, source: str, report: IngestReport) -> pd.DataFrame:
    """Apply the checks of the module docstring to one conformed chunk; returns the chunk."""
    if not len(frame):
        return frame
    bad = pd.Series(False, index=frame.index)
    for side in ("src", "dst"):
        column = f"{side}_namespace"
        values = frame[column]
        invalid = {v for v in distinct_values(values) if not is_namespace_name(str(v))}
        if invalid:
            mask = values.isin(invalid).fillna(False).astype(bool) & ~bad
            if mask.any():
                example = str(values[mask].iloc[0])
                _skip(report, f"{side} namespace is not a valid namespace name", source,
                      int(mask.sum()), example)  # fmt: skip
                bad |= mask
    if bad.any():
        frame = frame[~bad]
    frame = frame.copy() if bad.any() else frame
    for side in ("src", "dst"):
        frame = _clean_pods(frame, f"{side}_pod", source, report)
        frame = _clean_labels(frame, f"{side}_labels", source, report)
    return frame.reset_index(drop=True) if bad.any() else frame


def distinct_values(values: pd.Series) -> list[Any]:
    """The distinct values of a column, missing ones left out. Its distinct values first, then
    the missing one dropped: ``dropna()`` first would copy the whole column (Hubble chunks of
    30,000 rows: 9 of the 13 ms the checks of a chunk took)."""
    return [value for value in values.unique() if not pd.isna(value)]


def _skip(report: IngestReport, reason: str, source: str, count: int, example: str) -> None:
    if report.strict:
        raise InputError(
            f"{reason}: {example[:80]!r}", source=source, hint="without --strict it is skipped"
        )
    seen = report.skipped[reason]
    report.skipped[reason] += count
    report.records_used -= count
    if seen < MAX_MESSAGES_PER_REASON:
        report.messages.append(f"{source}: skipped: {reason} (e.g. {example[:80]!r})")


def _clean_pods(
    frame: pd.DataFrame, column: str, source: str, report: IngestReport
) -> pd.DataFrame:
    values = frame[column]
    invalid = {v for v in distinct_values(values) if not is_pod_name(str(v))}
    if not invalid:
        return frame
    mask = values.isin(invalid).fillna(False).astype(bool)
    example = str(values[mask].iloc[0])
    report.note(
        INVALID_POD_NAME,
        f"{source}: {column} is not a valid pod name, dropped: {example[:80]!r}",
        int(mask.sum()),
    )
    frame = frame.copy()
    frame[column] = values.mask(mask)
    return frame


def _clean_labels(
    frame: pd.DataFrame, column: str, source: str, report: IngestReport
) -> pd.DataFrame:
    values = frame[column]
    mapping: dict[str, str] = {}
    counts: pd.Series | None = None
    for value in distinct_values(values):
        good, bad = valid_labels(str(value))
        if bad:
            mapping[str(value)] = good
            counts = values.value_counts() if counts is None else counts
            count = int(counts[value])
            report.note(
                INVALID_LABELS,
                f"{source}: invalid label(s) left out of selectors: {json.dumps(sorted(bad))}",
                count,
            )
    if not mapping:
        return frame
    frame = frame.copy()
    cleaned = values.map(lambda v: mapping.get(v, v) if isinstance(v, str) else v).astype("string")
    # Nothing valid left: an empty set would become a selector that matches every pod of the
    # namespace, so the side loses its pod identity instead (an IP may still place it).
    emptied = (cleaned == "").fillna(False).astype(bool) & (values != "").fillna(False).astype(bool)
    frame[column] = cleaned.mask(emptied)
    kind = column.replace("_labels", "_kind")
    is_pod = (frame[kind] == "pod").fillna(False).astype(bool)
    frame[kind] = frame[kind].mask(emptied & is_pod, "unknown")
    return frame
