"""The samples every flavour is checked on: the repository's and the shared ones."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SAMPLE_FLOWS, SHARED_SAMPLES

SAMPLES: list[Path] = sorted(
    [*SAMPLE_FLOWS.glob("*.csv"), *SAMPLE_FLOWS.glob("*.jsonl")]
    + [
        p
        for folder in ("aws", "azure", "hubble")
        for p in (SHARED_SAMPLES / folder).glob("*")
        if p.is_file()
    ]
)


def sample_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"
