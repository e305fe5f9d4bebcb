"""The flow table: the one tabular contract between ingest and every later stage.

Every ingester returns frames with exactly these columns and dtypes, and every consumer
(aggregation, synthesis, verification) calls :func:`validate_flows` on entry, so a frame built by
hand in a notebook is checked just like one read from a file.

==================  ======================  ==================================================
column              dtype                   meaning
==================  ======================  ==================================================
time                datetime64[ns, UTC]     start of the flow or record
src_ip, dst_ip      string                  addresses (after service translation if known)
src_port, dst_port  UInt16                  ports; NA for ICMP
protocol            category                TCP, UDP, SCTP, ICMP, ICMPv6, or an IANA number
src_namespace, ...  string                  namespace of each side, when the source names it
src_pod, dst_pod    string                  pod names, when known
src_labels, ...     string                  canonical ``k=v,k2=v2`` (sorted by key)
src_kind, dst_kind  category                pod, host, node, world, service, unknown
verdict             category                allowed, denied, unknown
is_reply            boolean                 NA when the source does not say
count               Int64                   flows this row stands for (default 1)
bytes, packets      Int64                   when known
==================  ======================  ==================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from netpolgen.errors import SchemaError

PROTOCOLS = ("TCP", "UDP", "SCTP", "ICMP", "ICMPv6")
ENDPOINT_KINDS = ("pod", "host", "node", "world", "service", "unknown")
VERDICTS = ("allowed", "denied", "unknown")

# IANA protocol numbers for the names NetworkPolicy and flow logs use.
PROTOCOL_NUMBERS: Mapping[int, str] = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"}

FLOW_SCHEMA: Mapping[str, str] = {
    "time": "datetime64[ns, UTC]",
    "src_ip": "string",
    "dst_ip": "string",
    "src_port": "UInt16",
    "dst_port": "UInt16",
    "protocol": "category",
    "src_namespace": "string",
    "dst_namespace": "string",
    "src_pod": "string",
    "dst_pod": "string",
    "src_labels": "string",
    "dst_labels": "string",
    "src_kind": "category",
    "dst_kind": "category",
    "verdict": "category",
    "is_reply": "boolean",
    "count": "Int64",
    "bytes": "Int64",
    "packets": "Int64",
}
FLOW_COLUMNS: tuple[str, ...] = tuple(FLOW_SCHEMA)
# A table's ``attrs`` key: how many seconds a record's ``time`` may lie from the first packet it
# stands for, when the source aggregates records over a window (AWS VPC Flow Logs: up to 600 s
# a window, and ``start`` "up to 60 seconds after the packet was transmitted"). Reply inference
# lets the earlier of two reversed records decide only when they lie further apart than this
# (netpolgen.reduce.direction). Unset (0): times are points (CSV, Hubble).
TIME_WINDOW_ATTR = "netpolgen.time_window_s"

# pandas 3 always copies on write: a frame built from another's columns may share them safely.
COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3


def empty_flows() -> pd.DataFrame:
    """Return a flow table with no rows and the documented dtypes."""
    return conform_flows(pd.DataFrame({name: [] for name in FLOW_COLUMNS}))


def conform_flows(frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``frame`` every column of the schema, in order, with the documented dtypes.

    Missing columns are added as all-NA (``count`` as 1, ``verdict`` as ``unknown``, ``protocol``
    as TCP, the default of the CSV contract and of Kubernetes ports). Values must
    already be convertible: this is the last step of an ingester, not a parser.
    """
    out: dict[str, pd.Series] = {}
    n = len(frame)
    for name, dtype in FLOW_SCHEMA.items():
        if name in frame.columns:
            column = frame[name]
        elif name == "count":
            column = pd.Series(np.ones(n, dtype=np.int64), index=frame.index, dtype="Int64")
        elif name == "verdict":
            unknown = np.full(n, VERDICTS.index("unknown"))
            verdicts = pd.Categorical.from_codes(unknown, dtype=pd.CategoricalDtype(list(VERDICTS)))
            column = pd.Series(verdicts, index=frame.index)
        elif name == "protocol":
            column = pd.Series("TCP", index=frame.index, dtype="string")
        elif dtype == "string":  # all missing
            column = pd.Series(_missing_strings(n), index=frame.index)
        elif dtype in _NULLABLE:  # all missing, made in its dtype (no value to convert)
            column = pd.Series(pd.NA, index=frame.index, dtype=dtype)
        else:
            column = pd.Series([pd.NA] * n, index=frame.index, dtype="object")
        out[name] = _as_dtype(column, name, dtype)
    # Under copy-on-write the columns are shared, not copied (either frame changed later copies
    # then); copying them was two thirds of this function's time.
    result = pd.DataFrame(out, index=frame.index, copy=not COPY_ON_WRITE)
    if TIME_WINDOW_ATTR in frame.attrs:  # a table-wide property of the records: kept
        result.attrs[TIME_WINDOW_ATTR] = frame.attrs[TIME_WINDOW_ATTR]
    return result


