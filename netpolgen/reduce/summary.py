"""A flow chunk reduced to integers, so that a worker process can do the per-row work.

:class:`netpolgen.reduce.stream.FlowReducer` needs every row of a chunk only for what it decides per
row: whether the row is a reply (which needs the state of every earlier chunk, so it is decided
in input order, in one process) and, from that, which rows count. Everything else it does with a
row is a function of the row alone: its endpoint keys, its edge, its reply-inference 5-tuple, its
pods. :func:`summarize_chunk` computes those in the process that parsed the chunk and hands back
a :class:`ChunkSummary`: per row a few integers (codes into small tables of the chunk's distinct
values), which :meth:`~netpolgen.reduce.stream.FlowReducer.add` reduces as it reduces the rows.
A summary of 50,000 CSV rows is about 8 MB, mostly integers, against ~50 MB of flow table:
cheaper to send between processes, and nothing is left for the main process to parse or
factorise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from netpolgen._kernels import combined_codes, first_of_groups, known_codes
from netpolgen.flows import TIME_WINDOW_ATTR, validate_flows
from netpolgen.labels import stable_labels

NA_PROTOCOL = "\x00"  # the protocol name of a row without one (reply inference keys)


@dataclass(frozen=True)
class TupleCodes:
    """The reply-inference 5-tuples of the rows that have both ports (``rows``).

    ``identities`` / ``protocols`` are the distinct names; ``src``, ``dst``, ``protocol`` index
    them, one per row of ``rows``. An identity is :func:`netpolgen.reduce.edges.tuple_identity`.
    """

    rows: np.ndarray  # int64 positions in the chunk
    identities: np.ndarray  # object: str
    src: np.ndarray  # int64
    dst: np.ndarray  # int64
    protocols: np.ndarray  # object: str (NA_PROTOCOL for a missing one)
    protocol: np.ndarray  # int64
    src_port: np.ndarray  # uint64
    dst_port: np.ndarray  # uint64
    time: np.ndarray  # int64 ns, NaT as int64 min
    # How far apart a record's time may be from its first packet's, in ns (0: a point in time);
    # an aggregated log's window plus its publishing skew (flows.TIME_WINDOW_ATTR).
    window: int = 0


@dataclass(frozen=True)
class ChunkSummary:
    """What :class:`netpolgen.reduce.stream.FlowReducer` needs of a flow chunk, as per-row integers.

    Per row (arrays of ``rows`` values): ``given`` is the record's ``is_reply`` (1, 0, or -1 when
    it does not say), ``denied`` its verdict, ``edge`` its code in ``edge_table`` (-1 when an end
    has no endpoint key), ``count``, ``time``, and ``src_endpoint`` / ``dst_endpoint`` its code in
    ``src_table`` / ``dst_table`` (distinct ``endpoint, kind, namespace, ip``; -1 without key).
    ``endpoint_of_src`` / ``endpoint_of_dst`` give each table row's endpoint-key number, so that
    the first row per key can be found on integers.
    """

    rows: int
    tuples: TupleCodes
    given: np.ndarray  # int8
    denied: np.ndarray  # bool
    edge: np.ndarray  # int64
    count: np.ndarray  # int64
    time: np.ndarray  # int64
    edge_table: pd.DataFrame  # src, dst, protocol, dst_port (as edge_rows has them)
    src_endpoint: np.ndarray  # int64
    dst_endpoint: np.ndarray  # int64
    src_table: pd.DataFrame  # endpoint, kind, namespace, ip (as endpoint_firsts has them)
    dst_table: pd.DataFrame
    endpoint_of_src: np.ndarray  # int64
    endpoint_of_dst: np.ndarray  # int64
    pods: pd.DataFrame  # raw_pod_endpoints
    inside: frozenset[str]


def times_ns(flows: pd.DataFrame) -> np.ndarray:
    """The ``time`` column as int64 nanoseconds (NaT: int64 min, which sorts first)."""
    return flows["time"].to_numpy(dtype="datetime64[ns]").view(np.int64)


def tuple_codes(flows: pd.DataFrame) -> TupleCodes:
    """The 5-tuples of the rows of ``flows`` that have both ports (see :class:`TupleCodes`)."""
    return _tuple_codes(flows, _Codes(flows, "pod"), _Codes(flows, "ip"))


def given_replies(flows: pd.DataFrame) -> np.ndarray:
    """``is_reply`` per row as 1, 0, or -1 where the record does not say (int8)."""
    given = flows["is_reply"]
    said = given.fillna(False).to_numpy(dtype=bool)
    return np.where(given.isna().to_numpy(), -1, said).astype(np.int8)


def _protocol_codes(protocol: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and names of a (categorical) protocol column, through its categories."""
    names = np.array([*map(str, protocol.cat.categories), NA_PROTOCOL], dtype=object)
    codes = protocol.cat.codes.to_numpy().astype(np.int64)
    codes[codes < 0] = len(names) - 1  # missing: the last name
    return codes, names


