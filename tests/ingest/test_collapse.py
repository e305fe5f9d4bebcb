"""Merging repeated observations: the vectorised implementation equals the plain groupby one.

``reference`` below is the straightforward pandas formulation the reader used before (one
groupby over the 5-tuple and time bucket with named aggregations); the implementation in
``netpolgen.ingest.jsonlines`` works on integer codes instead, for speed, and must agree with it on
any flow table: same rows, same order, same dtypes, same counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.flows import conform_flows
from netpolgen.ingest.collapse import (
    _FIRST,
    _KEY,
    _RANK_VERDICT,
    _VERDICT_RANK,
    SeenConnections,
    collapse_observations,
)
from netpolgen.ingest.report import IngestReport


def reference(
    frame: pd.DataFrame, report: IngestReport, bucket: str, counters: str
) -> pd.DataFrame:
    if len(frame) < 2:
        return frame
    keyed = frame.copy()
    keyed["_bucket"] = keyed["time"].dt.floor(bucket)
    keyed["_rank"] = keyed["verdict"].astype("string").map(_VERDICT_RANK).astype("Int64")
    for side in ("src_kind", "dst_kind"):
        keyed[side] = keyed[side].astype("string").mask(keyed[side] == "unknown")
    groups = keyed.groupby(_KEY + ["_bucket"], dropna=False, sort=False, observed=True)
    if groups.ngroups == len(frame):
        return frame
    merged = groups.agg(
        time=("time", "min"),
        _rank=("_rank", "max"),
        count=("count", "max"),
        bytes=("bytes", counters),
        packets=("packets", counters),
        _bytes_known=("bytes", "count"),
        _packets_known=("packets", "count"),
        **{name: (name, "first") for name in _FIRST},
    ).reset_index()
    for counter in ("bytes", "packets"):
        merged[counter] = merged[counter].mask(merged[f"_{counter}_known"] == 0)
    merged["verdict"] = merged["_rank"].map(_RANK_VERDICT).fillna("unknown")
    for side in ("src_kind", "dst_kind"):
        merged[side] = merged[side].fillna("unknown")
    report.filter("duplicate observation of a connection", len(frame) - len(merged))
    merged = merged.drop(columns=["_bucket", "_rank", "_bytes_known", "_packets_known"])
    return conform_flows(merged).sort_values("time", kind="stable").reset_index(drop=True)


def maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([*values, None])


ROW = st.fixed_dictionaries(
    {
        "time": st.one_of(
            st.integers(0, 200).map(lambda s: f"2026-01-01T00:{s // 60:02d}:{s % 60:02d}Z"),
            st.none(),
        ),
        "src_ip": maybe(["10.0.0.1", "10.0.0.2"]),
        "dst_ip": maybe(["10.0.0.3", "10.0.0.1"]),
        "src_port": maybe([40000, 40001]),
        "dst_port": maybe([80, 443]),
        "protocol": maybe(["TCP", "UDP"]),
        "src_namespace": maybe(["shop", "ops"]),
        "dst_namespace": maybe(["shop"]),
        "src_pod": maybe(["web-1", "web-2"]),
        "dst_pod": maybe(["db-0"]),
        "src_labels": maybe(["app=web", "app=web,tier=a"]),
        "dst_labels": maybe(["app=db"]),
        "src_kind": maybe(["pod", "unknown", "world"]),
        "dst_kind": maybe(["pod", "unknown", "node"]),
        "verdict": maybe(["allowed", "denied", "unknown"]),
        "is_reply": maybe([True, False]),
        "count": st.sampled_from([1, 2, None]),
        "bytes": maybe([0, 10, 300]),
        "packets": maybe([1, 3]),
    }
)


COLUMNS = [
    "time", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "src_namespace",
    "dst_namespace", "src_pod", "dst_pod", "src_labels", "dst_labels", "src_kind", "dst_kind",
    "verdict", "is_reply", "count", "bytes", "packets",
]  # fmt: skip


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["count"] = frame["count"].fillna(1)
    return conform_flows(frame)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(ROW, min_size=0, max_size=40), counters=st.sampled_from(["max", "sum"]))
def test_equals_the_groupby_formulation(rows: list[dict[str, Any]], counters: str) -> None:
    frame = _frame(rows) if rows else conform_flows(pd.DataFrame({"time": []}))
    ours, theirs = IngestReport(), IngestReport()
    expected = reference(frame, theirs, "60s", counters)
    got = collapse_observations(frame, ours, bucket="60s", counters=counters)
    pd.testing.assert_frame_equal(got, expected)
    assert ours.to_dict() == theirs.to_dict()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.lists(ROW, min_size=0, max_size=25), min_size=1, max_size=4),
    counters=st.sampled_from(["max", "sum"]),
)
def test_seen_connections_inside_equal_seen_connections_after(
    chunks: list[list[dict[str, Any]]], counters: str
) -> None:
    # The readers hand the file's SeenConnections to the collapse, which filters the merged
    # rows before gathering them: it must equal filtering the collapsed chunk afterwards.
    inside, after = SeenConnections("60s"), SeenConnections("60s")
    ours, theirs = IngestReport(), IngestReport()
    for rows in chunks:
        frame = _frame(rows) if rows else conform_flows(pd.DataFrame({"time": []}))
        got = collapse_observations(frame, ours, bucket="60s", counters=counters, seen=inside)
        collapsed = collapse_observations(frame, theirs, bucket="60s", counters=counters)
        # conform_flows: a filtered frame keeps the categories of the rows it lost; ours is
        # built conformed, with only the protocols present.
        pd.testing.assert_frame_equal(got, conform_flows(after(collapsed, theirs)))
    assert ours.to_dict() == theirs.to_dict()


@pytest.mark.parametrize("counters", ["max", "sum"])
def test_merges_a_connection_seen_at_two_points(counters: str) -> None:
    rows = [
        {"time": "2026-01-01T00:00:00Z", "src_ip": "10.0.0.1", "dst_ip": "10.0.0.3",
         "src_port": 40000, "dst_port": 80, "protocol": "TCP", "src_kind": "unknown",
         "dst_kind": "pod", "verdict": "allowed", "bytes": 10, "count": 1},
        {"time": "2026-01-01T00:00:01Z", "src_ip": "10.0.0.1", "dst_ip": "10.0.0.3",
         "src_port": 40000, "dst_port": 80, "protocol": "TCP", "src_kind": "pod",
         "src_namespace": "shop", "dst_kind": "pod", "verdict": "denied", "bytes": 30, "count": 1},
    ]  # fmt: skip
    frame = _frame([{**dict.fromkeys(COLUMNS), **row} for row in rows])
    report = IngestReport()
    merged = collapse_observations(frame, report, counters=counters)
    assert len(merged) == 1
    row = merged.iloc[0]
    assert (
        row["verdict"] == "denied" and row["src_kind"] == "pod" and row["src_namespace"] == "shop"
    )
    assert row["bytes"] == (30 if counters == "max" else 40)
    assert row["time"] == pd.Timestamp("2026-01-01T00:00:00Z")
    assert report.filtered == {"duplicate observation of a connection": 1}
    assert np.array_equal(merged["count"].to_numpy(), [1])