_NULLABLE = frozenset({"string", "UInt16", "Int64", "boolean"})


def _missing_strings(n: int) -> Any:
    """``n`` missing values of the "string" dtype. With Arrow storage, an Arrow array of nulls
    is made at once (pandas fills a missing value per row: 1.2 ms for 100,000 against 0.05)."""
    empty = pd.array([], dtype="string")
    if isinstance(empty, pd.arrays.ArrowStringArray):
        import pyarrow as pa

        return pd.arrays.ArrowStringArray(pa.nulls(n, pa.array(empty).type))
    return pd.array([pd.NA] * n, dtype="string")


_FIXED_CATEGORIES: Mapping[str, tuple[str, ...]] = {
    "src_kind": ENDPOINT_KINDS,
    "dst_kind": ENDPOINT_KINDS,
    "verdict": VERDICTS,
}


def _as_dtype(column: pd.Series, name: str, dtype: str) -> pd.Series:
    if _conformed(column, name, dtype):
        return column  # readers conform each chunk once, and later steps call this again
    if dtype == "category":
        categories = _FIXED_CATEGORIES.get(name)
        if categories is None:  # protocol: open set (IANA numbers as text)
            return column.astype("string").astype("category")
        return pd.Series(
            pd.Categorical(column.astype("string"), categories=list(categories)),
            index=column.index,
        )
    if dtype.startswith("datetime64"):
        return pd.to_datetime(column, utc=True).astype(pd.api.types.pandas_dtype(dtype))
    return column.astype(pd.api.types.pandas_dtype(dtype))


def _conformed(column: pd.Series, name: str, dtype: str) -> bool:
    """Whether converting ``column`` would give an equal column (the conversion is skipped)."""
    if dtype != "category":
        return bool(column.dtype == pd.api.types.pandas_dtype(dtype))
    if not isinstance(column.dtype, pd.CategoricalDtype) or column.dtype.ordered:
        return False
    categories = column.dtype.categories
    fixed = _FIXED_CATEGORIES.get(name)
    if fixed is not None:
        return str(categories.dtype) == "str" and tuple(categories) == fixed
    # An open set is the sorted values present, as text: no unused category may remain.
    if str(categories.dtype) != "string" or not categories.is_monotonic_increasing:
        return False
    codes = column.cat.codes.to_numpy()
    used = np.zeros(len(categories), dtype=bool)
    used[codes[codes >= 0]] = True
    return bool(used.all())


def validate_flows(frame: pd.DataFrame) -> pd.DataFrame:
    """Check that ``frame`` follows the flow-table schema and return it unchanged.

    Args:
        frame: the table to check (from ``load_flows``, or built by hand in a notebook).

    Returns:
        ``frame`` itself.

    Raises:
        SchemaError: naming every missing column and every column with the wrong dtype.

    Examples:
        >>> validate_flows(empty_flows()).shape
        (0, 19)
    """
    if not isinstance(frame, pd.DataFrame):
        raise SchemaError(f"a flow table must be a pandas DataFrame, not {type(frame).__name__}")
    missing = [name for name in FLOW_COLUMNS if name not in frame.columns]
    wrong = [
        f"{name} is {frame[name].dtype}, expected {dtype}"
        for name, dtype in FLOW_SCHEMA.items()
        if name in frame.columns and str(frame[name].dtype) != dtype
    ]
    problems = []
    if missing:
        problems.append("missing columns: " + ", ".join(missing))
    if wrong:
        problems.append("wrong dtypes: " + "; ".join(wrong))
    if problems:
        raise SchemaError(
            "not a flow table (" + "; ".join(problems) + ")",
            hint="build flow tables with netpolgen.load_flows or netpolgen.flows.conform_flows",
        )
    return frame
