"""Running the real entry point in a child process, and comparing outputs byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, SAMPLE_FLOWS

THREE_TIER = SAMPLE_FLOWS / "three-tier.csv"
# The entry point console_scripts runs: main() installs the signal handlers and the crash report.
MAIN = (
    "import sys\nsys.argv = ['netpolgen', *sys.argv[1:]]\nfrom netpolgen.cli import main\nmain()\n"
)

Snapshot = dict[str, bytes] | bytes | None


def cli_env(tmpdir: Path, fault: str | None = None) -> dict[str, str]:
    """The child's environment: this checkout first on the path, its own TMPDIR (where the
    spool of standard input and crash reports go, so that leftovers can be seen), and the
    test-only fault hook (netpolgen._faults) when asked for."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmpdir)}
    env.pop("NETPOLGEN_DEBUG", None)
    env.pop("NETPOLGEN_TEST_FAULT", None)
    if fault is not None:
        env["NETPOLGEN_TEST_FAULT"] = fault
    return env


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-c", MAIN, *args]


def run(
    args: list[str],
    cwd: Path,
    tmpdir: Path,
    *,
    fault: str | None = None,
    stdin: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    tmpdir.mkdir(parents=True, exist_ok=True)
    with open(stdin if stdin is not None else os.devnull, "rb") as feed:
        return subprocess.run(
            command(args), stdin=feed, capture_output=True, text=True, cwd=cwd,
            env=cli_env(tmpdir, fault), timeout=timeout,
        )  # fmt: skip


def snapshot(path: Path) -> Snapshot:
    """A file's bytes, a directory's files (relative path -> bytes), or None when absent."""
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    """The entries of ``directory`` other than ``keep`` (staging copies, spools)."""
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)
