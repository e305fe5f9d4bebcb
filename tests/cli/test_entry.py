"""The program's entry point (netpolgen.cli.entry): main, then the process ends without the
interpreter's tear-down. What a user sees must not change: the exit status, every byte of
output (also through a pipe, where standard output is block-buffered), and the exit handlers
that libraries registered (multiprocessing's, dask's, coverage's) still run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from netpolgen.cli import EXIT_ERROR
from tests.faults.helpers import THREE_TIER


def _program(*args: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    code = prefix + "import sys\nsys.argv = ['netpolgen', *sys.argv[1:]]\n"
    code += "from netpolgen.cli import entry\nentry()\n"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_every_byte_of_a_piped_output_arrives() -> None:
    through_main = subprocess.run(
        [sys.executable, "-c", "import sys\nsys.argv = ['netpolgen', *sys.argv[1:]]\n"
         "from netpolgen.cli import main\nmain()\n", "from-flows", str(THREE_TIER), "-o", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    result = _program("from-flows", str(THREE_TIER), "-o", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == through_main.stdout and "kind: NetworkPolicy" in result.stdout
    assert result.stderr == through_main.stderr


def test_the_exit_status_is_mains() -> None:
    assert _program("--version").returncode == 0
    assert _program("from-flows", "--no-such-option").returncode == 2
    missing = _program("from-flows", "/nonexistent/flows.csv")
    assert missing.returncode == 2 and "Error" in missing.stderr


def test_a_message_given_to_exit_is_printed() -> None:
    stop = "def stop():\n    raise SystemExit('bye')\n"
    result = _program(prefix=f"import netpolgen.cli as c\n{stop}c.main = stop\n")
    assert result.returncode == EXIT_ERROR and result.stderr == "bye\n"


def test_exit_handlers_still_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    prefix = f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).touch)\n"
    assert _program("--version", prefix=prefix).returncode == 0
    assert marker.exists()
