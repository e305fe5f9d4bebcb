"""Small builders for flow tables, policies and inventories in tests."""

from __future__ import annotations

from typing import Any

import pandas as pd
import yaml

from netpolgen.flows import conform_flows
from netpolgen.policy.model import Policy


def flows(*rows: dict[str, Any]) -> pd.DataFrame:
    """A flow table from dicts; ``src``/``dst`` may be ``"ns/k=v,k2=v2"`` or an IP address."""
    records = []
    for row in rows:
        row = dict(row)
        for side in ("src", "dst"):
            endpoint = row.pop(side, None)
            if endpoint is None:
                continue
            if "/" in endpoint and not _looks_like_cidr(endpoint):
                namespace, _, labels = endpoint.partition("/")
                row.setdefault(f"{side}_namespace", namespace)
                row.setdefault(f"{side}_labels", labels)
                row.setdefault(f"{side}_kind", "pod")
            else:
                row.setdefault(f"{side}_ip", endpoint)
                row.setdefault(f"{side}_kind", "world")
        row.setdefault("protocol", "TCP")
        records.append(row)
    return conform_flows(pd.DataFrame(records))


def _looks_like_cidr(text: str) -> bool:
    head = text.split("/", 1)[0]
    return head.replace(".", "").isdigit() or ":" in head


def policies(text: str) -> list[Policy]:
    """Policies from a multi-document YAML string (``kind`` and ``apiVersion`` optional)."""
    out = []
    for document in yaml.safe_load_all(text):
        if document is None:
            continue
        document.setdefault("kind", "NetworkPolicy")
        document.setdefault("apiVersion", "networking.k8s.io/v1")
        out.append(Policy.from_manifest(document))
    return out


def pod(
    namespace: str,
    name: str,
    labels: dict[str, str],
    ip: str | None = None,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Pod object as ``kubectl get pods -o json`` shows it."""
    return {
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "ports": ports or []}]},
        "status": {"podIP": ip} if ip else {},
    }


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def inventory(*items: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": list(items)}