class _Codes:
    """Codes of one column of both sides (``src_x`` then ``dst_x``), factorised together so
    that a value has one code on either side; missing values are -1."""

    def __init__(self, flows: pd.DataFrame, name: str) -> None:
        self.uniques: Any
        src, dst = flows[f"src_{name}"], flows[f"dst_{name}"]
        known = known_codes(src), known_codes(dst)
        if known[0] is not None and known[1] is not None and src.dtype == dst.dtype:
            self._from_known(known[0], known[1], src.dtype)
            return
        both = pd.concat([src, dst], ignore_index=True)
        codes, self.uniques = pd.factorize(both)
        n = len(flows)
        self.src, self.dst = codes[:n].astype(np.int64), codes[n:].astype(np.int64)

    def _from_known(
        self, src: tuple[np.ndarray, list[str]], dst: tuple[np.ndarray, list[str]], dtype: Any
    ) -> None:
        """The same codes from each side's own factorisation (the reader's): the two lists of
        distinct values factorised together, each side's codes mapped through them. Each list
        is in order of first appearance, so the joint one is too (sources before destinations),
        as factorising both columns together would number them, without hashing every cell."""
        (src_codes, src_values), (dst_codes, dst_values) = src, dst
        joint, self.uniques = pd.factorize(pd.array(src_values + dst_values, dtype=dtype))
        joint = joint.astype(np.int64)
        # Position -1 (a missing cell) takes the appended -1.
        self.src = np.append(joint[: len(src_values)], -1)[src_codes]
        self.dst = np.append(joint[len(src_values) :], -1)[dst_codes]

    def side(self, side: str) -> np.ndarray:
        return self.src if side == "src" else self.dst


def summarize_chunk(flows: pd.DataFrame) -> ChunkSummary:
    """Reduce a flow chunk to a :class:`ChunkSummary` (vectorised; no reply decisions).

    Each text column is factorised once, both sides together (from a reader's own codes where
    it noted them, :func:`netpolgen._kernels.known_codes`), and every grouping after that
    (endpoint keys, edges, first rows, pods) combines integer codes.
    """
    validate_flows(flows)
    n = len(flows)
    denied = (flows["verdict"] == "denied").fillna(False).to_numpy(dtype=bool)
    namespace, labels = _Codes(flows, "namespace"), _Codes(flows, "labels")
    pod, ip = _Codes(flows, "pod"), _Codes(flows, "ip")
    keys, key_names = _endpoint_key_codes(flows, namespace, labels, ip)
    protocol = flows["protocol"]
    protocol_codes = protocol.cat.codes.to_numpy().astype(np.int64)
    port = flows["dst_port"]
    port_codes = port.fillna(0).to_numpy(dtype=np.int64) + port.isna().to_numpy() * (1 << 16)
    edge, edge_first = _combined(
        [keys["src"], keys["dst"], protocol_codes, port_codes],
        [len(key_names), len(key_names), len(protocol.cat.categories), (1 << 16) + 1],
    )
    key_table = pd.array(key_names, dtype="string")
    edge_table = pd.DataFrame(
        {
            "src": key_table.take(keys["src"][edge_first], allow_fill=True),
            "dst": key_table.take(keys["dst"][edge_first], allow_fill=True),
            "protocol": protocol.iloc[edge_first].astype("string").array,
            "dst_port": port.array.take(edge_first),
        }
    )
    edge = np.where((keys["src"] >= 0) & (keys["dst"] >= 0), edge, -1)
    sides = {}
    for side in ("src", "dst"):
        kind = flows[f"{side}_kind"]
        kind_codes = kind.cat.codes.to_numpy().astype(np.int64)
        code, first = _combined(
            [keys[side], kind_codes, namespace.side(side), ip.side(side)],
            [len(key_names), len(kind.cat.categories), len(namespace.uniques), len(ip.uniques)],
        )
        table = pd.DataFrame(
            {
                "endpoint": key_table.take(keys[side][first], allow_fill=True),
                "kind": kind.iloc[first].astype("string").array,
                "namespace": flows[f"{side}_namespace"].array.take(first),
                "ip": flows[f"{side}_ip"].array.take(first),
            }
        )
        keyed = keys[side] >= 0
        sides[side] = (np.where(keyed, code, -1), table, keys[side][first])
    return ChunkSummary(
        rows=n,
        tuples=_tuple_codes(flows, pod, ip),
        given=given_replies(flows),
        denied=denied,
        edge=edge,
        count=flows["count"].fillna(1).to_numpy(dtype=np.int64),
        time=times_ns(flows),
        edge_table=edge_table,
        src_endpoint=sides["src"][0],
        dst_endpoint=sides["dst"][0],
        src_table=sides["src"][1],
        dst_table=sides["dst"][1],
        endpoint_of_src=sides["src"][2],
        endpoint_of_dst=sides["dst"][2],
        pods=_raw_pods(flows, namespace, labels, pod),
        inside=_inside_addresses(flows, ip),
    )


