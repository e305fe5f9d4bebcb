"""The cluster inventory: pods, services, namespaces and nodes from ``kubectl ... -o json``.

Input: the JSON of ``kubectl get pods,services,namespaces,nodes -A -o json`` (a ``List``), or any
``PodList``/``ServiceList``/... or single object, as JSON or YAML (several YAML documents are
fine). Items of other kinds (EndpointSlices, ReplicaSets...) are ignored. Each file is one
*snapshot*; give several (``-i`` repeated) taken at different times to follow IP reuse.

A snapshot's time is not in the output of kubectl, so it is taken as the latest timestamp inside
the document (node heartbeats, pod conditions, container state changes, creation times): a lower
bound of when the snapshot was taken, and close to it on a live cluster, where kubelets post node
status every few seconds. :func:`load_inventory` takes explicit times when they are known.

The tables (pandas, one row per object and address):

* ``pods``: snapshot, source, namespace, name, uid, ip (NA when the pod has none, e.g. Pending),
  labels (canonical ``k=v,...``), node, host_network, phase, start (``status.startTime``, else
  ``metadata.creationTimestamp``), finished (latest container ``finishedAt`` for Succeeded and
  Failed pods), deleted (``metadata.deletionTimestamp``), owner_kind, owner_name (the controller
  owner reference), workload_kind, workload_name (the owner's owner where kubectl's naming
  shows it: a ReplicaSet ``<deployment>-<pod-template-hash>`` belongs to a Deployment, a Job
  ``<cronjob>-<scheduled minute>`` to a CronJob), service_account.
* ``pod_ports``: one row per declared container port (app and sidecar containers): snapshot,
  namespace, pod, container, name (NA when unnamed), protocol, port.
* ``services``: snapshot, source, namespace, name, type, ip (ClusterIPs, external IPs and load
  balancer IPs, one row each), selector (canonical; NA for selector-less services).
* ``service_ports``: one row per Service port: snapshot, namespace, service, name, protocol,
  port, target_port (a number) or target_name (a container port name), node_port.
* ``namespaces``: snapshot, source, name, labels (canonical; ``kubernetes.io/metadata.name`` is
  added when absent, as the API server sets it on every namespace since Kubernetes 1.22).
* ``nodes``: snapshot, source, name, ip (InternalIP/ExternalIP addresses, one row each),
  pod_cidrs (comma-separated ``spec.podCIDRs``).

An inventory is parsed whole, so its size is capped (:data:`MAX_INVENTORY_BYTES`, after
decompression): a few kilobytes of gzip can expand to gigabytes, and such a file is refused after
reading at most the cap, not decompressed into memory first.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from netpolgen import safe_yaml
from netpolgen.cluster.objects import (
    POD_PORT_COLUMNS,
    SERVICE_PORT_COLUMNS,
    as_dict,
    node_rows,
    object_labels,
    parse_time,
    pod_port_rows,
    pod_rows,
    service_port_rows,
    service_rows,
)
from netpolgen.errors import InventoryError
from netpolgen.ingest.sanitize import is_namespace_name, is_pod_name
from netpolgen.ingest.sources import GZIP_MAGIC, CheckedGzip, refuse_zip
from netpolgen.labels import (
    invalid_labels,
    labels_from_canonical,
)

__all__ = ["MAX_INVENTORY_BYTES", "Inventory", "load_inventory", "parse_inventory"]

# The largest inventory read, in bytes after decompression (``load_inventory(max_bytes=...)``
# overrides it). kubectl's JSON for a cluster of 10,000 pods is a few hundred MB, and parsing
# takes several times the file's size in memory: beyond this a file is a mistake or an attack.
MAX_INVENTORY_BYTES = 2 << 30
_READ_BLOCK = 1 << 20

POD_COLUMNS = {
    "snapshot": "datetime64[ns, UTC]", "source": "string", "namespace": "string",
    "name": "string", "uid": "string", "ip": "string", "labels": "string", "node": "string",
    "host_network": "bool", "phase": "string", "start": "datetime64[ns, UTC]",
    "finished": "datetime64[ns, UTC]", "deleted": "datetime64[ns, UTC]",
    "owner_kind": "string", "owner_name": "string", "workload_kind": "string",
    "workload_name": "string", "service_account": "string",
}  # fmt: skip
SERVICE_COLUMNS = {
    "snapshot": "datetime64[ns, UTC]", "source": "string", "namespace": "string",
    "name": "string", "type": "string", "ip": "string", "selector": "string",
}  # fmt: skip
NAMESPACE_COLUMNS = {
    "snapshot": "datetime64[ns, UTC]", "source": "string", "name": "string", "labels": "string",
}  # fmt: skip
NODE_COLUMNS = {
    "snapshot": "datetime64[ns, UTC]", "source": "string", "name": "string", "ip": "string",
    "pod_cidrs": "string",
}  # fmt: skip
_KINDS = ("Pod", "Service", "Namespace", "Node")


@dataclass(frozen=True)
class Inventory:
    """Pods, services, namespaces and nodes of one or more snapshots (see the module docstring).

    Attributes:
        pods, services, namespaces, nodes: the tables described in the module docstring.
        snapshots: the time of each snapshot, in the order given.
        sources: the file each snapshot was read from.

    Examples:
        >>> inventory = load_inventory("sample_flows/online-shop.inventory.json")  # doctest: +SKIP
        >>> inventory.pods.groupby("namespace")["name"].count()  # doctest: +SKIP
    """

    pods: pd.DataFrame
    services: pd.DataFrame
    namespaces: pd.DataFrame
    nodes: pd.DataFrame
    pod_ports: pd.DataFrame = field(default_factory=lambda: table([], POD_PORT_COLUMNS))
    service_ports: pd.DataFrame = field(default_factory=lambda: table([], SERVICE_PORT_COLUMNS))
    snapshots: tuple[pd.Timestamp, ...] = ()
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        """Labels of each namespace (latest snapshot wins), for ``namespaceSelector`` matching.

        Namespaces named by pods or services but absent from the inventory get the one label
        the API server always sets, ``kubernetes.io/metadata.name``.
        """
        out: dict[str, dict[str, str]] = {}
        names = set(self.pods["namespace"].dropna()) | set(self.services["namespace"].dropna())
        for name in sorted(names):
            out[str(name)] = {"kubernetes.io/metadata.name": str(name)}
        latest = self.namespaces.sort_values("snapshot", kind="stable").drop_duplicates(
            "name", keep="last"
        )
        for name, labels in zip(latest["name"], latest["labels"], strict=True):
            out[str(name)] = dict(labels_from_canonical(str(labels)))
        return out

    def container_ports(self, *, latest: bool = False) -> pd.DataFrame:
        """Declared container ports with their pod's labels: the one view of pod ports.

        Columns: snapshot, namespace, pod, labels, host_network, container, name (NA when the
        port is unnamed), protocol, port; in snapshot order, each pod's containers in spec
        order. ``latest`` keeps only each pod's latest snapshot (a pod's ports are its
        template's, so the latest snapshot speaks for the pod).
        """
        pods = self.pods.drop_duplicates(["namespace", "name", "snapshot"])[
            ["namespace", "name", "snapshot", "labels", "host_network"]
        ]
        if latest:
            pods = pods.sort_values("snapshot", kind="stable").drop_duplicates(
                ["namespace", "name"], keep="last"
            )
        ports = self.pod_ports.merge(
            pods.rename(columns={"name": "pod"}), on=["namespace", "pod", "snapshot"]
        )
        ports = ports.sort_values("snapshot", kind="stable").reset_index(drop=True)
        columns = ["snapshot", "namespace", "pod", "labels", "host_network", "container"]
        return ports[[*columns, "name", "protocol", "port"]]

    @property
    def empty(self) -> bool:
        """Whether the inventory knows no object at all."""
        return not (len(self.pods) or len(self.services) or len(self.nodes))


def load_inventory(
    paths: str | Path | Iterable[str | Path],
    times: Sequence[pd.Timestamp | str] | None = None,
    *,
    max_bytes: int | None = None,
) -> Inventory:
    """Read inventory snapshots (``kubectl get pods,services,namespaces,nodes -A -o json``).

    Args:
        paths: one file or several, each a snapshot (JSON or YAML, gzip-compressed or not), or
            directories of them (their ``*.json``, ``*.yaml``, ``*.yml`` and ``.gz`` files, in
            name order); ``-`` is not accepted (files only).
        times: the time each snapshot was taken, if known; otherwise it is inferred from the
            latest timestamp inside each file (see the module docstring).
        max_bytes: refuse a file larger than this once decompressed (default
            :data:`MAX_INVENTORY_BYTES`, 2 GiB).

    Raises:
        InventoryError: naming the file (and line, for syntax errors) and what is wrong.

    Examples:
        >>> inventory = load_inventory(["before.json", "after.json"])  # doctest: +SKIP
        >>> inventory.pods[["namespace", "name", "ip", "start"]]  # doctest: +SKIP
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [file for path in paths for file in _expand(Path(path))]
    if times is not None and len(times) != len(paths):
        raise InventoryError(f"{len(times)} snapshot times given for {len(paths)} files")
    cap = MAX_INVENTORY_BYTES if max_bytes is None else max_bytes
    documents = []
    for index, path in enumerate(paths):
        name = str(path)
        try:
            data = _read_capped(Path(path), name, cap)
        except (EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise InventoryError(
                f"compressed inventory is corrupt ({error})", source=name
            ) from error
        except FileNotFoundError as error:
            raise InventoryError("no such inventory file", source=name) from error
        except OSError as error:
            raise InventoryError(f"cannot read inventory: {error.strerror}", source=name) from error
        time = None if times is None else pd.Timestamp(times[index])
        documents.append((name, _parse_bytes(data, name), time))
    return _build(documents)


def _read_capped(path: Path, name: str, cap: int) -> bytearray:
    """The file's content (gunzipped when it is gzip), at most ``cap`` bytes of it.

    Read block by block, so that a file over the cap is refused with at most ``cap`` bytes (and
    one block) read: a gzip bomb is never decompressed whole. A bytearray, not bytes: the
    content is not copied again on the way to the JSON parser.
    """
    with path.open("rb") as raw:
        refuse_zip(raw.peek(4)[:4], name, InventoryError)
        gzipped = raw.peek(2)[:2] == GZIP_MAGIC
        if not gzipped and path.is_file() and path.stat().st_size > cap:
            raise _too_large(name, cap)  # no need to read it
        stream: Any = CheckedGzip(raw, name, InventoryError) if gzipped else raw
        data = bytearray()
        while len(data) <= cap:
            block = stream.read(min(_READ_BLOCK, cap + 1 - len(data)))
            if not block:
                return data
            if not data and b"\x00" in block:
                # JSON and YAML are text: a NUL byte means binary data (or a bomb of zeros).
                raise InventoryError(
                    "inventory holds binary data, not JSON or YAML text", source=name,
                    hint="produce it with: kubectl get pods,services,namespaces,nodes -A -o json",
                )  # fmt: skip
            data += block
    raise _too_large(name, cap)


def _too_large(name: str, cap: int) -> InventoryError:
    size = next(
        (f"{cap // unit} {suffix}" for unit, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"))
         if cap >= unit and cap % unit == 0),
        f"{cap} bytes",
    )  # fmt: skip
    return InventoryError(
        f"inventory exceeds the size limit of {size} (decompressed): not read",
        source=name,
        hint="kubectl's JSON for even a large cluster is far smaller: check what this file is",
    )


_SNAPSHOT_SUFFIXES = (".json", ".yaml", ".yml", ".json.gz", ".yaml.gz", ".yml.gz")


def _expand(path: Path) -> list[Path]:
    """A directory stands for its snapshot files, in name order (timestamps in names sort)."""
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_SNAPSHOT_SUFFIXES))
    if not files:
        raise InventoryError("directory holds no *.json or *.yaml inventory", source=str(path))
    return files


