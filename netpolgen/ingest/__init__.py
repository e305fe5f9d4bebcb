"""Ingest: flow files in any supported format -> chunks of the flow table.

Each format is a module with ``sniff(head: bytes) -> bool`` and
``read(stream, source, report, chunk_size) -> Iterator[DataFrame]``; :data:`FORMATS` lists them
in the order sniffing tries them (most specific first). Readers stream: they yield chunks, and the
caller reduces each chunk before asking for the next.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import pandas as pd

from netpolgen._faults import checkpoint
from netpolgen.errors import FormatDetectionError, InputError
from netpolgen.flows import conform_flows, empty_flows
from netpolgen.ingest.collapse import DeniedConnections
from netpolgen.ingest.jsonlines import first_json_values
from netpolgen.ingest.limits import is_line_based, limit_lines
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sanitize import sanitize_flows
from netpolgen.ingest.sources import expand_directories, open_source, peek

__all__ = [
    "FORMATS", "IngestReport", "detect_format", "guess_format", "iter_flows", "load_flows",
    "read_checked",
]  # fmt: skip

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
    # The reader checks namespaces, pod names and labels itself, exactly as
    # netpolgen.ingest.sanitize would (with line numbers): its chunks skip that backstop.
    checks_names: bool = False

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
        FlowFormat("csv", "csv", "netpolgen CSV (README.md, The CSV format)", checks_names=True),
    )
}
DEFAULT_CHUNK_SIZE = 250_000


def guess_format(head: bytes) -> str | None:
    """The first format whose sniffer accepts ``head``, or None."""
    for fmt in FORMATS.values():
        if fmt.sniff(head):
            return fmt.name
    return None


def detect_format(head: bytes, source: str) -> str:
    """Name the format whose sniffer accepts ``head``, the first bytes of a file.

    Raises:
        FormatDetectionError: naming every format tried, and what the content looks like.
    """
    if not head.strip():
        raise InputError("empty file: no flow records", source=source)
    found = guess_format(head)
    if found is not None:
        return found
    if _is_kubernetes_list(head):
        raise FormatDetectionError(
            "this is a Kubernetes object list (an inventory from kubectl get ... -o json), "
            "not flows", source=source, hint="give it with -i/--inventory",
        )  # fmt: skip
    raise FormatDetectionError(
        "content matches no known flow format (tried " + ", ".join(FORMATS) + ")"
        + _what_it_is(head),
        source=source,
        hint="name the format with -f/--flow-format",
    )  # fmt: skip


# `kubectl get ... -o json` (or -o yaml) writes one object with apiVersion, kind List (or
# PodList, ...) and items: its first kilobytes say so before the (often multi-megabyte)
# document ends, so this needs no JSON parser.
_K8S_JSON_LIST = re.compile(rb'"apiVersion"\s*:.*?"kind"\s*:\s*"[A-Za-z]*List"|"items"\s*:', re.S)
_K8S_YAML_LIST = re.compile(rb"^apiVersion:\s.*^kind:\s*[A-Za-z]*List\s*$", re.S | re.M)


def _is_kubernetes_list(head: bytes) -> bool:
    """Whether ``head`` starts a Kubernetes ``List`` (JSON or YAML) such as an inventory."""
    start = head[:16384]
    if b'"apiVersion"' in start and _K8S_JSON_LIST.search(start):
        return True
    return bool(_K8S_YAML_LIST.search(start))


def _what_it_is(head: bytes) -> str:
    """A few words on unrecognised content, so that the user sees why it was not taken."""
    if b"\n" not in head.rstrip(b"\n") and len(head) >= 65536:
        return ": its first line is over 64 KiB long"
    values = first_json_values(head, limit=1)
    if values:
        value = values[0]
        if isinstance(value, dict):
            keys = ", ".join(sorted(map(str, value))[:6]) or "none"
            return f": JSON lines, but the first object is not a flow record (keys: {keys})"
        kind = {type(None): "null", bool: "a boolean", int: "a number", float: "a number",
                str: "a string", list: "an array"}.get(type(value), "not an object")  # fmt: skip
        return f": JSON, but the first value is {kind}, not a flow record"
    if head.lstrip()[:1] in (b"{", b"["):
        return ": it starts like JSON but does not parse (cut off, or not one record per line?)"
    if b"\x00" in head or head.decode("utf-8", "replace").count("\ufffd") > len(head) // 20:
        return ": it is binary, not text"
    return ""


def _looks_like(head: bytes, forced: str) -> str | None:
    """``looks like <format>; try -f <name>`` when the content sniffs as another format."""
    if _is_kubernetes_list(head):
        return "this is a Kubernetes object list (an inventory?): give it with -i/--inventory"
    guessed = guess_format(head) if head.strip() else None
    if guessed is None or guessed == forced:
        return None
    return f"the content looks like {FORMATS[guessed].description}; try -f {guessed}"


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
        with open_source(source, report) as (stream, name):
            head = peek(stream)
            fmt = format if format != "auto" else detect_format(head, name)
            report.files.append(name)
            report.formats[name] = fmt
            for chunk in read_checked(
                stream, name, fmt, head, report, chunk_size, format != "auto"
            ):
                if on_chunk is not None:
                    on_chunk(name, len(chunk))
                checkpoint("read.chunk")
                yield chunk


def read_checked(
    stream: BinaryIO,
    name: str,
    fmt: str,
    head: bytes,
    report: IngestReport,
    chunk_size: int,
    forced: bool,
) -> Iterator[pd.DataFrame]:
    """Read one opened file with ``fmt``'s reader, with the guards every format shares.

    Every path that parses flows (also parts of a file parsed in worker processes) should call
    this rather than ``FORMATS[fmt].read``, so that the guards apply everywhere. ``head`` is the
    file's first bytes (what sniffing saw); ``forced``: the format was named with ``-f``.

    Long lines are cut off before the reader sees them (:mod:`netpolgen.ingest.limits`), every
    chunk's names and labels are checked (:mod:`netpolgen.ingest.sanitize`), and a file of which
    no record could be used says so, with a "looks like" hint when ``-f`` named a format that the
    content does not have.
    """
    if is_line_based(fmt, head):
        stream = limit_lines(stream, name, report, header=fmt == "csv")
    read_before, skipped_before = report.records_read, report.records_skipped
    hint = _looks_like(head, fmt) if forced else None
    checked = FORMATS[fmt].checks_names
    try:
        for chunk in FORMATS[fmt].read(stream, name, report, chunk_size):
            yield chunk if checked else sanitize_flows(chunk, name, report)
    except InputError as error:
        # A wrong -f is the likely cause, unless the bytes themselves are broken (gzip).
        if hint is not None and not error.message.startswith("compressed input"):
            error.hint = hint
        raise
    read = report.records_read - read_before
    if read and report.records_skipped - skipped_before == read:
        if hint is not None:
            raise InputError(
                f"none of its {read} record(s) could be read as {fmt}", source=name, hint=hint
            )
        report.messages.append(f"{name}: none of its {read} record(s) could be used")


def load_flows(
    sources: Source | Iterable[Source],
    format: str = "auto",
    *,
    report: IngestReport | None = None,
    strict: bool = False,
    max_line_bytes: int | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: Callable[[str, int], None] | None = None,
) -> pd.DataFrame:
    """Read flow files into one flow table (see ``netpolgen.flows`` for its columns).

    Args:
        sources: a path, ``-`` for standard input, an open binary file, or several of them.
        format: ``auto`` (sniff the content) or a name from :data:`FORMATS`.
        report: an :class:`IngestReport` to fill with what was read, used and skipped.
        strict: make the first malformed record an error instead of skipping it.
        max_line_bytes: skip (and count) lines longer than this in line-based formats
            (default: the report's, 1 MiB).
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
    if max_line_bytes is not None:
        report.max_line_bytes = max_line_bytes
    sources = expand_directories(sources)
    flows = combine_chunks(
        list(iter_flows(sources, format, report=report, chunk_size=chunk_size, on_chunk=on_chunk))
    )
    if len(sources) > 1:
        # Verdicts across files, as the streaming commands judge them (denials_across_files).
        denied = DeniedConnections()
        denied.collect(flows)
        flows = denied.apply(flows, report)
        report.messages.extend(denied.messages())
    return flows


def combine_chunks(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """The flow chunks of a read, in order, as one flow table."""
    if not chunks:
        return empty_flows()
    if len(chunks) == 1:
        return chunks[0]
    # Chunks carry different protocol categories (TCP only, then TCP and UDP...); concatenating
    # them gives plain strings, so the result is conformed again.
    return conform_flows(pd.concat(chunks, ignore_index=True))
