"""Plots for notebooks: the communication graph, a port heat map, and what a policy set changes.

matplotlib and networkx come with the ``notebook`` extra (``pip install 'netpolgen[notebook]'``)
and are imported only when a plot is drawn, so the CLI and the library work without them. Each
function returns a :class:`matplotlib.figure.Figure` and never shows it: a notebook displays the
returned figure, a script saves it (``figure.savefig("graph.svg")``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


# Colours mean one thing each: a node's fill says what it is (a workload, or an address outside
# the cluster); its namespace is the box around it, not a colour. Red and green are kept for
# what policies do to a connection (plot_policy_effect), grey for a plain connection.
WORKLOAD_COLOUR = "#90caf9"
OUTSIDE_COLOUR = "#eeeeee"
EDGE_COLOUR = "#757575"
BOX_FACE = "#fafafa"
BOX_EDGE = "#9e9e9e"
CELL = (2.8, 1.4)  # width and height of one node's cell in a box: room for its label
TITLE = 0.55  # the namespace name's strip at the top of a box


@dataclass(frozen=True)
class _Box:
    group: str
    x: float  # top-left corner
    y: float
    width: float
    height: float


def _layout(nodes: pd.DataFrame) -> tuple[dict[str, tuple[float, float]], list[_Box]]:
    """One box per namespace, its endpoints on a grid inside, the boxes packed in rows; the
    outside peers in a box of their own on the right.

    A grid keeps every label in a cell of its own (no two overlap, however many nodes), and the
    layout is deterministic (no random spring layout): the same flows draw the same picture.
    """
    groups = sorted(g for g in nodes["group"].unique() if g != OUTSIDE)
    members = {g: sorted(map(str, nodes.loc[nodes["group"] == g, "name"])) for g in groups}
    shapes = {}
    for group, names in members.items():
        columns = max(1, math.ceil(math.sqrt(len(names))))
        shapes[group] = (columns, math.ceil(len(names) / columns))
    area = sum(c * r for c, r in shapes.values())
    shelf = max([c for c, _ in shapes.values()] + [math.ceil(math.sqrt(area) * 1.4)])
    positions: dict[str, tuple[float, float]] = {}
    boxes: list[_Box] = []
    x = y = 0.0
    row_height = 0.0
    used = 0
    gap = 0.6
    for group in groups:
        columns, rows = shapes[group]
        if used and used + columns > shelf:  # a new shelf below
            x, y, used = 0.0, y - row_height - gap, 0
            row_height = 0.0
        width, height = columns * CELL[0], rows * CELL[1] + TITLE
        boxes.append(_Box(group, x, y, width, height))
        for index, name in enumerate(members[group]):
            column, row = index % columns, index // columns
            positions[name] = (x + (column + 0.5) * CELL[0], y - TITLE - (row + 0.5) * CELL[1])
        x += width + gap
        used += columns
        row_height = max(row_height, height)
    outside = sorted(map(str, nodes.loc[nodes["group"] == OUTSIDE, "name"]))
    if outside:
        x = max([b.x + b.width for b in boxes], default=0.0) + gap * 2
        rows = max(1, math.ceil(-(y - row_height) / CELL[1]) - 1, min(len(outside), 12))
        columns = math.ceil(len(outside) / rows)
        rows = math.ceil(len(outside) / columns)
        boxes.append(_Box(OUTSIDE, x, 0.0, columns * CELL[0], rows * CELL[1] + TITLE))
        for index, name in enumerate(outside):
            column, row = index // rows, index % rows
            positions[name] = (x + (column + 0.5) * CELL[0], -TITLE - (row + 0.5) * CELL[1])
    return positions, boxes


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


def _short(name: str, width: int = 24) -> str:
    """A node's label: its name without the namespace (the box says it), cut to fit a cell."""
    text = name.split("/", 1)[-1]
    return text if len(text) <= width else text[: width - 1] + "…"


