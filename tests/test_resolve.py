"""resolve_flows: IP -> pod at the flow's time, services, nodes, outside peers."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from netpolgen.cluster.inventory import Inventory, load_inventory, parse_inventory
from netpolgen.flows import conform_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.resolve import pod_ip_intervals, resolve_flows
from tests.cluster import fixtures as cluster

REUSED_IP = "10.1.1.20"
# A batch Job pod gets the api pod's IP after the api pod is gone.
BATCH = replace(
    cluster.API,
    name="report-28571234-x9z8y",
    labels=(("app", "report"), ("job-name", "report-28571234")),
    owner=("Job", "report-28571234"),
    ports=(),
)


def flows(*rows: dict[str, Any]) -> pd.DataFrame:
    base = {"src_ip": cluster.WEB.ip, "protocol": "TCP", "dst_port": 8080, "src_kind": "unknown",
            "dst_kind": "unknown"}  # fmt: skip
    frame = pd.DataFrame([{**base, **r} for r in rows])
    if "time" in frame:
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return conform_flows(frame)


def snapshot(pods: tuple[cluster.Pod, ...], heartbeat: str, starts: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return cluster.inventory_document(pods, heartbeat=heartbeat, pod_starts=starts)


def load_snapshots(tmp_path: Path, *documents: dict[str, Any]) -> Inventory:
    paths = []
    for number, document in enumerate(documents):
        path = tmp_path / f"snapshot-{number}.json"
        path.write_text(json.dumps(document))
        paths.append(path)
    return load_inventory(paths)


@pytest.fixture
def two_snapshots(tmp_path: Path) -> Inventory:
    """10:10: the api pod holds 10.1.1.20. 10:40: it is gone; the batch pod (started 10:20)
    holds it."""
    first = snapshot((cluster.WEB, cluster.API), "2024-05-01T10:10:00Z")
    second = snapshot((cluster.WEB, BATCH), "2024-05-01T10:40:00Z",
                      {BATCH.name: "2024-05-01T10:20:00Z"})  # fmt: skip
    return load_snapshots(tmp_path, first, second)


def test_ip_reuse_attributes_each_flow_to_the_workload_that_held_the_ip(
    two_snapshots: Inventory,
) -> None:
    inventory = two_snapshots
    resolved = resolve_flows(
        flows(
            {"time": "2024-05-01T10:05:00Z", "dst_ip": REUSED_IP},  # api (seen at 10:10)
            {"time": "2024-05-01T10:15:00Z", "dst_ip": REUSED_IP},  # api: gone only at 10:20
            {"time": "2024-05-01T10:25:00Z", "dst_ip": REUSED_IP},  # batch (started 10:20)
            {"time": "2024-05-01T10:45:00Z", "dst_ip": REUSED_IP},  # batch, after snapshot 2
            {"time": "2024-05-01T08:00:00Z", "dst_ip": REUSED_IP},  # before anyone held it
        ),
        inventory,
    )
    assert resolved["dst_labels"].tolist()[:4] == [
        cluster.API.label_text,
        cluster.API.label_text,
        BATCH.label_text,
        BATCH.label_text,
    ]
    assert resolved["dst_pod"].tolist()[:4] == [cluster.API.name] * 2 + [BATCH.name] * 2
    assert (resolved["dst_kind"].tolist()[:4]) == ["pod"] * 4
    early = resolved.iloc[4]
    assert pd.isna(early["dst_labels"]) and early["dst_kind"] == "unknown"  # pod CIDR, no owner
    assert (resolved["src_labels"] == cluster.WEB.label_text).all()


def test_intervals(two_snapshots: Inventory) -> None:
    table = pod_ip_intervals(two_snapshots).set_index("pod")
    assert table.loc[cluster.API.name, "end"] == pd.Timestamp("2024-05-01T10:20:00Z")
    # cast: pandas-stubs type a .loc scalar as a union wider than pd.isna accepts.
    assert pd.isna(cast(Any, table.loc[BATCH.name, "end"]))
    assert pd.isna(cast(Any, table.loc[cluster.WEB.name, "end"]))  # in both snapshots: still there


def test_deletion_inferred_between_snapshots_without_a_new_owner(tmp_path: Path) -> None:
    first = snapshot((cluster.WEB, cluster.API), "2024-05-01T10:10:00Z")
    second = snapshot((cluster.WEB,), "2024-05-01T10:40:00Z")
    inventory = load_snapshots(tmp_path, second, first)  # given out of order on purpose
    resolved = resolve_flows(
        flows(
            {"time": "2024-05-01T10:30:00Z", "dst_ip": REUSED_IP},
            {"time": "2024-05-01T10:50:00Z", "dst_ip": REUSED_IP},
        ),  # fmt: skip
        inventory,
    )
    assert resolved["dst_pod"].tolist()[0] == cluster.API.name  # may still have been there
    assert pd.isna(resolved["dst_pod"].tolist()[1])  # gone by 10:40


def test_single_snapshot_never_attributes_to_a_later_owner() -> None:
    inventory = parse_inventory(
        [
            snapshot(
                (cluster.WEB, BATCH), "2024-05-01T11:00:00Z", {BATCH.name: "2024-05-01T10:20:00Z"}
            )
        ]
    )
    resolved = resolve_flows(
        flows({"time": "2024-05-01T10:05:00Z", "dst_ip": REUSED_IP}), inventory
    )
    assert pd.isna(resolved["dst_labels"].iloc[0])


def test_completed_pod_releases_its_ip_at_finished_at() -> None:
    job = cluster.pod_object(BATCH, "2024-05-01T10:00:00Z", phase="Succeeded")
    job["status"]["containerStatuses"] = [
        {"name": "main", "state": {"terminated": {"finishedAt": "2024-05-01T10:10:00Z"}}}
    ]
    inventory = parse_inventory([{"kind": "List", "items": [job]}])
    resolved = resolve_flows(
        flows(
            {"time": "2024-05-01T10:05:00Z", "dst_ip": REUSED_IP},
            {"time": "2024-05-01T10:15:00Z", "dst_ip": REUSED_IP},
        ),  # fmt: skip
        inventory,
    )
    assert resolved["dst_pod"].iloc[0] == BATCH.name and pd.isna(resolved["dst_pod"].iloc[1])


def test_untimed_flows_take_the_latest_owner(two_snapshots: Inventory) -> None:
    resolved = resolve_flows(flows({"dst_ip": REUSED_IP}), two_snapshots)
    assert resolved["dst_pod"].iloc[0] == BATCH.name


def inventory() -> Inventory:
    return parse_inventory([cluster.inventory_document()])


def test_cluster_ip_resolves_to_backends_and_target_port() -> None:
    resolved = resolve_flows(
        flows({"time": "2024-05-01T10:00:00Z", "dst_ip": cluster.API_SERVICE_IP, "dst_port": 80}),
        inventory(),
    )
    row = resolved.iloc[0]
    assert row["dst_namespace"] == "shop" and row["dst_kind"] == "pod"
    assert row["dst_labels"] == cluster.API.label_text  # one backend: all its labels
    assert row["dst_port"] == 8080  # named targetPort "http" -> the pods' containerPort
    assert pd.isna(row["dst_pod"])


def test_service_over_two_workloads_takes_their_common_labels() -> None:
    canary = replace(
        cluster.API,
        name="api-canary-1",
        ip="10.1.1.21",
        labels=(("app", "api"), ("track", "canary")),
        ports=(("http", 8080),),
    )
    document = cluster.inventory_document(cluster.PODS + (canary,))
    resolved = resolve_flows(
        flows({"time": "2024-05-01T10:00:00Z", "dst_ip": cluster.API_SERVICE_IP, "dst_port": 80}),
        parse_inventory([document]),
    )
    assert resolved["dst_labels"].iloc[0] == "app=api"
    assert resolved["dst_port"].iloc[0] == 8080


def test_selectorless_service_nodes_hostnetwork_and_outside() -> None:
    resolved = resolve_flows(
        flows(
            {"time": "2024-05-01T10:00:00Z", "dst_ip": "10.96.0.1", "dst_port": 443},
            {"time": "2024-05-01T10:00:00Z", "dst_ip": "192.168.0.2", "dst_port": 10250},
            {"time": "2024-05-01T10:00:00Z", "dst_ip": "192.168.0.1", "dst_port": 10256},
            {"time": "2024-05-01T10:00:00Z", "dst_ip": cluster.OUTSIDE, "dst_port": 443},
            {"time": "2024-05-01T10:00:00Z", "dst_ip": "10.1.0.99", "dst_port": 80},
        ),
        inventory(),
        report=(report := IngestReport()),
    )
    assert resolved["dst_kind"].tolist() == ["service", "node", "node", "world", "unknown"]
    assert resolved["dst_namespace"].tolist()[0] == "default"
    assert resolved["dst_ip"].tolist()[1:4] == ["192.168.0.2", "192.168.0.1", cluster.OUTSIDE]
    assert resolved["dst_labels"].isna().all()
    assert any("2 address(es) matched no pod" in m for m in report.messages)


def test_known_sides_are_left_alone_and_named_pods_get_labels() -> None:
    resolved = resolve_flows(
        flows(
            # CSV/Hubble: identity given (even if the IP says otherwise)
            {
                "time": "2024-05-01T10:00:00Z",
                "dst_ip": REUSED_IP,
                "dst_namespace": "other",
                "dst_labels": "app=x",
                "dst_kind": "pod",
            },
            # a Hubble host side stays host
            {
                "time": "2024-05-01T10:00:00Z",
                "src_ip": "192.168.0.1",
                "src_kind": "host",
                "dst_ip": REUSED_IP,
            },
            # GKE details named the pod; its IP is unknown to the inventory
            {
                "time": "2024-05-01T10:00:00Z",
                "dst_ip": "10.1.9.9",
                "dst_namespace": "shop",
                "dst_pod": cluster.DB.name,
                "dst_kind": "pod",
            },
        ),  # fmt: skip
        inventory(),
    )
    assert resolved["dst_labels"].iloc[0] == "app=x"
    assert resolved["src_kind"].iloc[1] == "host" and pd.isna(resolved["src_labels"].iloc[1])
    assert resolved["dst_labels"].iloc[1] == cluster.API.label_text
    assert resolved["dst_labels"].iloc[2] == cluster.DB.label_text


def test_input_is_not_modified_and_empty_is_fine() -> None:
    original = flows({"time": "2024-05-01T10:00:00Z", "dst_ip": REUSED_IP})
    copy = original.copy()
    resolve_flows(original, inventory())
    pd.testing.assert_frame_equal(original, copy)
    assert len(resolve_flows(original.iloc[:0], inventory())) == 0


def test_a_pod_named_by_the_source_beats_the_address_lookup() -> None:
    resolved = resolve_flows(
        flows(
            {
                "time": "2024-05-01T10:00:00Z",
                "dst_ip": REUSED_IP,  # the api pod's address in the inventory
                "dst_namespace": "shop",
                "dst_pod": cluster.DB.name,  # but GKE said it was db-0 at the time
                "dst_kind": "pod",
            }
        ),
        inventory(),
    )
    assert resolved["dst_pod"].iloc[0] == cluster.DB.name
    assert resolved["dst_labels"].iloc[0] == cluster.DB.label_text


def test_snapshots_far_from_the_flows_are_reported() -> None:
    report = IngestReport()
    resolve_flows(flows({"time": "2024-06-01T10:00:00Z", "dst_ip": REUSED_IP}), inventory(),
                  report=report)  # fmt: skip
    assert any("take inventory snapshots during the flow window" in m for m in report.messages)
    report = IngestReport()
    resolve_flows(flows({"time": "2024-05-01T10:00:00Z", "dst_ip": REUSED_IP}), inventory(),
                  report=report)  # fmt: skip
    assert not any("flow window" in m for m in report.messages)


def test_unknown_service_port_is_kept_and_reported() -> None:
    report = IngestReport()
    resolved = resolve_flows(
        flows({"time": "2024-05-01T10:00:00Z", "dst_ip": cluster.API_SERVICE_IP, "dst_port": 81}),
        inventory(),
        report=report,
    )
    assert resolved["dst_port"].iloc[0] == 81 and resolved["dst_labels"].iloc[0]
    assert any("1 flow(s) to a Service port" in m for m in report.messages)


def test_select_and_kinds_take_answers_only_where_asked() -> None:
    # The two fast selects of Resolver.__call__, against pandas' own masked select.
    from netpolgen._kernels import select_text
    from netpolgen.flows import ENDPOINT_KINDS
    from netpolgen.resolve import _kinds

    where = np.array([True, False, True, False, True])
    own = pd.Series(["a", None, "c", "d", None], dtype="string")
    chosen = pd.Series(["x", "y", None, "w", "v"], dtype="string")
    expected = own.mask(pd.Series(where), chosen)
    pd.testing.assert_series_equal(select_text(where, chosen, own), expected)
    everywhere = np.ones(5, dtype=bool)
    pd.testing.assert_series_equal(
        select_text(everywhere, chosen, own), own.mask(pd.Series(everywhere), chosen)
    )

    kinds = pd.Series(pd.Categorical(["world", "pod", "unknown", "host", "world"],
                                     categories=list(ENDPOINT_KINDS)))  # fmt: skip
    answers = pd.Series(["pod", "service", None], dtype="string")  # the answer table's kinds
    rows = np.array([1, -1, 2, -1, 0])
    out = _kinds(where, answers, rows, kinds)
    assert out.dtype == kinds.dtype
    assert out.astype(object).where(out.notna(), None).tolist() == [
        "service", "pod", None, "host", "pod",
    ]  # fmt: skip
