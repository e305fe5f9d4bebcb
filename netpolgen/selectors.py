"""Label selectors (``matchLabels``, ``matchExpressions``) as frozen dataclasses.

Selectors are how NetworkPolicy names pods and namespaces; the identity stage builds them and the
policy model holds them, so they sit below both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from netpolgen.errors import PolicyParseError

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# The label Kubernetes (1.21+) puts on every namespace, so a peer can name a namespace exactly.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class LabelRequirement:
    """One ``matchExpressions`` entry: ``key operator values``."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a pod or namespace with ``labels`` satisfies this requirement."""
        # Semantics of k8s.io/apimachinery labels.Requirement: NotIn and DoesNotExist also
        # match objects that lack the key.
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        raise PolicyParseError(f"unknown label selector operator {self.operator!r}")

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "operator": self.operator}
        if self.operator in ("In", "NotIn"):
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True)
class LabelSelector:
    """A label selector. The empty selector selects everything (in its scope)."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelSelector:
        """A ``matchLabels``-only selector, keys sorted so that equal selectors compare equal."""
        return cls(match_labels=tuple(sorted(labels.items())))

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether an object with ``labels`` is selected (all terms are ANDed)."""
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def to_manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [r.to_manifest() for r in self.match_expressions]
        return out

    def describe(self) -> str:
        """``k=v,k2 in (a,b)``: a compact form for reports."""
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for r in self.match_expressions:
            if r.operator in ("In", "NotIn"):
                parts.append(f"{r.key} {r.operator.lower()} ({','.join(r.values)})")
            elif r.operator == "Exists":
                parts.append(r.key)
            else:
                parts.append(f"!{r.key}")
        return ",".join(parts) or "<all>"

    def sort_key(self) -> tuple[Any, ...]:
        return (
            self.match_labels,
            tuple((r.key, r.operator, r.values) for r in self.match_expressions),
        )
