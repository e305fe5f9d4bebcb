"""Format sniffing by content, and the conformance run over the shared public samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpolgen.errors import FormatDetectionError, InputError
from netpolgen.flows import validate_flows
from netpolgen.ingest import FORMATS, detect_format
from tests.ingest.helpers import DATA, SHARED_SAMPLES, balanced, read

EXPECTED = {
    "hubble-edge-cases.jsonl": "hubble",
    "aws-v2-default.log": "aws-vpc",
    "aws-v5-custom.log": "aws-vpc",
    "gcp-vpc-flows.jsonl": "gcp-vpc",
    "azure-nsg-v2.json": "azure",
    "azure-vnet-v4.json": "azure",
}
SAMPLE_FORMATS = {"hubble": "hubble", "aws": "aws-vpc", "azure": "azure", "gcp": "gcp-vpc"}


def test_registry_order_most_specific_first() -> None:
    assert list(FORMATS) == ["hubble", "gcp-vpc", "azure", "aws-vpc", "csv"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixtures_are_sniffed(name: str) -> None:
    head = (DATA / name).read_bytes()[:65536]
    assert detect_format(head, name) == EXPECTED[name]


def test_csv_is_still_csv() -> None:
    assert detect_format(b"src_namespace,src_labels,dst_namespace,dst_labels,dst_port\n", "x") == (
        "csv"
    )


def test_unknown_content_names_the_formats_tried() -> None:
    with pytest.raises(FormatDetectionError) as error:
        detect_format(b"<html><body>not flows</body></html>\n", "page.html")
    message = str(error.value)
    assert message.startswith("page.html: ")
    for name in FORMATS:
        assert name in message


def test_empty_input() -> None:
    with pytest.raises(InputError):
        detect_format(b"  \n", "empty.log")


def _samples() -> list[Path]:
    if not SHARED_SAMPLES.is_dir():
        return []
    return sorted(
        p
        for p in SHARED_SAMPLES.rglob("*")
        if p.is_file() and p.parent.name in SAMPLE_FORMATS and p.name != "README.md"
    )


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="../shared/samples is not beside the repo")
@pytest.mark.parametrize("path", _samples(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shared_sample_reads_without_error(path: Path) -> None:
    flows, report = read(path)
    validate_flows(flows)
    assert report.formats[str(path)] == SAMPLE_FORMATS[path.parent.name]
    assert report.records_read > 0 and balanced(report)
    assert report.records_skipped == report.skipped.get(
        "NODATA record (no traffic in the interval)", 0
    ) + report.skipped.get("SKIPDATA record (records lost during the interval)", 0)