def parse_inventory(
    documents: Iterable[Any], source: str = "<inventory>", time: pd.Timestamp | str | None = None
) -> Inventory:
    """Build a one-snapshot :class:`Inventory` from already-parsed Kubernetes objects."""
    stamp = None if time is None else pd.Timestamp(time)
    return _build([(source, list(documents), stamp)])


def inventory_from_documents(documents: Sequence[Any], source: str = "<inventory>") -> Inventory:
    """An :class:`Inventory` from parsed ``kubectl ... -o json`` documents, one snapshot each.

    The same parser as :func:`load_inventory`; each document is a snapshot of its own, taken at
    its latest timestamp (documents without one keep their order: later ones win).
    """
    named: list[tuple[str, list[Any], pd.Timestamp | None]] = [
        (source if len(documents) == 1 else f"{source}[{n}]", [doc], None)
        for n, doc in enumerate(documents)
    ]
    return _build(named)


# A document meant as JSON: its first character after white space opens an object or array.
_JSON_START = re.compile(rb"\s*[\[{]")


def _parse_bytes(data: bytes | bytearray, source: str) -> list[Any]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data or data.isspace():  # (no stripped copy of what may be a large file)
        raise InventoryError("empty inventory file", source=source)
    try:
        return [json.loads(data)]
    except UnicodeDecodeError as error:
        raise InventoryError("inventory is not UTF-8 text", source=source) from error
    except RecursionError as error:
        raise InventoryError("inventory is nested too deeply", source=source) from error
    except json.JSONDecodeError as json_error:
        # Not one JSON document: YAML (kubectl -o yaml) or several documents.
        try:
            return [d for d in safe_yaml.load_all(bytes(data)) if d is not None]
        except safe_yaml.AliasBombError as error:
            raise InventoryError(str(error), source=source) from error
        except safe_yaml.YAML_ERRORS as yaml_error:
            line: int | None
            if _JSON_START.match(data):  # meant as JSON: its error, and its line
                message, line = f"not valid JSON ({json_error.msg}) nor YAML", json_error.lineno
            else:  # meant as YAML (kubectl -o yaml): the line YAML stopped at
                mark = getattr(yaml_error, "problem_mark", None)
                problem = getattr(yaml_error, "problem", None) or "cannot be parsed"
                message = f"not valid YAML ({problem}) nor JSON"
                line = int(mark.line) + 1 if mark is not None else None
            raise InventoryError(
                message, source=source, line=line,
                hint="produce it with: kubectl get pods,services,namespaces,nodes -A -o json",
            ) from json_error  # fmt: skip


