"""Helpers for the ingest tests: fixture paths and a reader that returns the report too."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from netpolgen.ingest import load_flows
from netpolgen.ingest.report import IngestReport

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"
# ../shared/samples beside the checkout: real public samples, read in place, never copied.
SHARED_SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"


def read(
    path: str | Path, format: str = "auto", strict: bool = False
) -> tuple[pd.DataFrame, IngestReport]:
    """Load a flow file, returning the flow table and the ingest report."""
    report = IngestReport(strict=strict)
    flows = load_flows(str(path), format, report=report)
    return flows, report


def balanced(report: IngestReport) -> bool:
    """The accounting invariant: every record read is used, skipped or filtered."""
    return report.records_read == (
        report.records_used + report.records_skipped + report.records_filtered
    )


def row(flows: pd.DataFrame, **match: object) -> pd.Series:
    """The single row whose columns equal ``match``."""
    mask = pd.Series(True, index=flows.index)
    for column, value in match.items():
        mask &= (flows[column] == value).fillna(False).astype(bool)
    found = flows[mask]
    assert len(found) == 1, f"{len(found)} rows match {match}"
    return found.iloc[0]