def _draw_graph(
    table: pd.DataFrame,
    ax: Axes,
    edge_colours: list[str] | None,
    *,
    labels: bool,
    title: str,
    legend: list[tuple[str, str]],
) -> None:
    nx = _require("networkx")
    patches = _require("matplotlib.patches")
    lines = _require("matplotlib.lines")
    nodes = _nodes(table)
    grouped = (
        table.assign(_colour=edge_colours if edge_colours is not None else EDGE_COLOUR)
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
    positions, boxes = _layout(nodes)
    for box in boxes:
        ax.add_patch(
            patches.FancyBboxPatch(
                (box.x, box.y - box.height), box.width, box.height,
                boxstyle="round,pad=0.05,rounding_size=0.2", facecolor=BOX_FACE,
                edgecolor=BOX_EDGE, linewidth=1.0, zorder=0,
            )
        )  # fmt: skip
        ax.text(box.x + 0.15, box.y - 0.12, box.group, ha="left", va="top", fontsize=9,
                fontweight="bold", color="#424242")  # fmt: skip
    outside = {str(n) for n in nodes.loc[nodes["group"] == OUTSIDE, "name"]}
    nx.draw_networkx_nodes(
        graph, positions, ax=ax, node_size=300, edgecolors="#424242", linewidths=0.6,
        node_color=[OUTSIDE_COLOUR if n in outside else WORKLOAD_COLOUR for n in graph.nodes],
    )  # fmt: skip
    flows = [graph.edges[e]["flows"] for e in graph.edges]
    most = max(flows, default=1)
    # Width grows with the log of the flow count: a busy edge stands out without hiding the rest.
    widths = [0.6 + 2.4 * math.log1p(f) / math.log1p(most) for f in flows]
    nx.draw_networkx_edges(
        graph, positions, ax=ax, width=widths, arrows=True, arrowsize=9, node_size=300,
        edge_color=[graph.edges[e]["colour"] for e in graph.edges], alpha=0.8,
        connectionstyle="arc3,rad=0.1",
    )  # fmt: skip
    # Labels under their node, in the node's own cell: they never sit on top of each other.
    below = {n: (x, y - 0.38) for n, (x, y) in positions.items()}
    nx.draw_networkx_labels(
        graph, below, ax=ax, font_size=7, labels={n: _short(n) for n in graph.nodes},
        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
              "alpha": 0.8},
    )  # fmt: skip
    if labels:
        nx.draw_networkx_edge_labels(
            graph, positions, ax=ax, font_size=6, label_pos=0.5,
            edge_labels={e: graph.edges[e]["ports"] for e in graph.edges},
            connectionstyle="arc3,rad=0.1",
            bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none",
                  "alpha": 0.7},
        )  # fmt: skip
    handles = [
        lines.Line2D([], [], marker="o", linestyle="", markerfacecolor=WORKLOAD_COLOUR,
                     markeredgecolor="#424242", label="workload (box: its namespace)"),
        lines.Line2D([], [], marker="o", linestyle="", markerfacecolor=OUTSIDE_COLOUR,
                     markeredgecolor="#424242", label="outside the cluster (ipBlock)"),
        *(lines.Line2D([], [], color=colour, linewidth=2, label=text) for text, colour in legend),
    ]  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, -0.01), ncol=4,
              fontsize=7, frameon=False)  # fmt: skip
    ax.set_title(title)
    ax.relim()
    ax.autoscale_view()
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

    Nodes are endpoints in one box per namespace (outside peers in a box of their own, in
    grey), each labelled in a cell of its own; an arrow goes from client to server, labelled
    with the ports used and as wide as the log of the number of flows. Colours mean one thing:
    blue a workload, grey an outside address; red and green only in :func:`plot_policy_effect`.

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
    _draw_graph(table, ax, None, labels=edge_labels, title="Who talks to whom",
                legend=[("connection (client → server; width: flows)", EDGE_COLOUR)])  # fmt: skip
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
        legend=[("allowed by the policies", ALLOWED_COLOUR), ("denied", DENIED_COLOUR)],
    )
    return figure