def _endpoint_key_codes(
    flows: pd.DataFrame, namespace: _Codes, labels: _Codes, ip: _Codes
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per side, each row's endpoint key as a code into the returned names (-1: none), as
    :func:`netpolgen.reduce.edges.endpoint_keys` names them: ``pod:<namespace>/<stable labels>``
    for a pod side with a namespace, ``ip:<address>`` otherwise."""
    # Stable labels once per distinct raw label text; a missing text is the empty one.
    stable = [stable_labels(str(text)) for text in labels.uniques] + [stable_labels("")]
    stable_codes, stable_names = pd.factorize(np.array(stable, dtype=object))
    n_stable, n_ip = len(stable_names), len(ip.uniques)
    raw: dict[str, np.ndarray] = {}
    for side in ("src", "dst"):
        is_pod = (flows[f"{side}_kind"] == "pod").fillna(False).to_numpy(dtype=bool)
        is_pod = is_pod & (namespace.side(side) >= 0)
        label = stable_codes[labels.side(side)]  # code -1 takes the last: the empty text
        pod_key = n_ip + namespace.side(side) * n_stable + label
        ip_key = np.where(ip.side(side) >= 0, ip.side(side), -1)
        raw[side] = np.where(is_pod, pod_key, ip_key)
    both = np.concatenate([raw["src"], raw["dst"]])
    codes, distinct = pd.factorize(both, use_na_sentinel=False)
    names: list[str | None] = []
    for value in distinct.tolist():
        if value < 0:
            names.append(None)
        elif value < n_ip:
            names.append(f"ip:{ip.uniques[value]}")
        else:
            ns, label = divmod(value - n_ip, n_stable)
            names.append(f"pod:{namespace.uniques[ns]}/{stable_names[label]}")
    none = [i for i, name in enumerate(names) if name is None]
    codes = codes.astype(np.int64)
    if none:  # no key: -1, and the names stay dense
        keep = np.array([name is not None for name in names])
        remap = np.cumsum(keep) - 1
        remap[~keep] = -1
        codes = remap[codes]
        names = [name for name in names if name is not None]
    n = len(flows)
    return {"src": codes[:n], "dst": codes[n:]}, [str(name) for name in names]


def _combined(codes: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the number of its combination of ``codes`` (each in ``-1 .. size-1``),
    numbered in order of first appearance; and each combination's first row."""
    group = combined_codes(
        [(column + 1, size + 1) for column, size in zip(codes, sizes, strict=True)]
    )
    return group, first_of_groups(group)


def _inside_addresses(flows: pd.DataFrame, ip: _Codes) -> frozenset[str]:
    """:func:`netpolgen.reduce.edges.cluster_addresses` on codes: the addresses of the sides of an
    inside kind, each distinct one taken once."""
    codes = [ip.side(side)[inside_kinds(flows[f"{side}_kind"])] for side in ("src", "dst")]
    # The codes in use, counted (one linear pass; np.unique sorted them: ~1 ms a chunk); -1,
    # a missing address, counts at position 0.
    used = np.flatnonzero(np.bincount(np.concatenate(codes) + 1, minlength=len(ip.uniques) + 1))
    # One take of the distinct addresses, not an element of an Arrow array each (~10 us each).
    return frozenset(map(str, ip.uniques.take(used[used > 0] - 1).tolist()))


def _raw_pods(flows: pd.DataFrame, namespace: _Codes, labels: _Codes, pod: _Codes) -> pd.DataFrame:
    """:func:`netpolgen.identity.raw_pod_endpoints` on codes: the distinct (namespace, raw
    labels, pod) of the pod sides, sources first, each in order of first appearance."""
    src_rows, dst_rows = (
        np.flatnonzero((flows[f"{side}_kind"] == "pod").fillna(False).to_numpy(dtype=bool))
        for side in ("src", "dst")
    )
    # Sources first: each column's codes of the source rows, then of the destination rows.
    first = first_of_groups(
        combined_codes(
            [
                (np.concatenate([codes.src[src_rows], codes.dst[dst_rows]]) + 1,
                 len(codes.uniques) + 1)
                for codes in (namespace, labels, pod)
            ]
        )
    )  # fmt: skip
    from_src = first < len(src_rows)
    src_take, dst_take = src_rows[first[from_src]], dst_rows[first[~from_src] - len(src_rows)]
    out = {}
    for codes, title in ((namespace, "namespace"), (labels, "raw_labels"), (pod, "pod")):
        # Taken from the distinct values by code (-1: missing), in the columns' own dtype.
        taken = np.concatenate([codes.src[src_take], codes.dst[dst_take]])
        out[title] = codes.uniques.take(taken, allow_fill=True)
    return pd.DataFrame(out)


def _tuple_codes(flows: pd.DataFrame, pod: _Codes, ip: _Codes) -> TupleCodes:
    """:func:`tuple_codes` from the columns' codes: an identity is the address, else the pod
    name, else ``namespace/labels`` (:func:`netpolgen.reduce.edges.tuple_identity`), deduplicated
    as text."""
    ported = (flows["src_port"].notna() & flows["dst_port"].notna()).to_numpy()
    rows = np.flatnonzero(ported)
    n_ip = len(ip.uniques)
    candidates: list[object] = [*ip.uniques, *pod.uniques]
    ids = {}
    for side in ("src", "dst"):
        a, b = ip.side(side)[rows], pod.side(side)[rows]
        code = np.where(a >= 0, a, np.where(b >= 0, n_ip + b, -1))
        missing = np.flatnonzero(code < 0)
        if len(missing):
            part = flows[[f"{side}_namespace", f"{side}_labels"]].iloc[rows[missing]]
            text = (
                part[f"{side}_namespace"].fillna("") + "/" + part[f"{side}_labels"].fillna("")
            ).to_numpy(dtype=object)
            code[missing] = len(candidates) + np.arange(len(missing))
            candidates.extend(text)
        ids[side] = code
    # Only the candidates in use, deduplicated as text (an address and a pod name may agree).
    inverse, used = pd.factorize(np.concatenate([ids["src"], ids["dst"]]))
    remap, identities = pd.factorize(np.array(candidates, dtype=object)[used])
    codes = remap[inverse].astype(np.int64)
    # Only the columns read below are taken: a take of the whole chunk (its text columns
    # included) cost more than the rest of the summary.
    part = flows[["protocol", "src_port", "dst_port", "time"]]
    part = part if len(rows) == len(flows) else part.iloc[rows]
    protocol_codes, protocols = _protocol_codes(part["protocol"])
    return TupleCodes(
        rows=rows.astype(np.int64),
        identities=np.asarray(identities, dtype=object),
        src=codes[: len(rows)],
        dst=codes[len(rows) :],
        protocols=protocols,
        protocol=protocol_codes,
        src_port=part["src_port"].to_numpy(dtype=np.uint64),
        dst_port=part["dst_port"].to_numpy(dtype=np.uint64),
        time=times_ns(part),
        window=time_window(flows),
    )


def time_window(flows: pd.DataFrame) -> int:
    """The chunk's time window in ns (:data:`netpolgen.flows.TIME_WINDOW_ATTR`; 0 when unset)."""
    return int(flows.attrs.get(TIME_WINDOW_ATTR, 0) * 1_000_000_000)


_INSIDE_KINDS = ["pod", "node", "host", "service"]


def inside_kinds(kinds: pd.Series) -> np.ndarray:
    """Per row, whether the endpoint kind is one inside the cluster (pod, node, service...)."""
    if isinstance(kinds.dtype, pd.CategoricalDtype):
        # On the categorical's codes (the kinds are few): no text per row.
        wanted = kinds.cat.categories.get_indexer(pd.Index(_INSIDE_KINDS))
        return np.isin(kinds.cat.codes.to_numpy(), wanted[wanted >= 0])
    return kinds.astype("string").isin(_INSIDE_KINDS).fillna(False).to_numpy(dtype=bool)
