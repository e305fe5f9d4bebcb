"""Failures that are not the input's fault: internal errors and writes that break half-way.

An internal error prints one line and the path of a crash report (``--debug`` shows the
traceback instead); a write that fails leaves the output directory as it was: absent, or the old
one, never half of the new one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import netpolgen.cli
import netpolgen.policy.write
from netpolgen import _workers
from netpolgen.cli import cli
from tests.conftest import REPO, SAMPLE_FLOWS

THREE_TIER = str(SAMPLE_FLOWS / "three-tier.csv")

# A child process whose YAML rendering (deep in the library) raises, then runs the real entry
# point: what a user sees when netpolgen has a bug.
_CRASHING = """
import sys
import netpolgen.policy.render as render

def broken(document):
    raise RuntimeError("simulated bug in rendering")

render.dump_yaml = broken
sys.argv = ["netpolgen", *sys.argv[1:]]
from netpolgen.cli import main
main()
"""


def _crash(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    env.pop("NETPOLGEN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", _CRASHING, *args],
        capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
    )  # fmt: skip


def test_internal_error_prints_a_short_message_and_a_crash_report(tmp_path: Path) -> None:
    result = _crash(tmp_path, "from-flows", THREE_TIER)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("Error: internal error in netpolgen; details in ")
    assert "--debug" in result.stderr
    reports = list(tmp_path.glob("netpolgen-crash-*.txt"))
    assert len(reports) == 1 and str(reports[0]) in result.stderr
    text = reports[0].read_text()
    assert "Traceback" in text and "simulated bug in rendering" in text


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = _crash(tmp_path, "--debug", "from-flows", THREE_TIER)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: simulated bug" in result.stderr
    assert not list(tmp_path.glob("netpolgen-crash-*.txt"))


def test_main_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         tmp_path: Path) -> None:  # fmt: skip
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(netpolgen, "generate_from_files", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["netpolgen", "from-flows", THREE_TIER])
    monkeypatch.delenv("NETPOLGEN_DEBUG", raising=False)
    # main() marks its process as the command line's (netpolgen._workers.keep_forkable): undone
    # after the test, so that the test process is not taken for one.
    monkeypatch.setattr(_workers, "_command_line", False)
    for name in ("OPENBLAS_NUM_THREADS", "JE_ARROW_MALLOC_CONF"):
        monkeypatch.delenv(name, raising=False)  # as it was, also if main() sets it
    with pytest.raises(SystemExit) as exit_info:
        netpolgen.cli.main()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "internal error" in captured.err and "Traceback" not in captured.err
    assert "RuntimeError: boom" in next(tmp_path.glob("netpolgen-crash-*.txt")).read_text()


def test_input_errors_are_not_crashes(tmp_path: Path) -> None:
    result = _crash(tmp_path, "from-flows", str(tmp_path / "missing.csv"))
    assert result.returncode == 2  # a missing file is a usage error in every command
    assert "no such file" in result.stderr and "internal error" not in result.stderr
    assert not list(tmp_path.glob("netpolgen-crash-*.txt"))


def _failing_writes(allowed: int, error: BaseException) -> Any:
    """A ``Path.write_text`` that fails with ``error`` after ``allowed`` files."""
    original = Path.write_text
    left = [allowed]

    def write_text(path: Path, *args: Any, **kwargs: Any) -> int:
        if left[0] <= 0:
            raise error
        left[0] -= 1
        return original(path, *args, **kwargs)

    return write_text


@pytest.mark.parametrize(
    "error", [OSError(28, "No space left on device"), RuntimeError("bug"), KeyboardInterrupt()]
)
def test_a_write_that_fails_half_way_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    out = tmp_path / "policies"
    monkeypatch.setattr(Path, "write_text", _failing_writes(2, error))
    result = CliRunner().invoke(cli, ["from-flows", THREE_TIER, "-o", str(out)])
    assert result.exit_code != 0
    if isinstance(error, OSError):
        assert result.exit_code == 1
        assert "cannot write output: No space left on device" in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [], "no staging directory left behind"


def test_a_failed_replacement_keeps_the_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "policies"
    assert CliRunner().invoke(cli, ["from-flows", THREE_TIER, "-o", str(out)]).exit_code == 0
    before = {p.relative_to(out): p.read_text() for p in out.rglob("*.yaml")}
    monkeypatch.setattr(Path, "write_text", _failing_writes(1, OSError(5, "Input/output error")))
    result = CliRunner().invoke(
        cli, ["from-flows", THREE_TIER, "--no-egress", "-o", str(out), "--force"]
    )
    assert result.exit_code == 1 and "cannot write output" in result.stderr
    assert {p.relative_to(out): p.read_text() for p in out.rglob("*.yaml")} == before
    assert [p.name for p in tmp_path.iterdir()] == ["policies"]


@pytest.mark.parametrize("exchange", ["fails", "unsupported"])
def test_a_failed_final_rename_keeps_the_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: str
) -> None:
    """The swap of the staged and the old directory fails (renameat2's exchange), or the
    system has none and the second of the two renames of the fallback fails."""
    out = tmp_path / "policies"
    assert CliRunner().invoke(cli, ["from-flows", THREE_TIER, "-o", str(out)]).exit_code == 0
    before = {p.relative_to(out): p.read_text() for p in out.rglob("*.yaml")}
    original = Path.rename

    def rename(self: Path, target: Any) -> Path:
        if self.name.startswith(".policies.") and ".old." not in self.name:
            raise OSError(18, "Invalid cross-device link")
        return original(self, target)

    def failed_exchange(first: Path, second: Path) -> bool:
        if exchange == "unsupported":
            return False
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(Path, "rename", rename)
    monkeypatch.setattr(netpolgen.policy.write, "exchange", failed_exchange)
    result = CliRunner().invoke(
        cli, ["from-flows", THREE_TIER, "--no-egress", "-o", str(out), "--force"]
    )
    assert result.exit_code == 1
    assert "cannot write output: Invalid cross-device link" in result.stderr
    assert {p.relative_to(out): p.read_text() for p in out.rglob("*.yaml")} == before
    assert [p.name for p in tmp_path.iterdir()] == ["policies"]


def test_output_inside_a_file_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["from-flows", THREE_TIER, "-o", str(blocker / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot create output" in result.stderr


def test_deeply_nested_json_lines_without_orjson(tmp_path: Path) -> None:
    # The stdlib parser (the fallback when the fast extra is missing) recurses.
    flows = tmp_path / "deep.jsonl"
    good = (REPO / "tests" / "data" / "ingest" / "hubble-edge-cases.jsonl").read_text()
    flows.write_text('{"flow": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}\n" + good)
    script = (
        "import sys; sys.modules['orjson'] = None\n"
        "sys.argv = ['netpolgen', *sys.argv[1:]]\n"
        "from netpolgen.cli import main; main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script, "from-flows", str(flows), "-f", "hubble"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "deep.jsonl:1: skipped: line is not valid JSON" in result.stderr
    assert not list(tmp_path.glob("netpolgen-crash-*"))
