"""Kubernetes labels: parsing, canonical text form, and validity.

Flow tables carry labels as canonical text, ``k=v,k2=v2`` sorted by key, so that equal label sets
are equal strings and can be grouped and joined by pandas without Python objects in cells. Label
values cannot contain commas or ``=`` (see the syntax below), so the text form is unambiguous.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache

# https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set
# key: optional DNS-1123 subdomain prefix (<= 253) and '/', then a name of <= 63 characters:
# alphanumerics, '-', '_', '.', starting and ending with an alphanumeric. Values: the same as a
# name, or empty.
_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)"
_KEY_RE = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")


def is_valid_label_key(key: str) -> bool:
    """Whether ``key`` is a syntactically valid Kubernetes label key."""
    if not _KEY_RE.match(key):
        return False
    prefix, _, _ = key.rpartition("/")
    return len(prefix) <= 253


def is_valid_label_value(value: str) -> bool:
    """Whether ``value`` is a syntactically valid Kubernetes label value (may be empty)."""
    return bool(_VALUE_RE.match(value))


def canonical_labels(labels: Mapping[str, str]) -> str:
    """``{'b': '2', 'a': '1'}`` -> ``'a=1,b=2'``."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


@lru_cache(maxsize=65536)
def labels_from_canonical(text: str) -> tuple[tuple[str, str], ...]:
    """Inverse of :func:`canonical_labels`, as sorted pairs (cached: few distinct sets)."""
    if not text:
        return ()
    pairs = []
    for item in text.split(","):
        key, _, value = item.partition("=")
        pairs.append((key, value))
    return tuple(pairs)


def parse_labels(text: str) -> dict[str, str]:
    """Parse labels written as ``k=v,k2=v2`` or as a JSON object.

    Raises:
        ValueError: when the text is neither form; the message says why.
    """
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"labels look like JSON but do not parse ({error.msg})") from None
        if not isinstance(data, dict):
            raise ValueError("labels JSON must be an object")
        return {str(k): _scalar_text(v) for k, v in data.items()}
    labels: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"label {item!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def invalid_labels(labels: Mapping[str, str]) -> list[str]:
    """The ``key=value`` items of ``labels`` that Kubernetes would reject."""
    return [
        f"{k}={v}"
        for k, v in labels.items()
        if not is_valid_label_key(k) or not is_valid_label_value(v)
    ]


# Labels that differ between replicas or revisions of one workload (set by the Deployment,
# StatefulSet, DaemonSet and Job controllers); a selector that used them would pin one revision.
VOLATILE_LABELS = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "job-name",
        "controller-uid",
    }
)
VOLATILE_PREFIXES = ("batch.kubernetes.io/",)


def is_volatile(key: str) -> bool:
    """Whether a label key is set per pod or per revision by a controller."""
    return key in VOLATILE_LABELS or key.startswith(VOLATILE_PREFIXES)


def stable_labels(canonical: str) -> str:
    """Drop volatile labels from canonical label text (``k=v,...``)."""
    return canonical_labels(
        {k: v for k, v in labels_from_canonical(canonical) if not is_volatile(k)}
    )
