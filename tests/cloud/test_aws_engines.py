"""Every engine and command decides directions alike on AWS renderings (one inference)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netpolgen.check.verify import verify_files
from netpolgen.generator import generate_from_files
from netpolgen.policy.render import render_yaml
from tests.cloud.aws import write
from tests.cloud.model import inventory, random_cluster

distributed = pytest.importorskip("distributed")

from netpolgen.engine.dask import generate_dask  # noqa: E402


@pytest.mark.parametrize("with_inventory", [True, False])
def test_dask_matches_pandas_on_aws_files(
    tmp_path: Path, dask_client: object, with_inventory: bool
) -> None:
    """Records of one connection in several files (two ENIs, publishing delay), no tcp-flags,
    denials at the server's ENI only: the Dask engine's two rounds give the pandas result."""
    cluster = random_cluster(16, connections=40, denied=0.3)
    paths = [str(p) for p in write(cluster, tmp_path / "logs", "v3-no-flags", seed=16, width=60)]
    inv: list[Path] = []
    if with_inventory:
        inv = [tmp_path / "inventory.json"]
        inv[0].write_text(json.dumps(inventory(cluster)))
    expected = generate_from_files(paths, inventory=inv, chunk_size=7)
    result = generate_dask(paths, client=dask_client, chunk_size=7, inventory=inv)
    assert result.to_yaml() == expected.to_yaml()
    assert dict(result.report.filtered) == dict(expected.report.filtered)
    pd_edges, dask_edges = expected.edges, result.edges
    assert pd_edges.equals(dask_edges)


def test_verify_agrees_with_from_flows_on_aws(tmp_path: Path) -> None:
    """verify replays the flows with the same directions and verdicts as from-flows: the
    policies generated from a capture allow every flow of it (nothing denied, no reply or
    undecided record checked), streamed and whole."""
    cluster = random_cluster(21, connections=40, denied=0.3)
    paths = write(cluster, tmp_path / "logs", "v3-no-flags", seed=21)
    inv = [tmp_path / "inventory.json"]
    inv[0].write_text(json.dumps(inventory(cluster)))
    policies = tmp_path / "policies.yaml"
    policies.write_text(render_yaml(generate_from_files(paths, inventory=inv).policies))
    streamed = verify_files(paths, policies, inv, workers=1)
    whole = verify_files(paths, policies, inv, flow_allowed=True)
    assert streamed.counts["flows_denied"] == 0
    assert streamed.counts == whole.counts
