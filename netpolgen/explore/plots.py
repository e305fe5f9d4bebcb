"""Plots for notebooks: the communication graph, a port heat map, and what a policy set changes.

matplotlib and networkx come with the ``notebook`` extra (``pip install 'netpolgen[notebook]'``)
and are imported only when a plot is drawn, so the CLI and the library work without them. Each
function returns a :class:`matplotlib.figure.Figure` and never shows it: a notebook displays the
returned figure, a script saves it (``figure.savefig("graph.svg")``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from netpolgen._compat import require
from netpolgen.errors import NetpolgenError
from netpolgen.explore.tables import EdgeSource, edge_table, port_matrix

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_graph", "plot_policy_effect", "plot_port_heatmap"]

OUTSIDE = "(outside)"
ALLOWED_COLOUR = "#2e7d32"
DENIED_COLOUR = "#c62828"


def _require(module: str) -> Any:
    """Import an optional plotting dependency, or say how to install it."""
    return require(module, "plotting")


def _figure(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    # The object-oriented API, not pyplot: no global figure state, no display needed.
    figure_module = _require("matplotlib.figure")
    figure = figure_module.Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _as_table(edges: pd.DataFrame | EdgeSource) -> pd.DataFrame:
    return edges if isinstance(edges, pd.DataFrame) else edge_table(edges)


def _layout(nodes: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Namespaces as groups: each a ring of its endpoints, the rings on a big circle, and the
    outside peers in a column on the right.

    Deterministic (no random spring layout), so the same flows always draw the same picture.
    """
    groups = sorted(g for g in nodes["group"].unique() if g != OUTSIDE)
    members = {g: sorted(map(str, nodes.loc[nodes["group"] == g, "name"])) for g in groups}
    radius = {g: 0.0 if len(m) == 1 else 0.35 * len(m) / math.pi + 0.3 for g, m in members.items()}
    big = 0.0 if len(groups) < 2 else max(radius.values()) * 1.6 + 1.2
    positions: dict[str, tuple[float, float]] = {}
    for index, group in enumerate(groups):
        angle = 2 * math.pi * index / len(groups) + math.pi / 2
        cx, cy = big * math.cos(angle), big * math.sin(angle)
        count = len(members[group])
        for j, name in enumerate(members[group]):
            a = 2 * math.pi * j / count + angle
            positions[name] = (cx + radius[group] * math.cos(a), cy + radius[group] * math.sin(a))
    outside = sorted(map(str, nodes.loc[nodes["group"] == OUTSIDE, "name"]))
    x = big + max(radius.values(), default=0.0) + 1.5
    height = max(2 * big, 0.35 * len(outside))
    for j, name in enumerate(outside):
        y = height / 2 - height * j / max(1, len(outside) - 1) if len(outside) > 1 else 0.0
        positions[name] = (x, y)
    return positions


def _nodes(table: pd.DataFrame) -> pd.DataFrame:
    nodes = pd.concat(
        [
            table[["src", "src_namespace"]].set_axis(["name", "namespace"], axis=1),
            table[["dst", "dst_namespace"]].set_axis(["name", "namespace"], axis=1),
        ],
        ignore_index=True,
    ).drop_duplicates("name")
    nodes["group"] = nodes["namespace"].fillna(OUTSIDE).astype(str)
    return nodes.reset_index(drop=True)


def _draw_graph(
    table: pd.DataFrame,
    ax: Axes,
    edge_colours: list[str] | None,
    *,
    labels: bool,
    title: str,
) -> None:
    nx = _require("networkx")
    colormaps = _require("matplotlib").colormaps
    nodes = _nodes(table)
    grouped = (
        table.assign(_colour=edge_colours if edge_colours is not None else "#555555")
        .groupby(["src", "dst"], observed=True)
        .agg(
            ports=("port", lambda p: ", ".join(sorted(set(map(str, p))))),
            flows=("flows", "sum"),
            colour=("_colour", lambda c: DENIED_COLOUR if DENIED_COLOUR in set(c) else c.iloc[0]),
        )
        .reset_index()
    )
    graph = nx.DiGraph()
    for name in nodes["name"]:
        graph.add_node(str(name))
    for src, dst, ports, flows, colour in grouped.itertuples(index=False, name=None):
        graph.add_edge(str(src), str(dst), ports=ports, flows=int(flows), colour=colour)
    positions = _layout(nodes)
    groups = sorted(nodes["group"].unique(), key=lambda g: (g == OUTSIDE, g))
    palette = colormaps["tab10"]
    colour_of = {g: ("#bdbdbd" if g == OUTSIDE else palette(i % 10)) for i, g in enumerate(groups)}
    for group in groups:
        members = [str(n) for n in nodes.loc[nodes["group"] == group, "name"]]
        nx.draw_networkx_nodes(
            graph,
            positions,
            nodelist=members,
            node_color=[colour_of[group]] * len(members),
            node_size=420,
            ax=ax,
            label=group,
            edgecolors="#333333",
            linewidths=0.5,
        )
    flows = [graph.edges[e]["flows"] for e in graph.edges]
    most = max(flows, default=1)
    # Width grows with the log of the flow count: a busy edge stands out without hiding the rest.
    widths = [0.6 + 3.0 * math.log1p(f) / math.log1p(most) for f in flows]
    nx.draw_networkx_edges(
        graph,
        positions,
        ax=ax,
        width=widths,
        edge_color=[graph.edges[e]["colour"] for e in graph.edges],
        arrows=True,
        arrowsize=10,
        connectionstyle="arc3,rad=0.08",
        node_size=420,
    )
    nx.draw_networkx_labels(
        graph,
        positions,
        ax=ax,
        font_size=7,
        labels={n: n.split("/", 1)[-1] for n in graph.nodes},
    )
    if labels:
        nx.draw_networkx_edge_labels(
            graph,
            positions,
            ax=ax,
            font_size=6,
            edge_labels={e: graph.edges[e]["ports"] for e in graph.edges},
            connectionstyle="arc3,rad=0.08",
            label_pos=0.5,
        )
    ax.legend(loc="upper left", fontsize=7, frameon=False, markerscale=0.5)
    ax.set_title(title)
    ax.set_axis_off()


