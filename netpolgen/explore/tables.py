"""Edge tables and port matrices for notebooks: readable names, one row per connection type."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from netpolgen.errors import NetpolgenError
from netpolgen.identity.naming import named_edges
from netpolgen.identity.workloads import Workloads


class EdgeSource(Protocol):
    """Anything that carries an edge table with its endpoints and workloads.

    :class:`netpolgen.GenerateResult` and :class:`Summary` both do.
    """

    @property
    def edges(self) -> pd.DataFrame: ...
    @property
    def endpoints(self) -> pd.DataFrame: ...
    @property
    def workloads(self) -> Workloads: ...


def edge_table(result: EdgeSource) -> pd.DataFrame:
    """The edges of ``result`` with readable endpoint names, one row per connection type.

    Args:
        result: a :class:`netpolgen.GenerateResult` (or a :class:`Summary`).

    Returns:
        A DataFrame with the columns of :data:`EDGE_TABLE_COLUMNS`: ``src`` and ``dst``
        (``ns/name`` or an address), their namespaces and kinds (``pod``, ``world``, ``node``,
        ...), ``protocol``, ``dst_port``, ``port`` (``TCP/8080``), ``flows``, ``first_seen`` and
        ``last_seen``; sorted by flows, busiest first.

    Examples:
        >>> result = netpolgen.generate(netpolgen.load_flows("flows.csv"))  # doctest: +SKIP
        >>> edge_table(result).head()  # doctest: +SKIP
    """
    table = named_edges(result.edges, result.endpoints, result.workloads)
    return table.sort_values(
        ["flows", "src", "dst", "port"], ascending=[False, True, True, True], kind="stable"
    ).reset_index(drop=True)


def port_matrix(table: pd.DataFrame | EdgeSource, by: str = "dst") -> pd.DataFrame:
    """Flows per endpoint and port: the table behind the port/peer heat map.

    Args:
        table: an :func:`edge_table` (or anything :func:`edge_table` accepts).
        by: ``dst`` (rows are the endpoints that receive, the ports they listen on) or ``src``
            (rows are the endpoints that connect, the ports they connect to).

    Returns:
        A DataFrame indexed by endpoint name with one column per ``PROTO/port`` and the number
        of flows in each cell (0 where none); rows and columns sorted by total flows.

    Examples:
        >>> port_matrix(edge_table(result)).loc["shop/frontend"]  # doctest: +SKIP
    """
    if by not in ("dst", "src"):
        raise NetpolgenError(f"port_matrix: by must be 'dst' or 'src', not {by!r}")
    if not isinstance(table, pd.DataFrame):
        table = edge_table(table)
    if table.empty:
        return pd.DataFrame(dtype="int64")
    matrix = table.pivot_table(
        index=by, columns="port", values="flows", aggfunc="sum", fill_value=0, observed=True
    ).astype("int64")
    rows = matrix.sum(axis=1).sort_values(ascending=False, kind="stable").index
    columns = matrix.sum(axis=0).sort_values(ascending=False, kind="stable").index
    matrix = matrix.loc[rows, columns]
    matrix.index.name, matrix.columns.name = by, "port"
    return matrix
