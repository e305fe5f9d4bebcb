"""The msgspec fast path of the Hubble reader reads every line exactly as the general path does.

The fast path may decline a line (None: the general path reads it); when it answers, the answer
must be the general path's: the same row, the same reason to skip, the same invalid labels.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpolgen.ingest import hubble, jsonlines
from netpolgen.ingest.hubble import fast as hubble_fast
from netpolgen.ingest.hubble.endpoints import invalid_labels
from netpolgen.ingest.hubble.general import NO_IP, BadLabels
from netpolgen.ingest.jsonlines import loads
from netpolgen.ingest.report import IngestReport

pytestmark = pytest.mark.skipif(not hubble_fast.AVAILABLE, reason="msgspec is not installed")

# Values of the wrong type in every field the reader looks at: the fast path must decline or
# agree, never answer differently. Flows are drawn well typed or with odd values mixed in, so
# that both the answers and the declines are exercised.
ODD = st.sampled_from([None, True, False, 0, -1, 1.5, "", "x", [], {}, ["a"], {"a": 1}])
LABEL_TEXTS = st.sampled_from(
    [
        "k8s:app=web",
        "k8s:app=db",
        "k8s:tier=backend",
        "k8s:io.kubernetes.pod.namespace=shop",
        "k8s:io.cilium.k8s.policy.cluster=default",
        "k8s:bad key=1",
        "k8s:app=" + "v" * 70,
        "reserved:host",
        "reserved:world",
        "reserved:health",
        "reserved:remote-node",
        "reserved:kube-apiserver",
        "cidr:10.0.0.0/8",
        "fqdn:example.com",
        "container:x=y",
        "nocolon",
    ]
)


def flows(odd: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Hubble ``Flow`` objects; with ``odd``, any field may hold a value of the wrong type."""

    def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(good, ODD) if odd else good

    ports = field(st.one_of(st.integers(-2, 70_000), st.sampled_from([0, 80, 65535, 65536])))
    endpoint = field(
        st.fixed_dictionaries(
            {},
            optional={
                "namespace": field(st.sampled_from(["shop", "kube-system", "", "Bad_NS"])),
                "pod_name": field(st.sampled_from(["web-1", "db-0", ""])),
                "identity": field(st.sampled_from([1, 2, 4, 6, 7, 9, 20000, 1 << 24])),
                "labels": field(st.lists(LABEL_TEXTS, max_size=5)),
                "workloads": st.just([{"name": "web", "kind": "Deployment"}]),
            },
        )
    )
    flags = field(
        st.fixed_dictionaries({}, optional={"SYN": field(st.booleans()), "ACK": st.booleans()})
    )
    l4_fields = field(
        st.fixed_dictionaries(
            {},
            optional={
                "source_port": ports,
                "destination_port": ports,
                "flags": flags,
                "type": field(st.sampled_from([0, 3, 8, 128, 129])),
                "code": st.integers(0, 3),
            },
        )
    )
    names = st.sampled_from(["TCP", "UDP", "SCTP", "ICMPv4", "ICMPv6", "IGMP", "VRRP", "GRE"])
    addresses = field(
        st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1", "::ffff:10.0.0.3", "fe80::1", "no"])
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "time": field(st.sampled_from(["2026-01-01T00:00:00.5Z", "yesterday", ""])),
            "verdict": field(
                st.sampled_from(["FORWARDED", "DROPPED", "AUDIT", "ERROR", "REDIRECTED", "NEW"])
            ),
            "IP": field(
                st.fixed_dictionaries({}, optional={"source": addresses, "destination": addresses})
            ),
            "l4": field(st.dictionaries(names, l4_fields, max_size=2)),
            "source": endpoint,
            "destination": endpoint,
            "is_reply": field(st.booleans()),
            "reply": field(st.booleans()),
            "drop_reason_desc": field(
                st.sampled_from(["POLICY_DENIED", "INVALID_SOURCE_IP", "AUTH_REQUIRED", ""])
            ),
            "drop_reason": field(st.sampled_from([0, 133, 181, 5])),
            "Summary": st.sampled_from(["TCP Flags: SYN", "caf\u00e9"]),
        },
    )


ENVELOPE = st.fixed_dictionaries(
    {"flow": st.one_of(flows(odd=False), flows(odd=True), ODD)},
    optional={
        "time": st.one_of(st.sampled_from(["2026-01-01T00:00:01Z"]), ODD),
        "node_name": st.just("node-1"),
        "log": st.just("x"),
        "stream": st.just("stdout"),
        "lost_events": st.just({"num_events_lost": 2}),
    },
)
ANSWERED = {"yes": 0, "no": 0}


