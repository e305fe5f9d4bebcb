"""Ingest: flow files in any supported format -> chunks of the flow table.

Each format is a module with ``sniff(head: bytes) -> bool`` and
``read(stream, source, report, chunk_size) -> Iterator[DataFrame]``; :data:`FORMATS` lists them
in the order sniffing tries them (most specific first). Readers stream: they yield chunks, and the
caller reduces each chunk before asking for the next.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import pandas as pd

from netpolgen.errors import FormatDetectionError, InputError
from netpolgen.flows import conform_flows, empty_flows
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sources import open_source, peek

__all__ = ["FORMATS", "IngestReport", "detect_format", "iter_flows", "load_flows"]

Source = str | Path | BinaryIO


class Reader(Protocol):
    def __call__(
        self, stream: BinaryIO, source: str, report: IngestReport, chunk_size: int = ...
    ) -> Iterator[pd.DataFrame]: ...


@dataclass(frozen=True)
class FlowFormat:
    """A supported flow-log format, and the module that implements it."""

    name: str
    module: str
    description: str

    def _load(self) -> object:
        return importlib.import_module(f"netpolgen.ingest.{self.module}")

    def sniff(self, head: bytes) -> bool:
        return bool(self._load().sniff(head))  # type: ignore[attr-defined]

    @property
    def read(self) -> Reader:
        return self._load().read  # type: ignore[attr-defined,no-any-return]


# Sniffing order: most specific first. Hubble, GCP and Azure parse JSON and look for their own
# keys; AWS wants a header of flow-log field names or a 14-field v2 record (or Parquet's magic);
# the CSV header test is the loosest, so it goes last.
FORMATS: dict[str, FlowFormat] = {
    f.name: f
    for f in (
        FlowFormat("hubble", "hubble", "Cilium Hubble JSON lines (hubble observe -o json)"),
        FlowFormat("gcp-vpc", "gcp_vpc", "GCP VPC flow logs (Cloud Logging JSON)"),
        FlowFormat("azure", "azure", "Azure NSG (v2) and VNet (v4) flow logs"),
        FlowFormat("aws-vpc", "aws_vpc", "AWS VPC flow logs (text or Parquet)"),
        FlowFormat("csv", "csv", "netpolgen CSV (DESIGN.md)"),
    )
}
DEFAULT_CHUNK_SIZE = 250_000


def detect_format(head: bytes, source: str) -> str:
    """Name the format whose sniffer accepts ``head``, the first bytes of a file.

    Raises:
        FormatDetectionError: naming every format tried.
    """
    if not head.strip():
        raise InputError("empty file: no flow records", source=source)
    for fmt in FORMATS.values():
        if fmt.sniff(head):
            return fmt.name
    raise FormatDetectionError(
        "content matches no known flow format (tried " + ", ".join(FORMATS) + ")",
        source=source,
        hint="name the format with -f/--format",
    )


def iter_flows(
    sources: Iterable[Source],
    format: str = "auto",
    *,
    report: IngestReport | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: Callable[[str, int], None] | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream flow-table chunks from ``sources`` (paths, ``-``, or binary files).

    ``report`` (if given) accumulates the accounting: records read, used, skipped by reason.
    ``on_chunk(source, rows)`` (if given) is called after each chunk, for progress display.
    """
    report = report if report is not None else IngestReport()
    if format != "auto" and format not in FORMATS:
        raise InputError(f"unknown format {format!r}; known: auto, " + ", ".join(FORMATS))
    for source in sources:
        with open_source(source) as (stream, name):
            fmt = format if format != "auto" else detect_format(peek(stream), name)
            report.files.append(name)
            report.formats[name] = fmt
            for chunk in FORMATS[fmt].read(stream, name, report, chunk_size):
                if on_chunk is not None:
                    on_chunk(name, len(chunk))
                yield chunk


def load_flows(
    sources: Source | Iterable[Source],
    format: str = "auto",
    *,
    report: IngestReport | None = None,
    strict: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: Callable[[str, int], None] | None = None,
) -> pd.DataFrame:
    """Read flow files into one flow table (see ``netpolgen.flows`` for its columns).

    Args:
        sources: a path, ``-`` for standard input, an open binary file, or several of them.
        format: ``auto`` (sniff the content) or a name from :data:`FORMATS`.
        report: an :class:`IngestReport` to fill with what was read, used and skipped.
        strict: make the first malformed record an error instead of skipping it.
        chunk_size: records per chunk while reading (the result does not depend on it).
        on_chunk: called as ``on_chunk(source, rows)`` after each chunk is read (progress).

    Examples:
        >>> flows = load_flows("sample_flows/three-tier.csv")  # doctest: +SKIP
        >>> flows.groupby("dst_port")["count"].sum()  # doctest: +SKIP
    """
    if isinstance(sources, str | Path) or hasattr(sources, "read"):
        sources = [sources]  # type: ignore[list-item]
    report = report if report is not None else IngestReport()
    report.strict = report.strict or strict
    chunks = list(
        iter_flows(sources, format, report=report, chunk_size=chunk_size, on_chunk=on_chunk)
    )
    if not chunks:
        return empty_flows()
    if len(chunks) == 1:
        return chunks[0]
    # Chunks carry different protocol categories (TCP only, then TCP and UDP...); concatenating
    # them gives plain strings, so the result is conformed again.
    return conform_flows(pd.concat(chunks, ignore_index=True))
