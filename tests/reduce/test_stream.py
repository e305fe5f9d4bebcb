"""Streaming reduction == in-memory pipeline, byte for byte, whatever the chunking."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.flows import TIME_WINDOW_ATTR, conform_flows
from netpolgen.generator import generate, generate_from_files
from netpolgen.ingest import load_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.from_reduction import GenerateOptions
from netpolgen.reduce.direction import DirectionTracker, InputOutOfOrder
from netpolgen.reduce.edges import EdgeOptions
from netpolgen.reduce.stream import FlowReducer, reduce_chunks
from tests.conftest import SAMPLE_FLOWS, SHARED_SAMPLES
from tests.reduce.direction_oracle import oracle_directions

SAMPLES = sorted(SAMPLE_FLOWS.glob("*.csv"))
OPTION_SETS = [
    GenerateOptions(),
    GenerateOptions(include_denied=True, min_count=2),
    GenerateOptions(egress=False, namespaces=("shop",)),
    GenerateOptions(cidr_prefix_v4=24, group_ips=True),
]


def random_flows(seed: int, rows: int, *, sorted_times: bool, with_nat: bool) -> pd.DataFrame:
    """Flows among a few pods and IPs, many without a direction, replies and denials mixed."""
    rng = np.random.default_rng(seed)
    pods = [("shop", "app=web,pod-template-hash=abc"), ("shop", "app=db"), ("ops", "app=mon")]
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "192.0.2.7"]
    ports = [80, 443, 5432, 50051, 40000, 40001]
    records = []
    base = pd.Timestamp("2026-01-01", tz="UTC")
    for i in range(rows):
        a, b = rng.integers(0, len(ips), 2)
        sport, dport = rng.choice(ports, 2)
        record: dict[str, object] = {
            "src_ip": ips[a], "dst_ip": ips[b],
            "src_port": int(sport), "dst_port": int(dport),
            "protocol": str(rng.choice(["TCP", "TCP", "UDP", "ICMP"])),
            "verdict": str(rng.choice(["allowed", "allowed", "denied", "unknown"])),
            "count": int(rng.integers(1, 4)),
        }  # fmt: skip
        if record["protocol"] == "ICMP":
            record["src_port"] = record["dst_port"] = None
        for side, which in (("src", a), ("dst", b)):
            if which < len(pods):
                record[f"{side}_namespace"], record[f"{side}_labels"] = pods[which]
                record[f"{side}_pod"] = f"pod-{which}-{rng.integers(0, 2)}"
                record[f"{side}_kind"] = "pod"
            else:
                record[f"{side}_kind"] = "world"
        choice = rng.integers(0, 4)
        record["is_reply"] = None if choice < 2 else bool(choice == 3)
        offset = i if sorted_times else int(rng.integers(0, rows))
        record["time"] = (
            None if with_nat and rng.random() < 0.2 else base + pd.Timedelta(seconds=offset // 2)
        )
        records.append(record)
    return conform_flows(pd.DataFrame(records))


def chunks_of(flows: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [flows.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(flows), size)]


def stream_generate(
    flows: pd.DataFrame, size: int, options: GenerateOptions
) -> tuple[str, dict[str, int]]:
    from netpolgen.policy.from_reduction import synthesize_reduction

    report = IngestReport()
    parts = chunks_of(flows, size)

    def read(_: IngestReport) -> Iterator[pd.DataFrame]:
        return iter(parts)

    reduction = reduce_chunks(read, options.edge_options(), report)
    result = synthesize_reduction(
        reduction.edges, reduction.endpoints, reduction.pods, reduction.inside, options, report,
        None,
    )  # fmt: skip
    return result.to_yaml(), dict(report.filtered)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_files_stream_to_the_same_yaml(
    sample: Path, options: GenerateOptions, chunk_size: int
) -> None:
    report = IngestReport()
    expected = generate(load_flows(sample, report=report), options, report=report)
    streamed = generate_from_files([sample], options, chunk_size=chunk_size)
    assert streamed.to_yaml() == expected.to_yaml()
    assert streamed.report.to_dict() == report.to_dict()
    pd.testing.assert_frame_equal(streamed.edges, expected.edges)
    pd.testing.assert_frame_equal(streamed.endpoints, expected.endpoints)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(0, 80),
    size=st.sampled_from([2, 7, 50]),
    sorted_times=st.booleans(),
    with_nat=st.booleans(),
    options=st.sampled_from(OPTION_SETS),
)
def test_random_flows_stream_to_the_same_result(
    seed: int, rows: int, size: int, sorted_times: bool, with_nat: bool, options: GenerateOptions
) -> None:
    flows = random_flows(seed, rows, sorted_times=sorted_times, with_nat=with_nat)
    report = IngestReport()
    expected = generate(flows, options, report=report)
    yaml, filtered = stream_generate(flows, size, options)
    assert yaml == expected.to_yaml()
    assert filtered == dict(report.filtered)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    size=st.sampled_from([1, 3, 10, 60]),
    with_nat=st.booleans(),
    window=st.sampled_from([0, 0, 5, 660]),
)
def test_direction_tracker_matches_the_oracle(
    seed: int, size: int, with_nat: bool, window: int
) -> None:
    """Streamed chunk by chunk (read twice when needed), the tracker decides every row as the
    whole-table oracle (tests/reduce/direction_oracle.py, written from the rules) does, for
    points in time and for windowed records (AWS: 600 s windows, start up to 60 s late)."""
    flows = random_flows(seed, 60, sorted_times=False, with_nat=with_nat)
    if window:
        flows.attrs[TIME_WINDOW_ATTR] = window
    expected = oracle_directions(flows)

    def decide(tracker: DirectionTracker) -> np.ndarray:
        codes = []
        for i, part in enumerate(chunks_of(flows, size)):
            directions = tracker.mark(part, i * size)
            codes.append(np.where(directions.replies, -1, directions.undecided))
        tracker.finish()
        return np.concatenate(codes)

    tracker = DirectionTracker()
    try:
        streamed = decide(tracker)
    except InputOutOfOrder:
        tracker = DirectionTracker()
        tracker.mode = "collect"
        decide(tracker)
        tracker.mode = "decide"
        streamed = decide(tracker)
    assert streamed.tolist() == expected


def test_time_ordered_input_is_read_once() -> None:
    flows = random_flows(7, 200, sorted_times=True, with_nat=False)
    reducer = FlowReducer(EdgeOptions(), IngestReport())
    for i, part in enumerate(chunks_of(flows, 10)):
        assert reducer._offset == i * 10
        reducer.add(part)  # no InputOutOfOrder: decisions are final when taken
    assert reducer.replies.state_size > 0


def test_a_late_earlier_request_is_detected() -> None:
    flows = random_flows(1, 2, sorted_times=True, with_nat=False)
    # pandas-stubs do not accept pd.NA as a scalar to assign.
    request = flows.iloc[[0]].assign(
        src_ip="10.0.0.1",
        dst_ip="10.0.0.2",
        src_port=40000,
        dst_port=80,
        is_reply=pd.NA,  # type: ignore[arg-type]
    )
    reply = request.assign(src_ip="10.0.0.2", dst_ip="10.0.0.1", src_port=80, dst_port=40000)
    reply["time"] = request["time"] + pd.Timedelta(seconds=5)
    tracker = DirectionTracker()
    tracker.mark(conform_flows(reply.reset_index(drop=True)), 0)  # no request yet: not a reply
    with pytest.raises(InputOutOfOrder):
        tracker.mark(conform_flows(request.reset_index(drop=True)), 1)


@pytest.mark.parametrize("flip", [False, True])
def test_the_latest_undecided_row_of_a_tuple_is_what_a_late_request_is_checked_against(
    flip: bool,
) -> None:
    """Two rows of one tuple wait undecided (t=10 s and t=30 s); a later chunk brings the
    reversed tuple at t=20 s, so the t=30 s row should have been a reply: that must be noticed
    whichever of the two rows came first in the chunk."""
    flows = random_flows(1, 2, sorted_times=True, with_nat=False)
    # pandas-stubs do not accept pd.NA as a scalar to assign.
    base = flows.iloc[[0]].assign(
        src_ip="10.0.0.2",
        dst_ip="10.0.0.1",
        src_port=80,
        dst_port=40000,
        is_reply=pd.NA,  # type: ignore[arg-type]
    )
    start = pd.Timestamp("2026-01-01T00:00:00Z")
    waiting = pd.concat([base, base], ignore_index=True)
    waiting["time"] = [start + pd.Timedelta(seconds=s) for s in ((30, 10) if flip else (10, 30))]
    request = base.assign(src_ip="10.0.0.1", dst_ip="10.0.0.2", src_port=40000, dst_port=80)
    request["time"] = [start + pd.Timedelta(seconds=20)]
    tracker = DirectionTracker()
    directions = tracker.mark(conform_flows(waiting), 0)
    assert not directions.replies.any()
    with pytest.raises(InputOutOfOrder):
        tracker.mark(conform_flows(request.reset_index(drop=True)), 2)


def test_standard_input_is_spooled_and_named(tmp_path: Path) -> None:
    sample = SAMPLES[0]
    result = generate_from_files([io.BytesIO(sample.read_bytes())], chunk_size=2)
    assert result.to_yaml() == generate(load_flows(sample)).to_yaml()
    assert result.report.files == ["<stream>"]


@pytest.mark.parametrize("epoch", [True, False])
def test_csv_reader_does_not_depend_on_chunk_size(tmp_path: Path, epoch: bool) -> None:
    from tests.engine.test_dask import write_csv

    flows = random_flows(3, 300, sorted_times=True, with_nat=False)
    path = tmp_path / "flows.csv"
    write_csv(flows, path)
    if epoch:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["time"] = (pd.to_datetime(frame["time"]).astype("int64") // 1000).map(
            lambda us: f"{us / 1e6:.6f}"
        )
        frame.to_csv(path, index=False)
    whole = load_flows(path)
    for size in (1, 7, 100):
        report = IngestReport()
        pd.testing.assert_frame_equal(load_flows(path, chunk_size=size, report=report), whole)
        assert report.records_skipped == 0


FORMAT_FILES = sorted((Path(__file__).parents[1] / "data" / "ingest").glob("*")) + sorted(
    p for p in SHARED_SAMPLES.glob("*/*") if p.suffix in (".jsonl", ".log", ".json")
    and p.parent.name in ("hubble", "aws", "azure")
)  # fmt: skip


@pytest.mark.parametrize("path", FORMAT_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_size", [5, 100_000])
def test_every_format_streams_to_the_same_yaml(path: Path, chunk_size: int) -> None:
    report = IngestReport()
    flows = load_flows(path, report=report, chunk_size=chunk_size)
    expected = generate(flows, report=report)
    streamed = generate_from_files([path], chunk_size=chunk_size)
    assert streamed.to_yaml() == expected.to_yaml()
    assert streamed.report.to_dict() == report.to_dict()


@pytest.mark.skipif(not (SHARED_SAMPLES / "k8s").exists(), reason="shared samples absent")
def test_inventory_resolution_streams_to_the_same_yaml(tmp_path: Path) -> None:
    from netpolgen.cluster.inventory import load_inventory
    from netpolgen.resolve import resolve_flows

    inventory = sorted((SHARED_SAMPLES / "k8s").glob("*.json"))
    path = Path(__file__).parents[1] / "data" / "ingest" / "aws-v2-default.log"
    report = IngestReport()
    flows = resolve_flows(load_flows(path, report=report), load_inventory(inventory), report=report)
    expected = generate(flows, report=report)
    streamed = generate_from_files([path], inventory=inventory, chunk_size=2)
    assert streamed.to_yaml() == expected.to_yaml()
    assert streamed.report.to_dict() == report.to_dict()


def test_blocked_columns_across_block_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    from netpolgen.reduce.keyed import Column as _Column
    from netpolgen.reduce.keyed import Table as _Table

    monkeypatch.setattr(_Column, "BITS", 3)  # 8 values a block
    table = _Table(t=np.int64)
    keys = np.arange(100, 150, dtype=np.uint64)
    for start in range(0, 50, 7):
        part = keys[start : start + 7]
        table.append(part, t=part.astype(np.int64) * 10)
    positions = table.find(np.array([149, 100, 123, 5], dtype=np.uint64))
    assert positions.tolist() == [49, 0, 23, -1]
    assert table.columns["t"].take(positions[:3]).tolist() == [1490, 1000, 1230]
    table.columns["t"].put(positions[:3], np.array([1, 2, 3]))
    assert table.columns["t"].take(positions[:3]).tolist() == [1, 2, 3]


def test_a_narrow_column_widens_when_a_value_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Input positions are held in 32 bits until one passes 2**31: then every block widens.
    from netpolgen.reduce.keyed import Column as _Column
    from netpolgen.reduce.keyed import Table as _Table

    monkeypatch.setattr(_Column, "BITS", 3)
    table = _Table(t=np.int64, o=np.int64, narrow=("o",))
    keys = np.arange(20, dtype=np.uint64)
    table.append(keys, t=np.zeros(20, np.int64), o=np.arange(20, dtype=np.int64))
    column = table.columns["o"]
    assert column.dtype == np.int32
    big = np.array([1 << 40], dtype=np.int64)
    column.put(np.array([5]), big)
    assert column.dtype == np.int64
    assert column.take(np.array([4, 5, 19])).tolist() == [4, 1 << 40, 19]
    table.append(np.array([99], dtype=np.uint64), t=np.zeros(1, np.int64), o=big + 1)
    assert column.take(np.array([20])).tolist() == [(1 << 40) + 1]


@pytest.mark.parametrize("chunk_size", [500, 4000])
def test_a_time_ordered_capture_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    """The benchmark's CSV corpus (benchmarks/generate.py: connections of a call graph from
    fresh client ports, a request and its reply each, a third of the requests without is_reply,
    times increasing) streams in one pass: every decision taken along the way holds against the
    complete state at the end (DirectionTracker.finish), so nothing is read twice. A second
    pass would give the same policies, so only this sees a state that loses what it decided
    (as a connection decided both ways in one chunk once did)."""
    import sys

    import netpolgen.reduce.stream as stream

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generate

    path = generate.write("csv", 20_000, tmp_path / "flows.csv")

    def one_pass(run: Any, collect: Any) -> Any:
        return run(DirectionTracker())  # InputOutOfOrder would fail the test

    monkeypatch.setattr(stream, "in_two_passes", one_pass)
    result = generate_from_files([path], chunk_size=chunk_size)
    assert result.policies and result.report.filtered["reply traffic"] > 0