def _objects(documents: list[Any], source: str) -> list[tuple[str, dict[str, Any], str]]:
    """Flatten Lists into ``(kind, object, where)`` for the kinds the inventory uses."""
    out: list[tuple[str, dict[str, Any], str]] = []
    for number, document in enumerate(documents, 1):
        where_doc = f"document {number}" if len(documents) > 1 else "document"
        if not isinstance(document, dict):
            raise InventoryError(
                f"{where_doc} is not a Kubernetes object or List", source=source,
                hint="produce it with: kubectl get pods,services,namespaces,nodes -A -o json",
            )  # fmt: skip
        kind = str(document.get("kind", ""))
        if "items" in document:
            items = document["items"]
            if not isinstance(items, list):
                raise InventoryError(f"{where_doc}: items is not a list", source=source)
            item_kind = kind[: -len("List")] if kind.endswith("List") and kind != "List" else ""
            for index, item in enumerate(items):
                where = f"items[{index}]"
                if not isinstance(item, dict):
                    raise InventoryError(f"{where} is not an object", source=source)
                found = str(item.get("kind") or item_kind or _guess_kind(item))
                if found in _KINDS:
                    out.append((found, item, where))
        elif kind in _KINDS:
            out.append((kind, document, kind))
        elif not kind:
            raise InventoryError(
                f"{where_doc} has neither kind nor items: not a Kubernetes object",
                source=source,
                hint="produce it with: kubectl get pods,services,namespaces,nodes -A -o json",
            )
    return out


