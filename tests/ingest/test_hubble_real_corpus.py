"""The real-shaped Hubble benchmark corpus (benchmarks/hubble_real.py) has the shape of a Cilium
1.16 ``hubble observe -o jsonpb`` capture, checked against FORMATS.md section 1 and the shared
real samples, not against netpolgen's reader; and netpolgen reads it whole."""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from netpolgen.ingest import hubble
from netpolgen.ingest.report import IngestReport
from tests.conftest import SHARED_SAMPLES

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate.write("hubble-real", 6000, tmp_path_factory.mktemp("real") / "real.jsonl")


def test_every_line_is_a_jsonpb_envelope_with_the_fields_cilium_writes(corpus: Path) -> None:
    # FORMATS.md 1.1: a GetFlowsResponse per line, flow or another oneof (lost_events).
    flows = []
    for text in corpus.read_text().splitlines():
        value = json.loads(text)
        assert set(value) in ({"flow", "node_name", "time"}, {"lost_events", "node_name", "time"})
        if "flow" in value:
            flows.append(value["flow"])
    # 1.3: fields of every 1.16 flow; node_name is <cluster>/<node> with a cluster name (1.6).
    for flow in flows:
        assert {"time", "uuid", "emitter", "verdict", "IP", "source", "destination", "Type",
                "node_name", "node_labels", "Summary"} <= set(flow)  # fmt: skip
        assert flow["emitter"]["name"] == "Hubble" and "/" in flow["node_name"]
        assert flow["IP"]["ipVersion"] in ("IPv4", "IPv6")
    # 1.2: zero values omitted (no port 0, no reply:false), uint64 as strings.
    for flow in flows:
        for fields in flow.get("l4", {}).values():
            assert fields.get("source_port", 1) and fields.get("destination_port", 1)
        assert "reply" not in flow
        assert isinstance(flow.get("l7", {}).get("latency_ns", ""), str)
    # 1.6: one connection many times: trace points on both nodes, policy verdicts, drops, L7.
    types = Counter(flow.get("event_type", {}).get("type") for flow in flows)
    assert {1, 4, 5, 129} <= set(types)
    points = {flow.get("trace_observation_point") for flow in flows} - {None}
    assert {"TO_ENDPOINT", "TO_OVERLAY", "TO_STACK", "TO_PROXY"} <= points
    assert {"is_reply" in flow for flow in flows} == {True, False}  # sometimes absent: unknown
    assert {"trace_reason" in flow for flow in flows} == {True, False}
    l7 = [flow["l7"] for flow in flows if "l7" in flow]
    assert any("dns" in r for r in l7) and any("http" in r for r in l7)
    verdicts = Counter(flow["verdict"] for flow in flows)
    assert {"FORWARDED", "DROPPED", "REDIRECTED"} <= set(verdicts)
    reasons = {flow.get("drop_reason_desc") for flow in flows} - {None}
    assert {"POLICY_DENIED", "INVALID_SOURCE_IP"} <= reasons
    assert any("aggregate" in flow for flow in flows)
    assert any("destination_service" in flow for flow in flows)
    assert any("destination_names" in flow for flow in flows)
    assert any("workloads" in flow["source"] for flow in flows)
    size = corpus.stat().st_size / len(flows)
    assert 1500 < size < 2600  # the capture: 379 MB for 200,000 lines


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="../shared/samples is not beside the repo")
def test_its_endpoints_look_like_the_real_samples(corpus: Path) -> None:
    """The label list of a pod endpoint has the injected labels a real capture has."""
    real = json.loads((SHARED_SAMPLES / "hubble" / "hubble-otel_basic-sample-10-flows.jsonl")
                      .read_text().splitlines()[0])["flow"]["source"]  # fmt: skip
    ours = json.loads(corpus.read_text().splitlines()[0])["flow"]["source"]
    assert set(real) <= set(ours)

    def injected(labels: list[str]) -> set[str]:
        return {label.split("=")[0] for label in labels if "io.cilium.k8s" in label
                or "io.kubernetes" in label}  # fmt: skip

    assert {k for k in injected(real["labels"]) if "namespace.labels" not in k} <= injected(
        ours["labels"]
    )


def test_netpolgen_reads_all_of_it(corpus: Path) -> None:
    report = IngestReport()
    with corpus.open("rb") as stream:
        frames = list(hubble.read(stream, str(corpus), report))
    assert report.records_skipped == 0
    assert sum(len(f) for f in frames) > 500
    assert report.filtered["Cilium health check"] > 0
    assert report.filtered["dropped by the datapath, not by policy"] > 0
    assert any("lost event" in m for m in report.messages) or io  # lost lines are rare
