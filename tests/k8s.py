"""Kubernetes-side checks on emitted YAML, shared by the tests."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import yaml

from netpolgen.labels import is_valid_label_key, is_valid_label_value

KUBERNETES_VERSION = "1.30.0"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _selectors(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("podSelector", "namespaceSelector") and isinstance(value, dict):
                found.append(value)
            found.extend(_selectors(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_selectors(item))
    return found


def assert_valid_policies(text: str) -> list[dict[str, Any]]:
    """Every document is a NetworkPolicy that passes strict schema validation, with valid names
    and selector labels; returns the parsed documents."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        assert document["kind"] == "NetworkPolicy"
        name = document["metadata"]["name"]
        assert len(name) <= 253 and _DNS_SUBDOMAIN.match(name), name
        assert _DNS_LABEL.match(document["metadata"]["namespace"])
        for selector in _selectors(document["spec"]):
            for key, value in selector.get("matchLabels", {}).items():
                assert is_valid_label_key(key) and is_valid_label_value(value), (key, value)
            for requirement in selector.get("matchExpressions", []):
                assert is_valid_label_key(requirement["key"])
    return documents
