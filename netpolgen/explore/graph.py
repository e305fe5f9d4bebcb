"""The communication graph as Graphviz text, SVG, PNG or PDF."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from netpolgen.errors import NetpolgenError


def write_graph(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the communication graph of an :func:`edge_table` to ``path``.

    ``.dot``/``.gv`` writes Graphviz DOT text (no Graphviz needed); ``.svg``, ``.png`` and
    ``.pdf`` draw it with matplotlib (the ``notebook`` extra).

    Args:
        table: an :func:`edge_table`.
        path: the file to write; its suffix picks the format.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        NetpolgenError: for another file type, or when the file cannot be written.

    Examples:
        >>> write_graph(edge_table(result), "shop.dot")  # doctest: +SKIP
    """
    target = Path(path)
    suffix = target.suffix.lower()
    try:
        if suffix in (".dot", ".gv"):
            target.write_text(to_dot(table), encoding="utf-8")
            return target
        if suffix in (".svg", ".png", ".pdf"):
            from netpolgen.explore.plots import plot_graph

            plot_graph(table).savefig(target, bbox_inches="tight")
            return target
    except OSError as error:
        raise NetpolgenError(f"cannot write graph: {error.strerror}", source=str(target)) from error
    raise NetpolgenError(
        f"unknown graph file type {suffix or '(none)'!r}",
        source=str(target),
        hint="name the file .svg, .png, .pdf or .dot",
    )


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(table: pd.DataFrame) -> str:
    """The communication graph of an :func:`edge_table` as Graphviz DOT text.

    Workloads are grouped in one ``cluster_<namespace>`` subgraph per namespace; each edge is
    labelled with its ports and its flow count.
    """
    lines = ["digraph netpolgen {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    nodes = (
        pd.concat(
            [
                table[["src", "src_namespace", "src_kind"]].set_axis(
                    ["name", "ns", "kind"], axis=1
                ),
                table[["dst", "dst_namespace", "dst_kind"]].set_axis(
                    ["name", "ns", "kind"], axis=1
                ),
            ],
            ignore_index=True,
        )
        .drop_duplicates("name")
        .sort_values("name")
    )
    for namespace, group in nodes[nodes["ns"].notna()].groupby("ns", sort=True):
        lines.append(f"  subgraph {_dot_id('cluster_' + str(namespace))} {{")
        lines.append(f"    label={_dot_id(str(namespace))};")
        for name in group["name"]:
            lines.append(f"    {_dot_id(str(name))};")
        lines.append("  }")
    for name, kind in nodes.loc[nodes["ns"].isna(), ["name", "kind"]].itertuples(index=False):
        lines.append(
            f"  {_dot_id(str(name))} [shape=ellipse, label={_dot_id(f'{name} ({kind})')}];"
        )
    grouped = (
        table.groupby(["src", "dst"], observed=True)
        .agg(ports=("port", lambda p: ", ".join(sorted(set(map(str, p))))), flows=("flows", "sum"))
        .reset_index()
        .sort_values(["src", "dst"])
    )
    for src, dst, ports, flows in grouped.itertuples(index=False):
        label = _dot_id(f"{ports} ({flows})")
        lines.append(f"  {_dot_id(str(src))} -> {_dot_id(str(dst))} [label={label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
