"""One Kubernetes object -> table rows: the only parser of pods, Services and nodes.

Every part of netpolgen that needs to know what a pod declares (its addresses, labels, owner,
container ports by name and number) reads the rows made here, through
:class:`netpolgen.cluster.inventory.Inventory`: the resolver, workload naming, named ports in
policies, the evaluator's :class:`netpolgen.cluster.view.ClusterView`. Ports are typed rows
(:data:`POD_PORT_COLUMNS`, :data:`SERVICE_PORT_COLUMNS`), never text to parse again.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from netpolgen.ingest.fields import TIME_MAX, TIME_MIN, normalize_ip
from netpolgen.labels import (
    canonical_labels,
    is_valid_label_key,
    is_valid_label_value,
)

_NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")

# One row per declared container port of a pod, per snapshot: ``name`` is NA for an unnamed port.
POD_PORT_COLUMNS = {
    "snapshot": "datetime64[ns, UTC]", "namespace": "string", "pod": "string",
    "container": "string", "name": "string", "protocol": "string", "port": "int32",
}  # fmt: skip
# One row per Service port, per snapshot: ``target_port`` is the number the backends listen on
# when ``targetPort`` is a number (or absent: then it is ``port``), ``target_name`` the
# container port name when it is a name (resolved per backend pod); ``node_port`` for NodePort
# and LoadBalancer Services.
SERVICE_PORT_COLUMNS = {
    "snapshot": "datetime64[ns, UTC]", "namespace": "string", "service": "string",
    "name": "string", "protocol": "string", "port": "int32", "target_port": "Int32",
    "target_name": "string", "node_port": "Int32",
}  # fmt: skip


def serving_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers whose ports can serve while the pod runs.

    ``spec.containers``, and the ``initContainers`` with ``restartPolicy: Always``: sidecar
    containers (KEP-753, on by default since Kubernetes 1.29) run beside the app containers for
    the pod's whole life. A plain init container runs to completion before any app container
    starts, so a port it declares never serves traffic and is not a listening port.
    """
    sidecars = [
        as_dict(c) for c in as_list(spec.get("initContainers"))
        if as_dict(c).get("restartPolicy") == "Always"
    ]  # fmt: skip
    return [as_dict(c) for c in as_list(spec.get("containers"))] + sidecars


