"""A chunk's integer summary reduces exactly as the whole table does (what the stream and the
worker processes rely on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen._kernels import known_codes, remember_codes, without_value
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


def _same_summary(got: object, want: object) -> None:
    """Field by field: arrays equal, tables equal, the rest equal."""
    for name in want.__dataclass_fields__:  # type: ignore[attr-defined]
        a, b = getattr(got, name), getattr(want, name)
        if hasattr(b, "__dataclass_fields__"):
            _same_summary(a, b)
        elif isinstance(b, pd.DataFrame):
            pd.testing.assert_frame_equal(a, b)
        elif isinstance(b, np.ndarray):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == b.dtype, name
        else:
            assert a == b, name


def _as_read(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """What the CSV reader's thread notes for a column: Arrow's dictionary encoding."""
    import pyarrow as pa
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(pa.array(column.array))
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.intp)
    return codes, encoded.dictionary.to_pylist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 80), blanks=st.booleans())
def test_a_summary_from_the_readers_codes_is_the_same(seed: int, rows: int, blanks: bool) -> None:
    """The summaries group text columns by the codes the CSV reader noted for them (as read,
    or with their empty cells missing) instead of hashing the cells again: same summary."""
    flows = awkward(random_flows(seed, rows, sorted_times=False, with_nat=False), seed)
    want = summarize_chunk(flows)
    noted = flows.copy()
    for side in ("src", "dst"):
        for name in ("namespace", "labels", "pod", "ip"):
            column = noted[f"{side}_{name}"]
            if blanks:  # some cells empty as read, missing in the table the checks give
                column = column.fillna("")
            codes, uniques = _as_read(column)
            if blanks:
                column = column.replace("", pd.NA)
                noted[f"{side}_{name}"] = column
                column = noted[f"{side}_{name}"]
                codes, uniques = without_value(codes, uniques, "")
            remember_codes(column, codes, uniques)
            assert known_codes(noted[f"{side}_{name}"]) is not None
    _same_summary(summarize_chunk(noted), want)


def test_codes_are_known_only_for_the_array_they_were_noted_for() -> None:
    column = pd.Series(["a", "b", "a", ""], dtype=pd.StringDtype("pyarrow"))
    codes, uniques = _as_read(column)
    remember_codes(column, codes, uniques)
    got = known_codes(column)
    assert got is not None and got[1] == ["a", "b", ""]
    np.testing.assert_array_equal(got[0], [0, 1, 0, 2])
    assert known_codes(column.iloc[1:]) is None  # a part of the data
    assert known_codes(pd.Series(["a", "b", "a", ""], dtype=pd.StringDtype("pyarrow"))) is None


@given(st.lists(st.sampled_from(["", "a", "b", "c", None]), max_size=30))
def test_a_value_made_missing_keeps_first_appearance_order(cells: list[str | None]) -> None:
    column = pd.Series(cells, dtype=pd.StringDtype("pyarrow"))
    codes, uniques = without_value(*_as_read(column), "")
    want_codes, want_uniques = pd.factorize(column.replace("", pd.NA))
    np.testing.assert_array_equal(codes, want_codes)
    assert uniques == list(want_uniques)


def test_csv_chunks_come_with_the_readers_codes(tmp_path: Path) -> None:
    """The CSV reader's codes reach the summaries for the columns the checks keep as read
    (every text column here; an address-only side has empty names and labels, missing in the
    table): the summary is the one of the same table with no codes noted."""
    from netpolgen.ingest import csv, iter_flows

    if not csv.HAS_ARROW:
        pytest.skip("pyarrow is not installed")
    lines = ["time,src_namespace,src_pod,src_labels,src_ip,src_port,dst_namespace,dst_pod,"
             "dst_labels,dst_ip,dst_port,protocol,verdict"]  # fmt: skip
    for i in range(60):
        web = f'shop,web-{i % 3},"app=web,pod-template-hash=h{i % 3}",10.0.0.{i % 3 + 1}'
        db = "shop,db-0,app=db,10.0.1.1" if i % 4 else ",,,192.0.2.9"
        lines.append(f"{1767225600 + i},{web},{40000 + i},{db},5432,TCP,allowed")
    path = tmp_path / "flows.csv"
    path.write_text("\n".join(lines) + "\n")
    (chunk,) = iter_flows([path], report=IngestReport())
    for side in ("src", "dst"):
        for name in ("namespace", "labels", "pod", "ip"):
            assert known_codes(chunk[f"{side}_{name}"]) is not None, (side, name)
    fresh = chunk.copy()
    for column in fresh.columns:  # the same values in arrays of their own: nothing noted
        if isinstance(fresh[column].dtype, pd.StringDtype):
            dtype: Any = fresh[column].dtype
            fresh[column] = pd.array(fresh[column].tolist(), dtype=dtype)
            assert known_codes(fresh[column]) is None
    _same_summary(summarize_chunk(chunk), summarize_chunk(fresh))
