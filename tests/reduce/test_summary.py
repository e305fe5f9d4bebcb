"""A chunk's integer summary reduces exactly as the whole table does (what the stream and the
worker processes rely on)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.flows import conform_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.reduce.edges import EdgeOptions, aggregate_edges, cluster_addresses, tuple_identity
from netpolgen.reduce.pods import finish_pod_endpoints, raw_pod_endpoints
from netpolgen.reduce.stream import Reduction, reduce_chunks
from netpolgen.reduce.summary import summarize_chunk
from tests.reduce.test_stream import chunks_of, random_flows


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


def streamed(chunks: list[pd.DataFrame], options: EdgeOptions) -> tuple[Reduction, dict[str, int]]:
    report = IngestReport()

    def read(_: IngestReport) -> Iterator[pd.DataFrame]:
        return iter(chunks)

    return reduce_chunks(read, options, report), dict(report.filtered)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


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
def test_summaries_reduce_like_the_whole_table(
    seed: int, rows: int, size: int, sorted_times: bool, with_nat: bool, include_denied: bool,
    min_count: int,
) -> None:  # fmt: skip
    """The stream reduces each chunk through its summary; the reference is the in-memory
    aggregation of the whole table (aggregate_edges, mark_replies), a separate implementation."""
    flows = awkward(random_flows(seed, rows, sorted_times=sorted_times, with_nat=with_nat), seed)
    options = EdgeOptions(include_denied=include_denied, min_count=min_count)
    report = IngestReport()
    edges, endpoints = aggregate_edges(flows, options, report)
    got, filtered = streamed(chunks_of(flows, size), options)
    assert filtered == dict(report.filtered)
    pd.testing.assert_frame_equal(got.edges, edges)
    pd.testing.assert_frame_equal(got.endpoints, endpoints)
    # Pods are a set; their order follows the chunks (sources then destinations per chunk).
    pods = finish_pod_endpoints(raw_pod_endpoints(flows))
    pd.testing.assert_frame_equal(ordered(got.pods), ordered(pods))
    assert got.inside == cluster_addresses(flows)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 80), with_nat=st.booleans())
def test_a_summary_has_the_rows_pods_and_tuples(seed: int, rows: int, with_nat: bool) -> None:
    flows = awkward(random_flows(seed, rows, sorted_times=False, with_nat=with_nat), seed)
    summary = summarize_chunk(flows)
    pd.testing.assert_frame_equal(summary.pods, raw_pod_endpoints(flows).reset_index(drop=True))
    ported = (flows["src_port"].notna() & flows["dst_port"].notna()).to_numpy()
    np.testing.assert_array_equal(summary.tuples.rows, np.flatnonzero(ported))
    for side in ("src", "dst"):  # against the per-row text formulation of mark_replies
        np.testing.assert_array_equal(
            summary.tuples.identities[getattr(summary.tuples, side)],
            tuple_identity(flows[ported], side).to_numpy(dtype=object),
        )


def test_a_summary_is_integers_and_small_tables() -> None:
    flows = random_flows(7, 200, sorted_times=True, with_nat=False)
    summary = summarize_chunk(flows)
    assert summary.rows == 200
    assert summary.edge.dtype == np.int64 and len(summary.edge) == 200
    assert len(summary.edge_table) < 200  # distinct edges, not rows
    assert set(summary.tuples.identities) <= set(flows["src_ip"]) | set(flows["dst_ip"])
