"""Plots produce matplotlib figures without a display, and say what to install when they can't."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import pandas as pd
import pytest

import netpolgen
from tests.conftest import SAMPLE_FLOWS

matplotlib = pytest.importorskip("matplotlib")
pytest.importorskip("networkx")
matplotlib.use("Agg")

from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

from netpolgen.explore import plots  # noqa: E402


@pytest.fixture(scope="module")
def flows() -> pd.DataFrame:
    return netpolgen.load_flows(SAMPLE_FLOWS / "online-shop.csv")


@pytest.fixture(scope="module")
def result(flows: pd.DataFrame) -> netpolgen.GenerateResult:
    return netpolgen.generate(flows)


def test_graph_is_a_figure_with_every_endpoint(result: netpolgen.GenerateResult) -> None:
    figure = plots.plot_graph(result)
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"frontend", "redis-cart", "coredns", "prometheus-k8s", "203.0.113.10"} <= texts
    assert "TCP/6379" in texts  # edge labels carry the ports
    # Namespaces are boxes, titled (issue 18: grouped, not a hairball); the legend says what
    # the colours mean, one thing each.
    assert {"ingress-nginx", "kube-system", "monitoring", "shop", "(outside)"} <= texts
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == 5
    legend_box = ax.get_legend()
    assert legend_box is not None
    legend = [t.get_text() for t in legend_box.get_texts()]
    assert legend == ["workload (box: its namespace)", "outside the cluster (ipBlock)",
                      "connection (client → server; width: flows)"]  # fmt: skip


def test_graph_keeps_node_labels_apart(result: netpolgen.GenerateResult) -> None:
    # Every node sits in a grid cell of its own inside its namespace's box, so no two node
    # labels overlap (rendered extents, in display pixels).
    figure = plots.plot_graph(result, edge_labels=False)
    ax = figure.axes[0]
    figure.draw_without_rendering()  # lays the texts out
    renderer = figure._get_renderer()  # type: ignore[attr-defined]  # noqa: SLF001
    names = {"frontend", "redis-cart", "coredns", "prometheus-k8s", "cartservice", "adservice"}
    extents = [t.get_window_extent(renderer) for t in ax.texts if t.get_text() in names]
    assert len(extents) == len(names)
    for i, a in enumerate(extents):
        for b in extents[i + 1 :]:
            assert not a.overlaps(b)


def test_colours_mean_one_thing(flows: pd.DataFrame, result: netpolgen.GenerateResult) -> None:
    # Red is "denied" only: no node is red or green, and the plain graph draws no red edge.
    def rgb(colour: object) -> tuple[float, ...]:
        return tuple(round(float(c), 3) for c in to_rgb(colour))  # type: ignore[arg-type]

    red, green = rgb(plots.DENIED_COLOUR), rgb(plots.ALLOWED_COLOUR)
    effect = netpolgen.policy_effect(flows, result.policies)
    for figure in (plots.plot_graph(result), plots.plot_policy_effect(effect)):
        ax = figure.axes[0]
        # get_facecolors is matplotlib's alias of get_facecolor, missing from its stubs.
        nodes = {rgb(c) for coll in ax.collections for c in coll.get_facecolors()}  # type: ignore[attr-defined]
        assert nodes and red not in nodes and green not in nodes
    plain = plots.plot_graph(result).axes[0]
    arrows = {rgb(p.get_edgecolor()) for p in plain.patches if isinstance(p, FancyArrowPatch)}
    assert arrows and red not in arrows and green not in arrows


def test_graph_filters(result: netpolgen.GenerateResult) -> None:
    table = netpolgen.edge_table(result)
    figure = plots.plot_graph(table, namespaces=["monitoring"], min_flows=3, edge_labels=False)
    texts = {t.get_text() for t in figure.axes[0].texts}
    assert "prometheus-k8s" in texts and "redis-cart" not in texts


def test_graph_draws_into_a_given_axes(result: netpolgen.GenerateResult) -> None:
    figure = Figure()
    ax = figure.add_subplot()
    assert plots.plot_graph(result, ax=ax) is figure


def test_heatmap(result: netpolgen.GenerateResult, tmp_path: Path) -> None:
    figure = plots.plot_port_heatmap(result)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "kube-system/coredns"
    assert "UDP/53" in [t.get_text() for t in ax.get_xticklabels()]
    figure.savefig(tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 1000
    assert isinstance(plots.plot_port_heatmap(result, by="src", max_rows=3), Figure)


def test_heatmap_of_nothing() -> None:
    from netpolgen.flows import empty_flows

    summary = netpolgen.summarize(empty_flows())
    figure = plots.plot_port_heatmap(summary)
    assert figure.axes[0].texts[0].get_text() == "no edges"


def test_policy_effect_colours_edges(flows: pd.DataFrame, result: netpolgen.GenerateResult) -> None:
    effect = netpolgen.policy_effect(flows, result.policies)
    figure = plots.plot_policy_effect(effect)
    assert "5 observed flows denied" in figure.axes[0].get_title()
    colours = {
        tuple(round(c, 3) for c in cast(tuple[float, ...], patch.get_edgecolor()))  # an RGBA tuple
        for patch in figure.axes[0].patches
        if isinstance(patch, FancyArrowPatch)
    }
    assert len(colours) == 2  # green and red arrows
    with pytest.raises(netpolgen.NetpolgenError, match="policy_effect"):
        plots.plot_policy_effect(netpolgen.edge_table(result))


def test_svg_and_png_graph_files(result: netpolgen.GenerateResult, tmp_path: Path) -> None:
    table = netpolgen.edge_table(result)
    for name in ("graph.svg", "graph.png"):
        netpolgen.write_graph(table, tmp_path / name)
    assert (tmp_path / "graph.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "graph.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_matplotlib_is_a_clear_error(
    result: netpolgen.GenerateResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(netpolgen.NetpolgenError, match=r"netpolgen\[notebook\]"):
        plots.plot_graph(result)


def test_importing_netpolgen_and_plots_loads_no_plotting_library() -> None:
    import subprocess

    code = (
        "import sys, netpolgen, netpolgen.explore.plots, netpolgen.cli; "
        "print(sorted(m for m in ('matplotlib', 'networkx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**__import__("os").environ, "PYTHONPATH": str(SAMPLE_FLOWS.parent)},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