def plot_graph(
    edges: pd.DataFrame | EdgeSource,
    *,
    min_flows: int = 1,
    namespaces: list[str] | None = None,
    edge_labels: bool = True,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (12.0, 10.0),
) -> Figure:
    """Draw the workload communication graph.

    Nodes are endpoints, coloured and grouped by namespace (outside peers in grey); an arrow
    goes from client to server, labelled with the ports used and as wide as the log of the
    number of flows.

    Args:
        edges: an :func:`netpolgen.explore.edge_table`, or a ``GenerateResult``/``Summary``.
        min_flows: leave out connections seen fewer times than this.
        namespaces: draw only edges that touch one of these namespaces.
        edge_labels: write the ports on the arrows.
        ax: draw into this matplotlib Axes instead of a new figure.
        figsize: the size of a new figure, in inches.

    Returns:
        The matplotlib Figure.

    Raises:
        NetpolgenError: when matplotlib or networkx is missing.

    Examples:
        >>> figure = plot_graph(result, min_flows=2)  # doctest: +SKIP
        >>> figure.savefig("graph.svg")  # doctest: +SKIP
    """
    table = _as_table(edges)
    table = table[table["flows"] >= min_flows]
    if namespaces:
        table = table[
            table["src_namespace"].isin(namespaces) | table["dst_namespace"].isin(namespaces)
        ]
    figure, ax = _figure(ax, figsize)
    _draw_graph(table, ax, None, labels=edge_labels, title="Who talks to whom")
    return figure


def plot_port_heatmap(
    edges: pd.DataFrame | EdgeSource,
    *,
    by: str = "dst",
    max_rows: int = 40,
    max_columns: int = 30,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Heat map of flows per endpoint and port (:func:`netpolgen.explore.port_matrix`).

    Args:
        edges: an edge table, or a ``GenerateResult``/``Summary``.
        by: ``dst`` (servers and the ports they listen on) or ``src`` (clients and the ports
            they connect to).
        max_rows, max_columns: keep the busiest endpoints and ports only.
        ax: draw into this Axes.
        figsize: the size of a new figure (default: from the matrix size).

    Returns:
        The matplotlib Figure.

    Examples:
        >>> plot_port_heatmap(result, by="src")  # doctest: +SKIP
    """
    matrix = port_matrix(_as_table(edges), by=by).iloc[:max_rows, :max_columns]
    size = figsize or (2.5 + 0.45 * max(1, matrix.shape[1]), 1.5 + 0.32 * max(1, matrix.shape[0]))
    figure, ax = _figure(ax, size)
    colors = _require("matplotlib.colors")
    if matrix.empty:
        ax.text(0.5, 0.5, "no edges", ha="center", va="center")
        ax.set_axis_off()
        return figure
    # Flow counts span orders of magnitude: a log scale keeps the rare ports visible.
    image = ax.imshow(
        matrix.to_numpy(dtype=float),
        aspect="auto",
        cmap="viridis",
        norm=colors.LogNorm(vmin=1, vmax=max(1.0, float(matrix.to_numpy().max()))),
    )
    masked = matrix.to_numpy() == 0
    ax.imshow(masked, aspect="auto", cmap=colors.ListedColormap(["none", "white"]), vmin=0, vmax=1)
    ax.set_xticks(
        range(matrix.shape[1]),
        [str(c) for c in matrix.columns],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index], fontsize=7)
    ax.set_xlabel("port")
    ax.set_ylabel("destination" if by == "dst" else "source")
    figure.colorbar(image, ax=ax, label="flows")
    ax.set_title("Flows per endpoint and port")
    return figure


def plot_policy_effect(
    effect: pd.DataFrame,
    *,
    edge_labels: bool = True,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (12.0, 10.0),
) -> Figure:
    """Draw the communication graph with each edge coloured by what the policies do to it.

    Green edges are allowed by the policies, red ones denied (a denied edge that the network
    also denied when it was observed is what least privilege should look like; a red edge
    observed as allowed would break traffic).

    Args:
        effect: :func:`netpolgen.explore.policy_effect` of flows and policies.
        edge_labels: write the ports on the arrows.
        ax: draw into this Axes.
        figsize: the size of a new figure.

    Returns:
        The matplotlib Figure.

    Examples:
        >>> plot_policy_effect(policy_effect(flows, result.policies))  # doctest: +SKIP
    """
    missing = {"allowed", "observed"} - set(effect.columns)
    if missing:
        raise NetpolgenError(
            "plot_policy_effect needs the table of netpolgen.explore.policy_effect "
            f"(missing columns: {', '.join(sorted(missing))})"
        )
    figure, ax = _figure(ax, figsize)
    allowed = effect["allowed"].fillna(False).astype(bool)
    colours = [ALLOWED_COLOUR if a else DENIED_COLOUR for a in allowed]
    denied_now = int(effect.loc[~allowed, "flows"].sum())
    _draw_graph(
        effect,
        ax,
        colours,
        labels=edge_labels,
        title=f"Policy effect: green allowed, red denied ({denied_now} observed flows denied)",
    )
    return figure
