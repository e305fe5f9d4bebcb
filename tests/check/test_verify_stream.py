"""Streamed verification (verify_files, verify_chunks) == verify over the whole flow table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from netpolgen.check.replay import verify_chunks
from netpolgen.check.verify import VerificationReport, verify, verify_files
from netpolgen.generator import generate
from netpolgen.ingest.report import IngestReport
from tests import flowkit
from tests.conftest import SAMPLE_FLOWS
from tests.reduce.test_stream import chunks_of, random_flows

DATA = Path(__file__).parents[1] / "data" / "ingest"


def assert_same(streamed: VerificationReport, whole: VerificationReport) -> None:
    for name in ("edges", "denied", "isolation", "over_permissive", "rules"):
        pd.testing.assert_frame_equal(getattr(streamed, name), getattr(whole, name))
    assert streamed.counts == whole.counts
    assert streamed.warnings == whole.warnings
    assert streamed.to_dict() == whole.to_dict()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [1, 7, 50])
def test_chunks_give_the_whole_tables_report(seed: int, size: int) -> None:
    flows = random_flows(seed, 120, sorted_times=seed % 2 == 0, with_nat=seed % 3 == 0)
    policies = generate(flows.iloc[: len(flows) // 2].reset_index(drop=True)).policies
    whole = verify(flows, policies)
    parts = chunks_of(flows, size)

    def read(_: IngestReport) -> Iterator[pd.DataFrame]:
        return iter(parts)

    assert_same(verify_chunks(read, policies, None, IngestReport()), whole)


@pytest.mark.parametrize(
    "flows",
    [
        *sorted(SAMPLE_FLOWS.glob("*.csv")),
        DATA / "hubble-edge-cases.jsonl",
        DATA / "aws-v2-default.log",
        DATA / "gcp-vpc-flows.jsonl",
    ],  # fmt: skip
    ids=lambda p: p.name,
)
@pytest.mark.parametrize("chunk", [3, 50_000])
def test_files_stream_like_loading(
    flows: Path, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from netpolgen.ingest import load_flows

    monkeypatch.setattr("netpolgen.engine.local.STREAM_CHUNK_SIZE", chunk)
    table = load_flows(flows)
    policies = generate(table.iloc[: len(table) // 2].reset_index(drop=True)).policies
    if not policies:  # an address-only log gives none; verify with no policy is an error
        policies = flowkit.policies(
            "metadata: {name: deny, namespace: default}\nspec: {podSelector: {}}\n"
        )
    policy_file = tmp_path / "policies.yaml"
    from netpolgen.policy.render import render_yaml

    policy_file.write_text(render_yaml(policies))
    whole = verify_files([flows], policy_file, flow_allowed=True)
    streamed = verify_files([flows], policy_file, workers=1)
    assert_same(streamed, whole)
    assert streamed.ingest is not None and whole.ingest is not None
    assert streamed.ingest.records_read == whole.ingest.records_read
    assert len(streamed.flow_allowed) == 0 and len(whole.flow_allowed) == whole.counts["records"]


@pytest.mark.parametrize("fmt", ["aws-vpc", "hubble", "csv"])
def test_benchmark_logs_stream_like_loading(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated logs of each format (AWS with a pod inventory), cut into many chunks."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generate as bench

    from netpolgen.generator import generate_from_files
    from netpolgen.policy.render import render_yaml

    monkeypatch.setattr("netpolgen.engine.local.STREAM_CHUNK_SIZE", 700)
    path = bench.write(fmt, 3000, tmp_path / f"flows.{fmt}")
    inventory: list[Path] = []
    if fmt == "aws-vpc":
        inventory = [tmp_path / "inventory.json"]
        inventory[0].write_text(json.dumps(bench.inventory(bench.make_cluster())))
    head = tmp_path / f"head.{fmt}"  # policies from the first records only: some flows denied
    head.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:300]))
    policies = generate_from_files([head], inventory=inventory).policies
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(render_yaml(policies))
    whole = verify_files([path], policy_file, inventory, flow_allowed=True)
    streamed = verify_files([path], policy_file, inventory, workers=1)
    assert whole.counts["flows_denied"] > 0
    assert_same(streamed, whole)