def _port_number(value: Any) -> int | None:
    # A port number is an integer 1-65535 (core/v1 ContainerPort, ServicePort); bool is an int
    # to Python but not to the API.
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def pod_port_rows(
    pod: dict[str, Any], metadata: dict[str, Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    """The pod's declared container ports (named or not) as :data:`POD_PORT_COLUMNS` rows."""
    rows = []
    for container in serving_containers(as_dict(pod.get("spec"))):
        for port in as_list(container.get("ports")):
            number = _port_number(as_dict(port).get("containerPort"))
            if number is None:
                continue
            port = as_dict(port)
            rows.append({
                "snapshot": base["snapshot"],
                "namespace": metadata.get("namespace") or "default",
                "pod": metadata["name"],
                "container": str(container.get("name") or ""),
                "name": str(port["name"]) if port.get("name") else None,
                # protocol defaults to TCP (core/v1 ContainerPort).
                "protocol": str(port.get("protocol") or "TCP"),
                "port": number,
            })  # fmt: skip
    return rows


def service_port_rows(
    service: dict[str, Any], metadata: dict[str, Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    """The Service's ports as :data:`SERVICE_PORT_COLUMNS` rows."""
    rows = []
    for entry in as_list(as_dict(service.get("spec")).get("ports")):
        entry = as_dict(entry)
        number = _port_number(entry.get("port"))
        if number is None:
            continue
        # targetPort defaults to port (core/v1 ServicePort); a string names a container port.
        target = entry.get("targetPort", number)
        named = isinstance(target, str) and not target.isdigit()
        rows.append({
            "snapshot": base["snapshot"],
            "namespace": metadata.get("namespace") or "default",
            "service": metadata["name"],
            "name": str(entry["name"]) if entry.get("name") else None,
            "protocol": str(entry.get("protocol") or "TCP"),
            "port": number,
            "target_port": None if named else _port_number(int(target) if named is False
                                                           and isinstance(target, str) else target),
            "target_name": target if named else None,
            "node_port": _port_number(entry.get("nodePort")),
        })  # fmt: skip
    return rows


def object_labels(mapping: Any) -> str:
    """Canonical labels, without those Kubernetes would reject (``_build`` warns about them):
    an invalid value could carry ``,`` or ``=`` and corrupt the canonical text."""
    if not isinstance(mapping, dict):
        return ""
    labels = {str(k): "" if v is None else str(v) for k, v in mapping.items()}
    return canonical_labels(
        {k: v for k, v in labels.items() if is_valid_label_key(k) and is_valid_label_value(v)}
    )


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_time(value: Any) -> pd.Timestamp | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        return None
    # datetime64[ns] ends in 2262: a later date is not a real Kubernetes timestamp.
    return stamp if TIME_MIN <= stamp < TIME_MAX else None


def pod_rows(
    pod: dict[str, Any], metadata: dict[str, Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    spec, status = as_dict(pod.get("spec")), as_dict(pod.get("status"))
    owner = next(
        (o for o in as_list(metadata.get("ownerReferences")) if as_dict(o).get("controller")),
        None,
    ) or next(iter(as_list(metadata.get("ownerReferences"))), None)
    owner = as_dict(owner)
    phase = status.get("phase")
    finished = None
    if phase in ("Succeeded", "Failed"):
        ends = [
            parse_time(as_dict(as_dict(cs.get("state")).get("terminated")).get("finishedAt"))
            for cs in as_list(status.get("containerStatuses"))
            if isinstance(cs, dict)
        ]
        known = [t for t in ends if t is not None]
        finished = max(known) if known else None
    # podIPs lists every family (dual-stack); podIP only the first.
    ips = [normalize_ip(str(as_dict(e).get("ip", ""))) for e in as_list(status.get("podIPs"))]
    if not ips and status.get("podIP"):
        ips = [normalize_ip(str(status["podIP"]))]
    addresses: list[str | None] = [ip for ip in ips if ip] or [None]
    workload_kind, workload_name = _workload(owner, as_dict(metadata.get("labels")))
    row = {
        **base,
        "namespace": metadata.get("namespace") or "default",
        "name": metadata["name"],
        "workload_kind": workload_kind,
        "workload_name": workload_name,
        "uid": metadata.get("uid") or f"{metadata.get('namespace')}/{metadata['name']}",
        "labels": object_labels(metadata.get("labels")),
        "node": spec.get("nodeName"),
        "host_network": bool(spec.get("hostNetwork", False)),
        "phase": phase,
        "start": (
            parse_time(status.get("startTime")) or parse_time(metadata.get("creationTimestamp"))
        ),
        "finished": finished,
        "deleted": parse_time(metadata.get("deletionTimestamp")),
        "owner_kind": owner.get("kind"),
        "owner_name": owner.get("name"),
        "service_account": spec.get("serviceAccountName") or spec.get("serviceAccount"),
    }
    return [{**row, "ip": ip} for ip in addresses]


def _workload(owner: dict[str, Any], labels: dict[str, Any]) -> tuple[str | None, str | None]:
    """The workload that owns a pod's controller, from names alone (no ReplicaSet objects).

    The Deployment controller names a ReplicaSet ``<deployment>-<pod-template-hash>`` and labels
    its pods with that hash; the CronJob controller names a Job ``<cronjob>-<minutes since the
    epoch of the scheduled time>`` (kubernetes pkg/controller/cronjob ``getJobName``).
    """
    kind, name = owner.get("kind"), owner.get("name")
    if not isinstance(kind, str) or not isinstance(name, str):
        return None, None
    template_hash = labels.get("pod-template-hash")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return "Deployment", name[: -len(template_hash) - 1]
    if kind == "Job":
        prefix, _, suffix = name.rpartition("-")
        if prefix and suffix.isdigit() and len(suffix) >= 8:
            return "CronJob", prefix
    return kind, name


def service_rows(
    service: dict[str, Any], metadata: dict[str, Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    spec, status = as_dict(service.get("spec")), as_dict(service.get("status"))
    candidates = as_list(spec.get("clusterIPs")) or [spec.get("clusterIP")]
    candidates += as_list(spec.get("externalIPs"))
    candidates += [
        as_dict(i).get("ip") for i in as_list(as_dict(status.get("loadBalancer")).get("ingress"))
    ]
    ips: list[str | None] = []
    for text in candidates:
        ip = normalize_ip(str(text)) if text and text != "None" else None  # headless: "None"
        if ip and ip not in ips:
            ips.append(ip)
    selector = spec.get("selector")
    row = {
        **base,
        "namespace": metadata.get("namespace") or "default",
        "name": metadata["name"],
        "type": spec.get("type", "ClusterIP"),
        "selector": object_labels(selector) if isinstance(selector, dict) and selector else None,
    }
    return [{**row, "ip": ip} for ip in ips or [None]]


def node_rows(
    node: dict[str, Any], metadata: dict[str, Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    spec, status = as_dict(node.get("spec")), as_dict(node.get("status"))
    cidrs = as_list(spec.get("podCIDRs")) or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    ips: list[str | None] = []
    for address in as_list(status.get("addresses")):
        address = as_dict(address)
        if address.get("type") in _NODE_ADDRESS_TYPES:
            ip = normalize_ip(str(address.get("address", "")))
            if ip and ip not in ips:
                ips.append(ip)
    row = {**base, "name": metadata["name"], "pod_cidrs": ",".join(map(str, cidrs)) or None}
    return [{**row, "ip": ip} for ip in ips or [None]]
