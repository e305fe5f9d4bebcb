"""Hubble ``Endpoint`` objects -> ``(namespace, pod, labels, kind)``, and the per-reader table
of the distinct endpoints that rows refer to by code.

Semantics (cilium ``api/v1/flow/flow.proto``, ``pkg/labels``, ``pkg/identity``):
``k8s:`` labels are the pod's labels (prefix stripped); Cilium's injected labels
(``io.kubernetes.pod.namespace``, ``io.cilium.k8s.*``) are dropped. Reserved identities map to
kinds: ``host`` -> host, ``remote-node`` -> node, ``world``/``cidr:``/``fqdn:`` -> world,
``kube-apiserver`` -> world (an ipBlock either way); ``health`` flows are Cilium's own probes.

The functions here are pure, so their ``lru_cache`` memos may be shared by every reader and
thread (CPython's ``lru_cache`` is thread-safe; at worst an answer is computed twice). What is
*not* pure, the codes given to endpoints as they are met, lives in an :class:`EndpointTable`
that belongs to one reader: two files read at once on two threads never share one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from netpolgen.ingest.jsonlines import JSON_ERRORS, loads
from netpolgen.labels import canonical_labels, is_valid_label_key, is_valid_label_value

# Cilium's numeric reserved identities (pkg/identity/numericidentity.go).
IDENTITY_KINDS = {1: "host", 2: "world", 4: "health", 6: "node", 7: "world", 9: "world",
                  10: "world"}  # fmt: skip
LOCAL_IDENTITY_BASE = 1 << 24  # CIDR and FQDN identities: outside addresses
INJECTED_LABELS = ("io.kubernetes.pod.namespace",)
INJECTED_PREFIXES = ("io.cilium.k8s.",)

Endpoint = tuple[str | None, str | None, str | None, str]
"""``(namespace, pod, canonical labels, kind)`` of one endpoint."""

# A table is cleared between chunks once it grows past this (rows hold codes, so only then).
ENDPOINTS_MAX = 1 << 16


class EndpointTable:
    """The distinct endpoints one reader has met, as codes.

    One pod's endpoint repeats on every line of its flows, so rows carry a small integer and the
    endpoint columns are built by taking from :attr:`endpoints`. ``raw`` caches the answer for
    an endpoint's raw JSON bytes (the fast paths keep endpoints undecoded).
    """

    __slots__ = ("codes", "endpoints", "raw")

    def __init__(self) -> None:
        self.codes: dict[Endpoint, int] = {}
        self.endpoints: list[Endpoint] = []
        self.raw: dict[bytes, tuple[int, tuple[str, ...]] | None] = {}

    def code(self, endpoint: Endpoint) -> int:
        """The code of ``endpoint``, given on first sight."""
        if not all(part is None or type(part) is str for part in endpoint):
            # A namespace or pod name of another JSON type (a list, a number): kept as its text,
            # as the string column would hold it, for the name checks to reject (sanitize.py).
            endpoint = tuple(p if p is None or type(p) is str else str(p) for p in endpoint)  # type: ignore[assignment]
        code = self.codes.get(endpoint)
        if code is None:
            code = self.codes[endpoint] = len(self.endpoints)
            self.endpoints.append(endpoint)
        return code

    def code_raw(self, raw: Any) -> tuple[int, tuple[str, ...]] | None:
        """The code and the invalid labels of an endpoint's raw JSON, cached on its bytes.

        None when the bytes do not parse (the general path then reports the line).
        """
        key = bytes(raw)
        answer = self.raw.get(key, False)
        if answer is not False:
            return answer  # type: ignore[return-value]
        try:
            value = loads(key)
        except JSON_ERRORS:
            answer = None
        else:
            answer = (self.code(endpoint_fields(value)), invalid_labels(value))
        self.raw[key] = answer
        return answer

    def forget(self) -> None:
        """Clear the table if it grew large (only between chunks: rows hold codes)."""
        if len(self.endpoints) > ENDPOINTS_MAX or len(self.raw) > ENDPOINTS_MAX:
            self.codes.clear()
            self.endpoints.clear()
            self.raw.clear()


def invalid_labels(endpoint: Any) -> tuple[str, ...]:
    """The ``k8s:`` labels of an Endpoint that are left out because Kubernetes rejects them."""
    raw = endpoint.get("labels") if isinstance(endpoint, dict) else None
    if not isinstance(raw, list) or not raw:
        return ()
    try:
        return _invalid_k8s_labels(tuple(raw))
    except TypeError:  # an unhashable item: not a label string at all
        return _invalid_k8s_labels(tuple(map(str, raw)))


@lru_cache(maxsize=16384)
def _invalid_k8s_labels(raw: tuple[Any, ...]) -> tuple[str, ...]:
    """The ``k8s:`` pod labels of ``raw`` that :func:`_labels` leaves out as invalid."""
    bad = []
    for item in map(str, raw):
        source, sep, rest = item.partition(":")
        if not sep or source != "k8s":
            continue
        key, _, val = rest.partition("=")
        if key in INJECTED_LABELS or key.startswith(INJECTED_PREFIXES):
            continue
        if not (is_valid_label_key(key) and is_valid_label_value(val)):
            bad.append(rest)
    return tuple(bad)


_PLAIN = (str, type(None))


def endpoint_fields(value: Any) -> Endpoint:
    """``(namespace, pod, labels, kind)`` of a Hubble Endpoint.

    One pod's endpoint object repeats on every line of its flows, so the answer is cached on the
    fields it depends on; values of unusual types take the uncached path, so that no two
    different inputs share a cache entry (``1`` and ``True`` are equal keys in Python).
    """
    if not isinstance(value, dict):
        return None, None, None, "unknown"
    namespace, pod, identity = value.get("namespace"), value.get("pod_name"), value.get("identity")
    raw = value.get("labels")
    if (
        isinstance(namespace, _PLAIN)
        and isinstance(pod, _PLAIN)
        and (identity is None or type(identity) is int)
        and (raw is None or type(raw) is list)
    ):
        try:
            return _endpoint_cached(namespace, pod, identity, tuple(raw) if raw else ())
        except TypeError:  # an unhashable item in labels: malformed, take the long way
            pass
    return _endpoint_uncached(value)


@lru_cache(maxsize=65536)
def _endpoint_cached(
    namespace: str | None, pod: str | None, identity: int | None, raw: tuple[Any, ...]
) -> Endpoint:
    fields: dict[str, Any] = {"namespace": namespace, "pod_name": pod, "identity": identity}
    fields["labels"] = list(raw)
    return _endpoint_uncached(fields)


def _endpoint_uncached(value: dict[str, Any]) -> Endpoint:
    namespace = value.get("namespace") or None
    pod = value.get("pod_name") or None
    raw = value.get("labels")
    labels_list = tuple(str(v) for v in raw) if isinstance(raw, list) else ()
    labels, reserved_kind, labelled_namespace = _labels(labels_list)
    # Behind an L7 proxy (Istio, Cilium's Envoy) Hubble can name the identity without the
    # endpoint's namespace field; the identity's injected namespace label says it.
    namespace = namespace or labelled_namespace
    identity = value.get("identity")
    if reserved_kind is None and isinstance(identity, int):
        reserved_kind = IDENTITY_KINDS.get(identity)
        if reserved_kind is None and identity >= LOCAL_IDENTITY_BASE and namespace is None:
            reserved_kind = "world"
    if reserved_kind is not None:
        return None, None, None, reserved_kind
    # Kind "pod" means "selectable": it needs the labels. A pod named without them (a field
    # mask) stays "unknown" with its namespace and name, for the inventory to complete.
    if namespace is not None and labels:
        return namespace, pod, labels, "pod"
    return namespace, pod, labels, "unknown"


@lru_cache(maxsize=16384)
def _labels(raw: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """Cilium label strings -> (canonical pod labels, reserved kind, namespace), each or None."""
    pod_labels: dict[str, str] = {}
    reserved: set[str] = set()
    namespace: str | None = None
    for item in raw:
        source, sep, rest = item.partition(":")
        if not sep:
            continue
        key, _, val = rest.partition("=")
        if source == "reserved":
            reserved.add(key)
        elif source in ("cidr", "fqdn"):
            reserved.add("world")
        elif source == "k8s":
            if key == "io.kubernetes.pod.namespace":
                namespace = val or None
            if key in INJECTED_LABELS or key.startswith(INJECTED_PREFIXES):
                continue
            if is_valid_label_key(key) and is_valid_label_value(val):
                pod_labels[key] = val
    kind: str | None = None
    if "health" in reserved:
        kind = "health"
    elif "host" in reserved:
        kind = "host"
    elif "remote-node" in reserved:
        kind = "node"
    elif reserved & {"world", "world-ipv4", "world-ipv6", "kube-apiserver"}:
        kind = "world"
    elif reserved:
        kind = "unknown"  # init, unmanaged, ingress: nothing a NetworkPolicy can name
    return (canonical_labels(pod_labels) if pod_labels else None), kind, namespace
