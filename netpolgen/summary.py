"""A flow chunk reduced to integers, so that a worker process can do the per-row work.

:class:`netpolgen.stream.FlowReducer` needs every row of a chunk only for what it decides per
row: whether the row is a reply (which needs the state of every earlier chunk, so it is decided
in input order, in one process) and, from that, which rows count. Everything else it does with a
row is a function of the row alone: its endpoint keys, its edge, its reply-inference 5-tuple, its
pods. :func:`summarize_chunk` computes those in the process that parsed the chunk and hands back
a :class:`ChunkSummary`: per row a few integers (codes into small tables of the chunk's distinct
values), which :meth:`netpolgen.stream.FlowReducer.add` reduces exactly as it reduces the rows.
A summary of 50,000 rows is about 4 MB of integers, against 10-20 MB of flow table: cheaper to
send between processes, and nothing is left for the main process to parse or factorise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from netpolgen.aggregate import cluster_addresses, endpoint_keys, tuple_identity
from netpolgen.flows import validate_flows
from netpolgen.identity import raw_pod_endpoints

_NAT = np.iinfo(np.int64).min  # NaT as int64 (what datetime64 -> int64 gives)
NA_PROTOCOL = "\x00"  # the protocol name of a row without one (reply inference keys)


@dataclass(frozen=True)
class TupleCodes:
    """The reply-inference 5-tuples of the rows that have both ports (``rows``).

    ``identities`` / ``protocols`` are the distinct names; ``src``, ``dst``, ``protocol`` index
    them, one per row of ``rows``. An identity is :func:`netpolgen.aggregate.tuple_identity`.
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


@dataclass(frozen=True)
class ChunkSummary:
    """What :class:`netpolgen.stream.FlowReducer` needs of a flow chunk, as per-row integers.

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
    ported = (flows["src_port"].notna() & flows["dst_port"].notna()).to_numpy()
    rows = np.flatnonzero(ported)
    part = flows if len(rows) == len(flows) else flows.iloc[rows]
    src = tuple_identity(part, "src").to_numpy(dtype=object)
    dst = tuple_identity(part, "dst").to_numpy(dtype=object)
    # Both sides in one factorisation: one identity table, shared codes.
    codes, identities = pd.factorize(np.concatenate([src, dst]))
    protocol_codes, protocols = _protocol_codes(part["protocol"])
    return TupleCodes(
        rows=rows.astype(np.int64),
        identities=np.asarray(identities, dtype=object),
        src=codes[: len(rows)].astype(np.int64),
        dst=codes[len(rows) :].astype(np.int64),
        protocols=protocols,
        protocol=protocol_codes,
        src_port=part["src_port"].to_numpy(dtype=np.uint64),
        dst_port=part["dst_port"].to_numpy(dtype=np.uint64),
        time=times_ns(part),
    )


def _protocol_codes(protocol: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and names of a protocol column, through its categories (no text per row)."""
    if not isinstance(protocol.dtype, pd.CategoricalDtype):
        text = protocol.astype("string").fillna(NA_PROTOCOL).to_numpy(dtype=object)
        codes, names = pd.factorize(text)
        return codes.astype(np.int64), np.asarray(names, dtype=object)
    names = np.array([*map(str, protocol.cat.categories), NA_PROTOCOL], dtype=object)
    codes = protocol.cat.codes.to_numpy().astype(np.int64)
    codes[codes < 0] = len(names) - 1  # missing: the last name
    return codes, names


def summarize_chunk(flows: pd.DataFrame) -> ChunkSummary:
    """Reduce a flow chunk to a :class:`ChunkSummary` (vectorised; no reply decisions)."""
    validate_flows(flows)
    given = flows["is_reply"]
    given_codes = np.where(
        given.isna().to_numpy(), -1, given.fillna(False).to_numpy(dtype=bool)
    ).astype(np.int8)
    denied = (flows["verdict"] == "denied").fillna(False).to_numpy(dtype=bool)
    src_key = endpoint_keys(flows, "src")
    dst_key = endpoint_keys(flows, "dst")
    keyed = (src_key.notna() & dst_key.notna()).to_numpy()
    protocol = flows["protocol"].astype("string")
    edge, edge_first = _row_groups([src_key, dst_key, protocol, flows["dst_port"]])
    edge_table = pd.DataFrame(
        {
            "src": src_key.array.take(edge_first),
            "dst": dst_key.array.take(edge_first),
            "protocol": protocol.array.take(edge_first),
            "dst_port": flows["dst_port"].array.take(edge_first),
        }
    )
    edge = np.where(keyed, edge, -1)
    sides = {}
    for side, keys in (("src", src_key), ("dst", dst_key)):
        kind = flows[f"{side}_kind"].astype("string")
        namespace, ip = flows[f"{side}_namespace"], flows[f"{side}_ip"]
        code, first = _row_groups([keys, kind, namespace, ip])
        table = pd.DataFrame(
            {
                "endpoint": keys.array.take(first),
                "kind": kind.array.take(first),
                "namespace": namespace.array.take(first),
                "ip": ip.array.take(first),
            }
        )
        key_number = pd.factorize(table["endpoint"], use_na_sentinel=True)[0].astype(np.int64)
        sides[side] = (np.where(keys.notna().to_numpy(), code, -1), table, key_number)
    return ChunkSummary(
        rows=len(flows),
        tuples=tuple_codes(flows),
        given=given_codes,
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
        pods=raw_pod_endpoints(flows),
        inside=frozenset(cluster_addresses(flows)),
    )


def _row_groups(columns: Sequence[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the number of its distinct combination of ``columns`` (missing values are a
    value of their own, as ``groupby(dropna=False)`` has it), numbered in order of first
    appearance; and each combination's first row."""
    group = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column, use_na_sentinel=False)
        combined = group * (len(uniques) + 1) + codes.astype(np.int64)
        group = pd.factorize(combined)[0].astype(np.int64)  # below the row count: no overflow
    _, first = np.unique(group, return_index=True)
    return group, first.astype(np.int64)
