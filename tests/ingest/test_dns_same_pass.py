"""The DNS map comes out of the flow read itself (issue 17): the Hubble reader collects the DNS
facts of the lines it reads, so that ``from-flows`` reads a capture once, and the map it gets is
the one :func:`netpolgen.ingest.dns.read_dns_map` reads from the same files, in one process or
several, from a file or from standard input."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import netpolgen.engine.local as parallel
from netpolgen.generator import generate_from_files
from netpolgen.ingest import hubble, iter_flows
from netpolgen.ingest.dns import DnsMap, dns_map_from_rows, read_dns_map, token_lines
from netpolgen.ingest.report import IngestReport
from netpolgen.policy.from_reduction import GenerateOptions
from tests.policy.dns_fixture import write_capture

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generate  # noqa: E402

_TOKENS = (b'"dns"', b"destination_names")


def _same(one: DnsMap, two: DnsMap) -> bool:
    return one.table.reset_index(drop=True).equals(two.table.reset_index(drop=True))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The real-shaped corpus: DNS answers (L7 events) and destination_names among its lines.
    return generate.write("hubble-real", 4000, tmp_path_factory.mktemp("real") / "real.jsonl")


@given(
    st.lists(
        st.sampled_from([b'{"a":1}', b'{"l7":{"dns":{}}}', b"destination_names", b"", b'"dn']),
        max_size=12,
    ),
    st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=12, max_size=12),
)
def test_token_lines_are_the_split_lines_that_hold_a_token(
    pieces: list[bytes], breaks: list[bytes]
) -> None:
    # The byte search cuts out exactly the lines bytes.splitlines gives that hold a token
    # (what the former per-line scan kept), whatever the line breaks.
    data = b"".join(piece + end for piece, end in zip(pieces, breaks, strict=False))
    expected = [line for line in data.splitlines() if any(t in line for t in _TOKENS)]
    assert token_lines(data) == expected
    assert token_lines(data.rstrip(b"\r\n")) == expected  # an unterminated last line


def test_the_real_shaped_corpus_has_names_to_learn(corpus: Path) -> None:
    assert len(read_dns_map([corpus]).table) > 10  # else the tests below could not fail


@pytest.mark.parametrize("workers", [1, 2])
def test_the_read_gives_the_map_read_dns_map_gives(
    corpus: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(hubble, "CHUNK_BYTES", 700_000)  # ~13 parts when workers=2
    if workers == 2:
        assert parallel._plan(corpus, "auto", 2) is not None
    result = generate_from_files([corpus], GenerateOptions(), workers=workers)
    assert _same(result.dns, read_dns_map([corpus]))


def test_standard_input_gives_its_map_too(corpus: Path) -> None:
    # read_dns_map cannot read a pipe a second time; the reader's own pass can.
    with corpus.open("rb") as handle:
        result = generate_from_files([handle], GenerateOptions())
    assert _same(result.dns, read_dns_map([corpus]))


def test_the_general_path_collects_the_same_facts(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "capture.jsonl")
    for fast in (True, False):
        report = IngestReport()
        with capture.open("rb") as stream:
            list(hubble.read(stream, str(capture), report, fast=fast))
        assert _same(dns_map_from_rows(report.dns_answers), read_dns_map([capture]))
    # And through the public reader, as every engine reads a file.
    report = IngestReport()
    list(iter_flows([capture], report=report))
    assert report.dns_answers


def test_a_docker_wrapped_capture_gives_its_facts(tmp_path: Path) -> None:
    # The reader unwraps a Docker json-file log line before reading it (FORMATS.md section 1):
    # its DNS facts are the bare line's.
    capture = write_capture(tmp_path / "capture.jsonl")
    wrapped = tmp_path / "wrapped.jsonl"
    wrapped.write_text(
        "".join(
            json.dumps({"log": line, "stream": "stdout", "time": "2026-11-20T10:00:00Z"}) + "\n"
            for line in capture.read_text().splitlines()
        )
    )
    report = IngestReport()
    list(iter_flows([io.BytesIO(wrapped.read_bytes())], report=report))
    assert _same(dns_map_from_rows(report.dns_answers), read_dns_map([capture]))