def _guess_kind(item: dict[str, Any]) -> str:
    """The kubelet's /pods list and some tools leave ``kind`` out of items."""
    spec, status = as_dict(item.get("spec")), as_dict(item.get("status"))
    if "containers" in spec:
        return "Pod"
    if "clusterIP" in spec or "ports" in spec and "selector" in spec:
        return "Service"
    if "addresses" in status or "nodeInfo" in status:
        return "Node"
    return ""


def _meta(obj: dict[str, Any], kind: str, where: str, source: str) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise InventoryError(f"{where} ({kind}) has no metadata.name", source=source)
    labels = metadata.get("labels") or {}
    if not isinstance(labels, dict):
        raise InventoryError(f"{where} ({kind}) metadata.labels is not a mapping", source=source)
    if len(labels) > MAX_LABELS_PER_OBJECT:
        raise InventoryError(
            f"{where} ({kind} {metadata.get('name')}) has {len(labels):,} labels, more than an "
            "object the API server stores can hold", source=source,
            hint="etcd refuses a request over 1.5 MiB; this file was not made by kubectl get",
        )  # fmt: skip
    return metadata


# The API server keeps each object in etcd, whose requests are at most 1.5 MiB by default
# (etcd's --max-request-bytes); a label takes 7 bytes of JSON at least ("k":"",), so no stored
# object has more than about 225,000. More is a forged document, refused before the labels are
# parsed into tables (a million labels on one pod once took 100 s and 1.2 GB).
MAX_LABELS_PER_OBJECT = 250_000


# Per problem, the first few warnings are kept; a count says how many more there were.
_MAX_WARNINGS = 5


def _warn(warnings: list[str], seen: Counter[str], problem: str, message: str) -> None:
    seen[problem] += 1
    if seen[problem] <= _MAX_WARNINGS:
        warnings.append(message)


