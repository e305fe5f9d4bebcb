"""Cilium Hubble flows: ``hubble observe -o json|jsonpb`` lines, bare flows, exporter files.

Shapes accepted (FORMATS.md §1.1): one JSON object per line, either the ``GetFlowsResponse``
envelope ``{"flow": {...}, "node_name": ..., "time": ...}`` (jsonpb, exporter) or a bare ``Flow``
object (the legacy ``-o json`` of hubble CLIs before v0.11). Lines whose oneof is not a flow
(``node_status``, ``lost_events``, ``agent_event``, ``debug_event``) are not flow records and are
not counted; lost events are reported, as they mean the capture is incomplete. CRI log prefixes
(the exporter writing to stdout of a pod) and Docker json-file wrappers are removed.

Modules: :mod:`.general` reads one flow parsed by orjson (every field type) and holds the
verdict and direction semantics; :mod:`.fast` the typed msgspec path that answers as the
general path or declines the line; :mod:`.endpoints` Cilium's identities and labels, and the
per-reader table of distinct endpoints; :mod:`.frame` the rows -> flow table step.

Duplicates: one connection is traced at several observation points (and as policy-verdict and
L7 events); records with the same oriented 5-tuple within a minute are merged, within a chunk
(64 MB of input, or the chunk size in records, whichever ends first) and against the
connections of the previous chunk. Chunks are cut the same way whether one process reads the
file or worker processes read its parts (:mod:`netpolgen.engine.local`, for any file of two
chunks or more).

State: everything a read learns (the endpoint codes) belongs to its :class:`HubbleReader`, one
per file read, so that files read at once on several threads (the Dask engine) never share it.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import pandas as pd

from netpolgen.ingest.collapse import SeenConnections, collapse_observations
from netpolgen.ingest.dns_answers import dns_rows
from netpolgen.ingest.hubble import fast as hubble_fast
from netpolgen.ingest.hubble.endpoints import EndpointTable, invalid_labels
from netpolgen.ingest.hubble.frame import build
from netpolgen.ingest.hubble.general import NO_IP, NO_IP_REASON, BadLabels, Malformed, extract
from netpolgen.ingest.jsonlines import (
    CUT,
    HANDLED,
    HANDLED_FULL,
    MAX_JSON_CHUNK,
    JSONLineError,
    LineCount,
    first_json_values,
    iter_json_lines,
)
from netpolgen.ingest.report import IngestReport
from netpolgen.ingest.sanitize import INVALID_LABELS

__all__ = [
    "BUCKET",
    "CHUNK_BYTES",
    "NON_FLOW_EVENTS",
    "HubbleReader",
    "merged_chunks",
    "read",
    "report_lost",
    "sniff",
]

# Observations of one connection at several points lie within microseconds; a minute is ample.
BUCKET = "60s"
NON_FLOW_EVENTS = ("node_status", "lost_events", "agent_event", "debug_event", "rate_limit_info")
_FLOW_KEYS = frozenset({"verdict", "IP", "l4", "source", "destination", "Type", "event_type"})

# Chunks end at least every this many bytes (at a line end), whatever their row count: the parts
# that worker processes parse are these byte chunks (netpolgen.engine.local), so observations
# are merged within the same chunks in one process or in several.
CHUNK_BYTES = 64 << 20


def sniff(head: bytes) -> bool:
    """Hubble output: JSON lines holding a flow envelope, a bare flow, or a non-flow event."""
    values = first_json_values(head)
    if not values:
        return False
    return all(isinstance(v, dict) and _is_hubble(v) for v in values)


def _is_hubble(value: dict[str, Any]) -> bool:
    if isinstance(value.get("flow"), dict) or any(k in value for k in NON_FLOW_EVENTS):
        return True
    # A bare flow: protojson keys in Cilium's mixed case, which no other format uses.
    return "verdict" in value and ("IP" in value or "l4" in value or "Type" in value)


def read(
    stream: BinaryIO,
    source: str,
    report: IngestReport,
    chunk_size: int = 250_000,
    *,
    fast: bool = True,
) -> Iterator[pd.DataFrame]:
    """Read Hubble JSON lines into flow-table chunks (see the module docstring).

    ``fast=False`` reads every line by the general path (the fast paths' tests compare both).
    """
    seen = SeenConnections(BUCKET)
    reader = HubbleReader(fast=fast)
    for frame in reader.merged_chunks(stream, source, report, chunk_size, CHUNK_BYTES):
        yield seen(frame, report)


def merged_chunks(
    stream: BinaryIO,
    source: str,
    report: IngestReport,
    chunk_size: int,
    chunk_bytes: int | None,
    lines: LineCount | None = None,
) -> Iterator[pd.DataFrame]:
    """:meth:`HubbleReader.merged_chunks` of a reader of its own (worker processes' entry)."""
    yield from HubbleReader().merged_chunks(stream, source, report, chunk_size, chunk_bytes, lines)


class HubbleReader:
    """One read of Hubble lines: the endpoint table the rows refer to, and the paths that fill it.

    Not to be shared between threads: make one per file read (:func:`read` does).
    """

    def __init__(self, *, fast: bool = True) -> None:
        self.table = EndpointTable()
        self.fast = fast and hubble_fast.AVAILABLE
        self._rows = hubble_fast.FastRows(self.table)

    def fast_row(self, line: bytes, number: int) -> tuple[Any, ...] | BadLabels | Malformed | None:
        """The msgspec path on one line (:func:`netpolgen.ingest.hubble.fast.fast_row`)."""
        if not self.fast:
            return None
        answer = self._rows.row(line, number)
        if answer is HANDLED or answer is HANDLED_FULL:
            return self._rows.rows.pop()
        return answer  # type: ignore[no-any-return]

    def extract(
        self, flow: dict[str, Any], envelope: dict[str, Any], line: int
    ) -> tuple[Any, ...] | str:
        """The general path on one parsed flow (:func:`netpolgen.ingest.hubble.general.extract`)."""
        return extract(flow, envelope, line, self.table)

    def build(self, rows: list[tuple[Any, ...]], source: str, report: IngestReport) -> pd.DataFrame:
        """Rows of this reader -> a flow table (:func:`netpolgen.ingest.hubble.frame.build`)."""
        return build(rows, source, report, self.table)

    def merged_chunks(
        self,
        stream: BinaryIO,
        source: str,
        report: IngestReport,
        chunk_size: int,
        chunk_bytes: int | None,
        lines: LineCount | None = None,
    ) -> Iterator[pd.DataFrame]:
        """Chunks with the repeated observations *within* each merged; :func:`read` then merges
        them against the previous chunk. Worker processes run this on their part of a file."""
        for rows in self.row_batches(stream, source, report, chunk_size, chunk_bytes, lines):
            frame = self.build(rows, source, report)
            yield collapse_observations(frame.reset_index(drop=True), report, bucket=BUCKET)

    def row_batches(
        self,
        stream: BinaryIO,
        source: str,
        report: IngestReport,
        chunk_size: int,
        chunk_bytes: int | None = None,
        lines: LineCount | None = None,
    ) -> Iterator[list[tuple[Any, ...]]]:
        """The per-line part of :func:`read`: batches of extracted rows, cut every ``chunk_size``
        rows and at every ``chunk_bytes`` boundary of the input (see ``iter_json_lines``)."""
        chunk_size = max(1, min(chunk_size, MAX_JSON_CHUNK))
        fast_rows = self._rows
        # The fast paths append their rows to fast_rows.rows themselves (one list for every path,
        # in line order): the common line costs no step of this loop, and in blocks of lines that
        # msgspec decodes at once (fast_rows.block), no Python call of its own either.
        rows: list[tuple[Any, ...]] = []
        fast_rows.rows, fast_rows.limit = rows, chunk_size
        lost = 0
        # The cyclic garbage collector is paused while lines are read (restored at each batch
        # handed out): every row is a new tuple that its collections would revisit while the
        # batch grows, and no row or decoded struct is part of a cycle.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for line, value in iter_json_lines(
                stream, fast=fast_rows.row if self.fast else None, chunk_bytes=chunk_bytes,
                lines=lines, block=fast_rows.block if self.fast else None,
            ):  # fmt: skip
                if value is CUT:
                    # The DNS facts of the chunk's lines (held until here), then its rows.
                    report.dns_answers.extend(fast_rows.dns_rows())
                    if not rows:
                        continue
                elif value is not HANDLED_FULL:
                    lost += self._other(value, line, rows, source, report)
                    if len(rows) < chunk_size:
                        continue
                report.records_read += len(rows)  # every row kept is a record read
                batch, rows = rows, []
                fast_rows.rows = rows
                if collecting:
                    gc.enable()
                yield batch
                gc.disable()
        finally:
            if collecting:
                gc.enable()
        report.dns_answers.extend(fast_rows.dns_rows())
        if rows:
            report.records_read += len(rows)
            yield rows
        if lost:
            report_lost(report, source, lost)

    def _other(
        self, value: Any, line: int, rows: list[tuple[Any, ...]], source: str, report: IngestReport
    ) -> int:
        """A line the fast path did not keep: its row appended to ``rows`` (counted as read with
        its batch) or its record accounted for; returns the events Hubble says it lost."""
        if type(value) is tuple:  # the fast path's NO_IP (JSON values are never tuples)
            report.records_read += 1
            report.records_used += 1
            report.filter(NO_IP_REASON, 1)
            return 0
        if type(value) is Malformed:
            report.records_read += 1
            report.skip(value, source=source, line=line)
            return 0
        if type(value) is BadLabels:
            _report_invalid_labels(value.per_side, report, source, line)
            rows.append(value.row)
            return 0
        if isinstance(value, dict):
            # The general path's DNS facts, of any object (as read_dns_map takes them).
            report.dns_answers.extend(dns_rows(value))
        if isinstance(value, JSONLineError):
            report.records_read += 1
            report.skip("line is not valid JSON", source=source, line=line)
            return 0
        if not isinstance(value, dict):
            report.records_read += 1
            report.skip("not a JSON object", source=source, line=line)
            return 0
        flow = value.get("flow")
        if flow is None:
            if any(key in value for key in NON_FLOW_EVENTS):
                return _lost_events(value)
            if _FLOW_KEYS & value.keys():
                flow = value  # a bare Flow (legacy -o json)
        if not isinstance(flow, dict):
            report.records_read += 1
            report.skip("not a Hubble flow record", source=source, line=line)
            return 0
        row = self.extract(flow, value, line)
        if row is NO_IP:
            # Valid, but nothing a NetworkPolicy can use (ARP and other L2 events, socket
            # traces, an exporter field mask without IP): filtered, never a --strict error.
            report.records_read += 1
            report.records_used += 1
            report.filter(NO_IP_REASON, 1)
            return 0
        if isinstance(row, str):
            report.records_read += 1
            report.skip(row, source=source, line=line)
            return 0
        _note_invalid_labels(flow, report, source, line)
        rows.append(row)
        return 0


def report_lost(report: IngestReport, source: str, lost: int) -> None:
    """The note that Hubble lost events (the capture is incomplete)."""
    report.messages.append(
        f"{source}: Hubble reported {lost} lost event(s): the capture is incomplete"
    )


def _note_invalid_labels(
    flow: dict[str, Any], report: IngestReport, source: str, line: int
) -> None:
    """Report ``k8s:`` labels that are left out because Kubernetes would reject them."""
    bad = tuple(invalid_labels(flow.get(side)) for side in ("source", "destination"))
    _report_invalid_labels(bad, report, source, line)


def _report_invalid_labels(
    per_side: tuple[tuple[str, ...], ...], report: IngestReport, source: str, line: int
) -> None:
    for bad in per_side:
        if bad:
            report.note(
                INVALID_LABELS,
                f"{source}:{line}: invalid label(s) left out of selectors: {json.dumps(list(bad))}",
            )


def _lost_events(value: dict[str, Any]) -> int:
    lost = value.get("lost_events")
    if not isinstance(lost, dict):
        return 0
    try:
        return int(lost.get("num_events_lost", 0))
    except (TypeError, ValueError):
        return 0
