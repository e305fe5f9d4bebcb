"""A chunk's integer summary reduces exactly as its rows do (what worker processes rely on)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.aggregate import EdgeOptions
from netpolgen.flows import conform_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.stream import Reduction, reduce_chunks
from netpolgen.summary import ChunkSummary, summarize_chunk
from tests.test_stream import chunks_of, random_flows


def awkward(flows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows no edge can key (no address, no pod), missing protocols, several pod addresses."""
    rng = np.random.default_rng(seed)
    flows = flows.copy()
    n = len(flows)
    if n == 0:
        return flows
    world = (flows["src_kind"] == "world").fillna(False).to_numpy()
    flows.loc[world & (rng.random(n) < 0.3), "src_ip"] = pd.NA
    flows.loc[rng.random(n) < 0.1, "protocol"] = pd.NA
    flows.loc[rng.random(n) < 0.1, "dst_port"] = pd.NA
    pods = (flows["dst_kind"] == "pod").fillna(False).to_numpy()
    flows.loc[pods & (rng.random(n) < 0.5), "dst_ip"] = "10.0.9.9"
    flows.loc[rng.random(n) < 0.1, "count"] = pd.NA
    return conform_flows(flows)


def reduce(
    parts: list[pd.DataFrame] | list[ChunkSummary], options: EdgeOptions
) -> tuple[Reduction, dict[str, int]]:
    report = IngestReport()

    def read(_: IngestReport) -> Iterator[pd.DataFrame]:
        return iter(parts)  # type: ignore[arg-type]

    return reduce_chunks(read, options, report), dict(report.filtered)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(0, 120),
    size=st.sampled_from([1, 5, 40]),
    sorted_times=st.booleans(),
    with_nat=st.booleans(),
    include_denied=st.booleans(),
    min_count=st.sampled_from([1, 3]),
)
def test_summaries_reduce_like_their_rows(
    seed: int, rows: int, size: int, sorted_times: bool, with_nat: bool, include_denied: bool,
    min_count: int,
) -> None:  # fmt: skip
    flows = awkward(random_flows(seed, rows, sorted_times=sorted_times, with_nat=with_nat), seed)
    options = EdgeOptions(include_denied=include_denied, min_count=min_count)
    chunks = chunks_of(flows, size)
    expected, expected_filtered = reduce(chunks, options)
    got, filtered = reduce([summarize_chunk(c) for c in chunks], options)
    assert filtered == expected_filtered
    pd.testing.assert_frame_equal(got.edges, expected.edges)
    pd.testing.assert_frame_equal(got.endpoints, expected.endpoints)
    pd.testing.assert_frame_equal(got.pods, expected.pods)
    assert got.inside == expected.inside


def test_a_summary_is_integers_and_small_tables() -> None:
    flows = random_flows(7, 200, sorted_times=True, with_nat=False)
    summary = summarize_chunk(flows)
    assert summary.rows == 200
    assert summary.edge.dtype == np.int64 and len(summary.edge) == 200
    assert len(summary.edge_table) < 200  # distinct edges, not rows
    assert set(summary.tuples.identities) <= set(flows["src_ip"]) | set(flows["dst_ip"])
