"""Accounting for ingest: every record read is used, skipped (with a reason) or filtered."""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from netpolgen.errors import InputError

# Keep the first few located messages per reason; the counts keep the rest.
MAX_MESSAGES_PER_REASON = 5
# How many of the addresses that matched nothing in the inventory ``-v`` lists (``-vv``: all).
UNMATCHED_SHOWN = 10
# A longer line is skipped without being read into memory whole (``--max-line-bytes``).
DEFAULT_MAX_LINE_BYTES = 1 << 20


@dataclass
class IngestReport:
    """What ingest read, used, skipped and filtered, per reason; filled in as records stream by.

    ``records_read == records_used + sum(skipped.values()) + sum(filtered.values())`` holds at the
    end of a run (``filtered`` is counted by the pipeline's filters, e.g. ``--namespace``).

    Examples:
        >>> report = IngestReport()
        >>> flows = load_flows("sample_flows/online-shop.csv", report=report)  # doctest: +SKIP
        >>> report.summary()  # doctest: +SKIP
        '423 records read from 1 file(s): 423 used, 0 skipped, 0 filtered'
    """

    strict: bool = False
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    files: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    records_read: int = 0
    records_used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    filtered: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    # Things changed on the way in without losing the record (invalid labels left out, ...).
    notes: Counter[str] = field(default_factory=Counter)
    # The DNS facts the Hubble reader met on its way, ``(ip, name, time, ttl)`` rows of
    # netpolgen.ingest.dns_answers.dns_rows: the DNS map of the same pass as the flows. Not
    # accounting; carried here because the report is what every reader, worker process and
    # Dask task already hands back and merges.
    dns_answers: list[tuple[str, str, str | None, int | None]] = field(default_factory=list)
    # Flow addresses the inventory matched to no pod, Service or node at the flow's time (the
    # resolver's; ``messages`` carries their count, ``-v`` lists them: :meth:`unmatched_text`).
    unmatched_addresses: set[str] = field(default_factory=set)
    # Examples behind a count the summary line gives (the records left out as undecided, ...):
    # the command line prints them with ``-v`` only, where ``messages`` are warnings always.
    details: list[str] = field(default_factory=list)

    def note(self, kind: str, message: str, count: int = 1) -> None:
        """Count ``count`` records changed on the way in; keep the first few messages per kind."""
        if self.notes[kind] < MAX_MESSAGES_PER_REASON:
            self.messages.append(message)
        self.notes[kind] += count

    def skip(self, reason: str, *, source: str, line: int | None, count: int = 1) -> None:
        """Count ``count`` skipped records; with ``strict`` the first one is an error."""
        if self.strict:
            raise InputError(
                reason, source=source, line=line, hint="without --strict it is skipped"
            )
        seen = self.skipped[reason]
        self.skipped[reason] += count
        if seen < MAX_MESSAGES_PER_REASON:
            where = f"{source}:{line}" if line is not None else source
            self.messages.append(f"{where}: skipped: {reason}")

    def filter(self, reason: str, count: int) -> None:
        """Move ``count`` used records to ``filtered``: valid, but left out by an option."""
        if count:
            self.filtered[reason] += count
            self.records_used -= count

    def fresh(self) -> IngestReport:
        """An empty report with the same settings (for a pass that may be retried)."""
        return IngestReport(strict=self.strict, max_line_bytes=self.max_line_bytes)

    def merge(self, other: IngestReport, line_offset: int = 0, source: str | None = None) -> None:
        """Add ``other``'s accounting to this report (files, counts, reasons, messages).

        ``line_offset`` shifts the line numbers of ``other``'s messages about ``source``: a part
        of a file read on its own counts lines from its start. Per reason, only the first
        :data:`MAX_MESSAGES_PER_REASON` skip messages are kept, as :meth:`skip` does.
        """
        for name in other.files:
            if name not in self.files:
                self.files.append(name)
        self.formats.update(other.formats)
        self.records_read += other.records_read
        self.records_used += other.records_used
        messages = other.messages
        if line_offset and source is not None:
            messages = [_shift_line(m, source, line_offset) for m in messages]
        for message in messages:
            reason = message.rsplit(": skipped: ", 1)[-1] if ": skipped: " in message else None
            if reason is not None and self.skipped[reason] >= MAX_MESSAGES_PER_REASON:
                continue
            if (
                reason is not None
                and sum(m.endswith(f": skipped: {reason}") for m in self.messages)
                >= MAX_MESSAGES_PER_REASON
            ):
                continue
            self.messages.append(message)
        self.skipped.update(other.skipped)
        self.filtered.update(other.filtered)
        self.notes.update(other.notes)
        self.dns_answers.extend(other.dns_answers)
        self.unmatched_addresses |= other.unmatched_addresses
        self.details.extend(d for d in other.details if d not in self.details)

    @property
    def records_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def records_filtered(self) -> int:
        return sum(self.filtered.values())

    def summary(self) -> str:
        """One line for standard error."""
        text = (
            f"{self.records_read} records read from {len(self.files)} file(s): "
            f"{self.records_used} used, {self.records_skipped} skipped, "
            f"{self.records_filtered} filtered"
        )
        details = [f"{n} {reason}" for reason, n in sorted(self.skipped.items())]
        details += [f"{n} {reason}" for reason, n in sorted(self.filtered.items())]
        if details:
            text += " (" + "; ".join(details) + ")"
        return text

    def unmatched_text(self, limit: int | None = UNMATCHED_SHOWN) -> str | None:
        """The addresses that matched nothing in the inventory, in address order, at most
        ``limit`` of them (``None``: all); ``None`` when there are none.

        Examples:
            >>> IngestReport(unmatched_addresses={"10.0.0.9", "10.0.0.10"}).unmatched_text(1)
            'inventory: unmatched addresses: 10.0.0.9 (and 1 more; -vv lists all)'
        """
        if not self.unmatched_addresses:
            return None
        ordered = sorted(self.unmatched_addresses, key=_address_order)
        shown = ordered if limit is None else ordered[:limit]
        text = "inventory: unmatched addresses: " + ", ".join(shown)
        if len(shown) < len(ordered):
            text += f" (and {len(ordered) - len(shown)} more; -vv lists all)"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "formats": dict(self.formats),
            "records_read": self.records_read,
            "records_used": self.records_used,
            "records_skipped": self.records_skipped,
            "records_filtered": self.records_filtered,
            "skipped": dict(sorted(self.skipped.items())),
            "filtered": dict(sorted(self.filtered.items())),
            "notes": dict(sorted(self.notes.items())),
        }


def _address_order(text: str) -> tuple[int, int, str]:
    """IPv4 before IPv6, numerically; anything unparsable last, as text."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return (7, 0, text)
    return (address.version, int(address), "")


def _shift_line(message: str, source: str, offset: int) -> str:
    prefix = f"{source}:"
    if not message.startswith(prefix):
        return message
    number, sep, rest = message[len(prefix) :].partition(":")
    if not sep or not number.isdigit():
        return message
    return f"{prefix}{int(number) + offset}:{rest}"