def _check_names(kind: str, metadata: dict[str, Any]) -> str | None:
    """Why an object's names cannot be used (they become policy namespaces and names), or None.

    Namespaces (a Namespace's name, or another object's namespace) are DNS-1123 labels; pod
    and service names are DNS-1123 subdomains (nodes too, but they are never written out).
    """
    name = str(metadata["name"])
    namespace = metadata.get("namespace")
    if kind == "Namespace" and not is_namespace_name(name):
        return f"name {name[:80]!r} is not a valid namespace name"
    if kind in ("Pod", "Service"):
        if namespace is not None and not is_namespace_name(str(namespace)):
            return f"namespace {str(namespace)[:80]!r} is not a valid namespace name"
        if not is_pod_name(name):
            return f"name {name[:80]!r} is not a valid Kubernetes name"
    return None


def _timestamps(obj: Any, found: list[str]) -> None:
    """Collect the RFC 3339 values of the time fields Kubernetes objects carry."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, str) and key in _TIME_KEYS:
                found.append(value)
            elif isinstance(value, dict | list):
                _timestamps(value, found)
    elif isinstance(obj, list):
        for value in obj:
            _timestamps(value, found)


_TIME_KEYS = frozenset({
    "creationTimestamp", "startTime", "lastTransitionTime", "lastHeartbeatTime", "startedAt",
    "finishedAt", "lastProbeTime", "time",
})  # fmt: skip


def _build(documents: list[tuple[str, list[Any], pd.Timestamp | None]]) -> Inventory:
    pods: list[dict[str, Any]] = []
    services: list[dict[str, Any]] = []
    namespaces: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    pod_ports: list[dict[str, Any]] = []
    service_ports: list[dict[str, Any]] = []
    snapshots: list[pd.Timestamp] = []
    warnings: list[str] = []
    seen: Counter[str] = Counter()  # warnings per problem, to keep only the first few
    for source, docs, given in documents:
        objects = _objects(docs, source)
        if not objects:
            raise InventoryError(
                "no pods, services, namespaces or nodes in the inventory",
                source=source,
                hint="produce it with: kubectl get pods,services,namespaces,nodes -A -o json",
            )
        snapshot = given
        if snapshot is None:
            stamps: list[str] = []
            _timestamps(docs, stamps)
            times = [t for t in (parse_time(s) for s in stamps) if t is not None]
            snapshot = max(times) if times else pd.Timestamp("1970-01-01", tz="UTC")
            if not times:
                warnings.append(f"{source}: no timestamps: snapshot time unknown")
        elif snapshot.tzinfo is None:
            snapshot = snapshot.tz_localize("UTC")
        snapshots.append(snapshot)
        base = {"snapshot": snapshot, "source": source}
        for kind, obj, where in objects:
            metadata = _meta(obj, kind, where, source)
            problem = _check_names(kind, metadata)
            if problem:
                _warn(warnings, seen, "names", f"{source}: {where} ({kind}) left out: {problem}")
                continue
            labels = as_dict(metadata.get("labels"))
            bad = invalid_labels({str(k): "" if v is None else str(v) for k, v in labels.items()})
            if bad:
                _warn(
                    warnings, seen, "labels",
                    f"{source}: {where} ({kind} {metadata['name']}): invalid label(s) left out "
                    f"of selectors: {json.dumps(sorted(bad))}",
                )  # fmt: skip
            if kind == "Pod":
                pods.extend(pod_rows(obj, metadata, base))
                pod_ports.extend(pod_port_rows(obj, metadata, base))
            elif kind == "Service":
                services.extend(service_rows(obj, metadata, base))
                service_ports.extend(service_port_rows(obj, metadata, base))
            elif kind == "Namespace":
                labels = dict(as_dict(metadata.get("labels")))
                labels.setdefault("kubernetes.io/metadata.name", str(metadata["name"]))
                namespaces.append(
                    {**base, "name": metadata["name"], "labels": object_labels(labels)}
                )
            else:
                nodes.extend(node_rows(obj, metadata, base))
    return Inventory(
        pods=table(pods, POD_COLUMNS),
        services=table(services, SERVICE_COLUMNS),
        namespaces=table(namespaces, NAMESPACE_COLUMNS),
        nodes=table(nodes, NODE_COLUMNS),
        pod_ports=table(pod_ports, POD_PORT_COLUMNS),
        service_ports=table(service_ports, SERVICE_PORT_COLUMNS),
        snapshots=tuple(snapshots),
        sources=tuple(source for source, _, _ in documents),
        warnings=tuple(warnings),
    )


def table(rows: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(frame[name], utc=True).astype(dtype)  # type: ignore[call-overload]
        elif dtype == "bool":
            frame[name] = frame[name].fillna(False).astype(bool)
        else:
            frame[name] = frame[name].astype(dtype)  # type: ignore[call-overload]
    return frame
