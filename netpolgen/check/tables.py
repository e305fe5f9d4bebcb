"""Plain text and markdown tables for reports (verify, diff, migrate)."""

from __future__ import annotations

import pandas as pd


def render_table(frame: pd.DataFrame, *, markdown: bool = False, limit: int = 50) -> str:
    """A DataFrame as an aligned text table or a Markdown table (first ``limit`` rows)."""
    shown = frame.head(limit)
    header = [str(c) for c in shown.columns]
    body = [
        ["" if pd.isna(v) else str(v) for v in row]
        for row in shown.astype(object).itertuples(index=False)
    ]
    more = f"... {len(frame) - limit} more rows\n" if len(frame) > limit else ""
    if markdown:

        def esc(text: str) -> str:
            return text.replace("|", "\\|")

        lines = ["| " + " | ".join(esc(h) for h in header) + " |"]
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in body]
        return "\n".join(lines) + "\n" + more
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines) + "\n" + more
