from __future__ import annotations

import pandas as pd

from netpolgen.flows import conform_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.reduce.edges import aggregate_edges, mark_replies


def _row(
    src: str, sport: int, dst: str, dport: int, time: str, **extra: object
) -> dict[str, object]:
    return {
        "time": time, "src_ip": src, "src_port": sport, "dst_ip": dst, "dst_port": dport,
        "src_namespace": "a", "src_labels": f"app={src[-1]}", "src_kind": "pod",
        "dst_namespace": "a", "dst_labels": f"app={dst[-1]}", "dst_kind": "pod", **extra,
    }  # fmt: skip


def test_reply_is_the_reverse_of_an_earlier_tuple_even_in_the_ephemeral_range() -> None:
    # gRPC on 50051 (inside Linux's 32768-60999 ephemeral range) called from port 40000: the
    # lower port is the *client* here, and only the order of the records tells.
    flows = conform_flows(
        pd.DataFrame(
            [
                _row("10.0.0.1", 40000, "10.0.0.2", 50051, "2026-01-01T00:00:00Z"),
                _row("10.0.0.2", 50051, "10.0.0.1", 40000, "2026-01-01T00:00:01Z"),
            ]
        )
    )
    assert mark_replies(flows).tolist() == [False, True]
    # Same with the records in the other order in the file: time decides.
    assert mark_replies(flows.iloc[::-1].reset_index(drop=True)).tolist() == [True, False]


def test_explicit_is_reply_wins_and_same_time_falls_back_to_input_order() -> None:
    rows = [
        _row("10.0.0.1", 40000, "10.0.0.2", 80, "2026-01-01T00:00:00Z", is_reply=False),
        _row("10.0.0.2", 80, "10.0.0.1", 40000, "2026-01-01T00:00:00Z"),
        _row("10.0.0.3", 1234, "10.0.0.2", 80, "2026-01-01T00:00:00Z", is_reply=True),
    ]
    assert mark_replies(conform_flows(pd.DataFrame(rows))).tolist() == [False, True, True]


def test_edges_count_and_account_every_record() -> None:
    rows = [
        _row("10.0.0.1", 40000, "10.0.0.2", 80, "2026-01-01T00:00:00Z", count=3),
        _row("10.0.0.1", 40001, "10.0.0.2", 80, "2026-01-01T00:01:00Z", count=2),
        _row("10.0.0.2", 80, "10.0.0.1", 40001, "2026-01-01T00:01:01Z"),
        _row("10.0.0.1", 40002, "10.0.0.2", 81, "2026-01-01T00:02:00Z", verdict="denied"),
    ]
    report = IngestReport(records_read=4, records_used=4)
    edges, endpoints = aggregate_edges(conform_flows(pd.DataFrame(rows)), report=report)
    assert edges[["src", "dst", "dst_port", "count"]].values.tolist() == [
        ["pod:a/app=1", "pod:a/app=2", 80, 5]
    ]
    assert str(edges.loc[0, "first_seen"]) == "2026-01-01 00:00:00+00:00"
    assert str(edges.loc[0, "last_seen"]) == "2026-01-01 00:01:00+00:00"
    assert report.filtered == {"denied verdict": 1, "reply traffic": 1}
    assert report.records_used == 2
    assert report.records_read == report.records_used + report.records_filtered
    assert set(endpoints.index) == {"pod:a/app=1", "pod:a/app=2"}


def test_unresolved_addresses_become_outside_endpoints() -> None:
    rows = [{"src_ip": "203.0.113.7", "src_kind": "unknown", "dst_namespace": "a",
             "dst_labels": "app=web", "dst_kind": "pod", "dst_port": 443}]  # fmt: skip
    edges, endpoints = aggregate_edges(conform_flows(pd.DataFrame(rows)))
    assert edges.loc[0, "src"] == "ip:203.0.113.7"
    assert endpoints.loc["ip:203.0.113.7", "kind"] == "world"