def _general(line: bytes, number: int) -> Any:
    """What the general path makes of a line that holds a flow envelope (a reader of its own)."""
    reader = hubble.HubbleReader(fast=False)
    value = loads(line)
    flow = value["flow"]
    row = reader.extract(flow, value, number)
    if row is NO_IP or isinstance(row, str):
        return row
    bad = tuple(invalid_labels(flow.get(s)) for s in ("source", "destination"))
    return _readable(row, reader), bad if any(bad) else ()


def _readable(row: tuple[Any, ...], reader: hubble.HubbleReader) -> tuple[Any, ...]:
    """A row with its endpoint codes replaced by the endpoints (codes depend on history)."""
    endpoints = reader.table.endpoints
    return (*row[:7], endpoints[row[7]], endpoints[row[8]], *row[9:])


def _fast(line: bytes, number: int) -> Any:
    reader = hubble.HubbleReader()
    answer = reader.fast_row(line, number)
    if answer is None or answer is NO_IP or isinstance(answer, str):
        return answer
    if isinstance(answer, BadLabels):
        return _readable(answer.row, reader), answer.per_side
    return _readable(answer, reader), ()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelope=ENVELOPE)
def test_fast_path_agrees_with_the_general_path(envelope: dict[str, Any]) -> None:
    line = json.dumps(envelope).encode()
    fast = _fast(line, 7)
    ANSWERED["no" if fast is None else "yes"] += 1
    if fast is None:
        return  # declined: the general path reads it
    assert isinstance(envelope["flow"], dict) and "log" not in envelope
    assert fast == _general(line, 7)


def test_the_fast_path_answered_many_of_the_drawn_lines() -> None:
    """The property above is not vacuous: runs after it (pytest keeps the file's order)."""
    if sum(ANSWERED.values()) < 100:
        pytest.skip("the property test did not run first")
    assert ANSWERED["yes"] > sum(ANSWERED.values()) // 5


def test_fast_path_takes_the_common_lines() -> None:
    """Not a fast path in name only: plain flows of every protocol are answered by it."""
    flows: list[dict[str, Any]] = [
        {"l4": {"TCP": {"source_port": 40000, "destination_port": 80, "flags": {"SYN": True}}}},
        {"l4": {"UDP": {"source_port": 5353, "destination_port": 53}}},
        {"l4": {"ICMPv4": {"type": 8}}},
        {"l4": {"ICMPv6": {}}},
        {"l4": {"SCTP": {"destination_port": 9}}, "is_reply": False},
    ]
    for extra in flows:
        flow = {
            "time": "2026-01-01T00:00:00Z",
            "verdict": "FORWARDED",
            "IP": {"source": "10.0.0.1", "destination": "10.0.0.2"},
            "source": {"namespace": "shop", "pod_name": "web-1", "labels": ["k8s:app=web"]},
            "destination": {"namespace": "shop", "labels": ["k8s:app=db", "k8s:bad key=1"]},
            **extra,
        }
        line = json.dumps({"flow": flow, "node_name": "n"}).encode()
        fast = _fast(line, 3)
        assert fast is not None, extra
        assert fast == _general(line, 3)


def _read(path: Path, fast: bool) -> tuple[list[pd.DataFrame], dict[str, Any]]:
    report = IngestReport()
    with path.open("rb") as stream:
        chunks = list(hubble.read(stream, str(path), report, chunk_size=50, fast=fast))
    return chunks, report.to_dict()


