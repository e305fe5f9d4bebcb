"""What a run did with every record, for people (one line) and for programs (JSON).

The invariant ``records_read == records_used + skipped + filtered`` (:class:`IngestReport`) is
what lets a user trust that nothing disappeared unseen; this module turns it into the summary
that commands print, and into the one decision about it that is not just reporting: a run left
with no usable flow at all is an error (:func:`require_usable_flows`), because an empty policy
set written with exit code 0 looks exactly like success.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from netpolgen.errors import NoUsableFlowsError
from netpolgen.ingest.report import IngestReport

# Filter reasons that an option controls, and the option that lets such records through.
_OPTION_HINTS = {
    "denied verdict": "denied flows are left out unless --include-denied",
    "edge below --min-count": "lower --min-count",
    "denied by a guardrail": "the warnings name the --guardrails deny entries that matched",
}


def is_balanced(report: IngestReport) -> bool:
    """Whether every record read is accounted for as used, skipped or filtered."""
    return report.records_read == (
        report.records_used + report.records_skipped + report.records_filtered
    )


def require_usable_flows(report: IngestReport) -> None:
    """Raise :class:`NoUsableFlowsError` when no record was left to generate policies from.

    The message names the files and every reason records were skipped or filtered, so that the
    user sees at once whether the input is wrong (all skipped) or an option left everything out.
    """
    if report.records_used > 0:
        return
    files = ", ".join(report.files) or "the input"
    reasons = [f"{n} skipped: {r}" for r, n in sorted(report.skipped.items())]
    reasons += [f"{n} filtered: {r}" for r, n in sorted(report.filtered.items())]
    detail = "; ".join([f"{report.records_read} record(s) read", *reasons])
    hints = [h for reason, h in _OPTION_HINTS.items() if report.filtered.get(reason)]
    if report.records_skipped:
        hints.append("the first skipped lines are named in the warnings (hidden by -q)")
    raise NoUsableFlowsError(
        f"no usable flows in {files}: {detail}",
        hint="; ".join(hints) or None,
    )


def summary_dict(
    report: IngestReport, warnings: Iterable[str] = (), **extra: Any
) -> dict[str, Any]:
    """The accounting as a JSON-ready dict: the report's counts and reasons, its located
    messages and details, the run's warnings, whether the counts balance, and ``extra`` fields."""
    data = report.to_dict()
    data["balanced"] = is_balanced(report)
    data["messages"] = list(report.messages)
    data["details"] = list(report.details)
    data["warnings"] = list(warnings)
    data.update(extra)
    return data


def summary_json(report: IngestReport, warnings: Iterable[str] = (), **extra: Any) -> str:
    """:func:`summary_dict` as one line of JSON (for ``--summary json`` on standard error)."""
    return json.dumps(summary_dict(report, warnings, **extra), sort_keys=True)
