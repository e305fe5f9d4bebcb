"""Validation of emitted custom resources against the upstream CRD schemas in tests/schemas/.

The CRDs' ``openAPIV3Schema`` is what the API server validates with; it prunes unknown fields
rather than rejecting them, so, as ``kubectl apply --validate=strict`` does, every object
schema with ``properties`` here also refuses fields it does not list. Cilium's ``format: cidr``
is checked with :mod:`ipaddress`.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRDS = {
    ("projectcalico.org/v3", "StagedKubernetesNetworkPolicy"): (
        "calico-v3.32.1_projectcalico.org_stagedkubernetesnetworkpolicies.yaml"
    ),
    ("cilium.io/v2", "CiliumNetworkPolicy"): "cilium-v1.18.2_ciliumnetworkpolicy_v2.schema.json",
    ("policy.networking.k8s.io/v1alpha2", "ClusterNetworkPolicy"): (
        "network-policy-api-v0.2.0_policy.networking.k8s.io_clusternetworkpolicies.yaml"
    ),
}

_formats = jsonschema.FormatChecker()


@_formats.checks("cidr", raises=ValueError)  # type: ignore[untyped-decorator]
def _is_cidr(value: object) -> bool:
    if not isinstance(value, str) or "/" not in value:
        raise ValueError(f"{value!r} is not a CIDR")
    ipaddress.ip_network(value, strict=True)
    return True


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def _validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
    path = SCHEMAS / CRDS[(api_version, kind)]
    if path.suffix == ".json":
        schema = json.loads(path.read_text(encoding="utf-8"))  # already the openAPIV3Schema
    else:
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        version = api_version.split("/")[1]
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        schema = served["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(_strict(copy.deepcopy(schema)), format_checker=_formats)


def assert_valid_custom_resources(text: str) -> list[dict[str, Any]]:
    """Every document validates against its kind's vendored CRD schema; returns them."""
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    for document in documents:
        validator = _validator(document["apiVersion"], document["kind"])
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return documents