@settings(max_examples=40, deadline=None)
@given(envelopes=st.lists(ENVELOPE, min_size=1, max_size=60))
def test_a_file_reads_the_same_with_and_without_the_fast_path(
    envelopes: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("fast") / "flows.jsonl"
    text = "".join(json.dumps(e) + "\n" for e in envelopes) + "not json\n"
    path.write_text(text)
    fast_chunks, fast_report = _read(path, True)
    slow_chunks, slow_report = _read(path, False)
    assert len(fast_chunks) == len(slow_chunks)
    for fast, slow in zip(fast_chunks, slow_chunks, strict=True):
        pd.testing.assert_frame_equal(fast, slow)
    assert fast_report == slow_report


def test_the_benchmark_log_reads_the_same_with_and_without_the_fast_path(
    tmp_path: Path,
) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generate

    path = generate.write("hubble", 3000, tmp_path / "flows.jsonl")
    fast_chunks, fast_report = _read(path, True)
    slow_chunks, slow_report = _read(path, False)
    fast_frame = pd.concat(fast_chunks, ignore_index=True)
    assert len(fast_frame) > 1000
    pd.testing.assert_frame_equal(fast_frame, pd.concat(slow_chunks, ignore_index=True))
    assert fast_report == slow_report


def test_bytes_that_are_not_plain_ascii_take_the_general_path() -> None:
    line = b'{"flow": {"IP": {"source": "10.0.0.1", "destination": "10.0.0.2"}, "x": "\xff"}}'
    assert hubble.HubbleReader().fast_row(line, 1) is None
    with pytest.raises(Exception):  # noqa: B017 - what the general path does with it
        loads(line)
    io.BytesIO(line)  # the reader then skips it as not valid JSON (tests/ingest/test_hubble.py)


# Lines that a block of JSON lines may hold besides flow envelopes, each a case the block
# decoder must hand back to the line-by-line reader: not JSON, blank or white lines, a CRI log
# line and a partial CRI piece (containerd's format), two values on one line, a Docker
# json-file wrapper, text that is not ASCII.
ODD_LINES = st.sampled_from(
    [
        "not json",
        "",
        "   ",
        '2026-01-01T00:00:00.1Z stdout P {"flow": {"IP": {"source": "10.0.0.1",',
        '2026-01-01T00:00:00.1Z stdout F  "destination": "10.0.0.2"}}}',
        '{"flow": {}} {"flow": {}}',
        '{"log": "{\\"flow\\": {}}", "stream": "stdout"}',
        '{"flow": {"IP": {"source": "10.0.0.1", "destination": "10.0.0.9"}}, "x": "caf\u00e9"}',
        '{"node_status": {"message": "up"}}',
    ]
)


def _batches(text: bytes, fast: bool, chunk_bytes: int) -> tuple[list[Any], dict[str, Any]]:
    """Row batches of one reader, with the endpoint codes replaced by the endpoints."""
    reader = hubble.HubbleReader(fast=fast)
    report = IngestReport()
    batches = [
        [_readable(row, reader) for row in batch]
        for batch in reader.row_batches(io.BytesIO(text), "f", report, 7, chunk_bytes)
    ]
    return batches, report.to_dict()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.one_of(ENVELOPE.map(json.dumps), ODD_LINES), min_size=1, max_size=80),
    block_bytes=st.sampled_from([1, 200, 700, 5000]),
    chunk_bytes=st.sampled_from([300, 1000, 1 << 20]),
    ending=st.sampled_from(["\n", "\r\n"]),
    last_ending=st.booleans(),
)
def test_blocks_of_lines_read_as_line_by_line(
    lines: list[str], block_bytes: int, chunk_bytes: int, ending: str, last_ending: bool
) -> None:
    """Decoding a block of lines at once (msgspec's decode_lines) answers what the general
    path answers line by line: the same rows in the same batches (cut every 7 rows and at each
    byte-chunk edge), the same report; odd lines anywhere in a block are read one by one."""
    text = ending.join(lines) + (ending if last_ending else "")
    with mock.patch.object(jsonlines, "BLOCK_BYTES", block_bytes):
        fast = _batches(text.encode(), True, chunk_bytes)
    slow = _batches(text.encode(), False, chunk_bytes)
    assert fast == slow


def test_a_capture_is_decoded_in_blocks_not_line_by_line() -> None:
    """The block path is the one taken on plain Hubble lines (the property above would hold if
    every block were declined): no line of a clean capture goes through the per-line decoder."""
    flow = {
        "time": "2026-01-01T00:00:00Z", "verdict": "FORWARDED",
        "IP": {"source": "10.0.0.1", "destination": "10.0.0.2"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": 80}},
        "source": {"namespace": "shop", "pod_name": "web-1", "labels": ["k8s:app=web"]},
        "destination": {"namespace": "shop", "labels": ["k8s:app=db"]},
    }  # fmt: skip
    text = "".join(json.dumps({"flow": flow}) + "\n" for _ in range(2000)).encode()
    reader = hubble.HubbleReader()
    with (
        mock.patch.object(jsonlines, "BLOCK_BYTES", 20_000),
        mock.patch.object(hubble_fast, "DECODE", side_effect=AssertionError("per line")),
    ):
        batches = list(reader.row_batches(io.BytesIO(text), "f", IngestReport(), 500))
    assert [len(batch) for batch in batches] == [500, 500, 500, 500]
