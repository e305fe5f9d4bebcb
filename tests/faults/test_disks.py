"""A full disk (ENOSPC) or a read-only one (EROFS) while writing (issue 21): exit 1, one line
naming the path, nothing partial left, an existing output as it was.

Two ways: a fake at the write layer (the file objects netpolgen writes through raise the
error; in process), and real file systems, where root may mount them: a 64 KiB tmpfs filled
to the last page, and a read-only bind mount. Each case writes one of the outputs: a policy
directory, one YAML file, a JUnit file, a report page, the spool of standard input, the crash
report.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from netpolgen.cli import cli
from tests.faults.helpers import THREE_TIER, cli_env, run, snapshot

ERRORS = {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}


class _FailingFile(io.RawIOBase):
    """A writable file whose writes fail with ``code`` (what a full or read-only disk does
    to a write(2) once the file is open)."""

    def __init__(self, inner: Any, code: int) -> None:
        self.inner, self.code = inner, code

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(self.code, os.strerror(self.code))

    def close(self) -> None:
        self.inner.close()
        super().close()


def _fail_fdopen(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    original = os.fdopen

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = original(fd, mode, *args, **kwargs)
        return _FailingFile(handle, code) if "w" in mode else handle

    monkeypatch.setattr(os, "fdopen", fdopen)


def _fail_path_writes(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def write_text(self: Path, *args: Any, **kwargs: Any) -> int:
        self.touch()  # created, then the write fails
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Path, "write_text", write_text)


def _fail_spool(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    original = Path.open

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = original(self, mode, *args, **kwargs)
        return _FailingFile(handle, code) if mode == "wb" else handle

    monkeypatch.setattr(Path, "open", open_)


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    out = tmp_path / "policies"
    assert CliRunner().invoke(cli, ["from-flows", str(THREE_TIER), "-o", str(out)]).exit_code == 0
    return out


@pytest.mark.parametrize("code", sorted(ERRORS))
@pytest.mark.parametrize("case", ["dir", "yaml", "junit", "report", "spool"])
def test_a_failing_write_is_one_line_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policies: Path, case: str, code: int
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    stdin = None
    if case == "dir":
        target = work / "out"
        assert CliRunner().invoke(cli, ["from-flows", str(THREE_TIER), "-o", str(target)])
        args = ["from-flows", str(THREE_TIER), "--no-egress", "--force", "-o", str(target)]
        _fail_path_writes(monkeypatch, code)
    elif case == "yaml":
        target = work / "out.yaml"
        target.write_text("old\n")
        args = ["from-flows", str(THREE_TIER), "--force", "-o", str(target)]
        _fail_fdopen(monkeypatch, code)
    elif case == "junit":
        target = work / "verify.xml"
        args = ["verify", str(THREE_TIER), "--policies", str(policies), "--junit", str(target)]
        _fail_fdopen(monkeypatch, code)
    elif case == "report":
        target = work / "page.html"
        target.write_text("old\n")
        args = ["report", str(THREE_TIER), "-o", str(target)]
        _fail_fdopen(monkeypatch, code)
    else:
        target = work / "spool"  # the spool's directory, under TMPDIR
        monkeypatch.setattr(tempfile, "tempdir", str(target))
        target.mkdir()
        args = ["from-flows", "-", "-o", str(work / "out")]
        stdin = THREE_TIER.read_bytes()
        _fail_spool(monkeypatch, code)
    before = {p.name: snapshot(p) for p in work.iterdir()}
    result = CliRunner().invoke(cli, args, input=stdin)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert str(target) in lines[0] and ERRORS[code] in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert {p.name: snapshot(p) for p in work.iterdir()} == before, "something partial stayed"


# Real file systems: root mounts a small tmpfs and a read-only bind mount (skipped elsewhere).


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip(f"cannot mount ({result.stderr.strip() or 'not root'})")


@contextlib.contextmanager
def _mounted(point: Path, *args: str) -> Iterator[Path]:
    point.mkdir(parents=True, exist_ok=True)
    _mount(*args, str(point))
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)


@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs with an old output on it, then filled to its last page."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    with _mounted(tmp_path / "full", "-t", "tmpfs", "-o", "size=64k", "tmpfs") as point:
        _old_outputs(point)
        with contextlib.suppress(OSError), (point / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield point


@pytest.fixture()
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A directory with an old output in it, mounted read-only."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root on Linux")
    source = tmp_path / "source"
    source.mkdir()
    _old_outputs(source)
    with _mounted(tmp_path / "ro", "--bind", str(source)) as point:
        _mount("-o", "remount,ro,bind", str(point))
        yield point


def _old_outputs(directory: Path) -> None:
    (directory / "out").mkdir()
    (directory / "out" / "old.yaml").write_text("kind: NetworkPolicy\n")
    (directory / "out.yaml").write_text("old\n")
    (directory / "page.html").write_text("<html>old</html>\n")


# TMPDIR is not enough: tempfile skips a directory it cannot write to and falls back to /tmp.
# Here the temporary directory is the disk, as when TMPDIR fills up during the run.
_PINNED = "import sys, tempfile\ntempfile.tempdir = sys.argv.pop(1)\n"
_CRASHING = (
    _PINNED
    + """
import netpolgen.policy.render as render

def broken(document):
    raise RuntimeError("simulated bug")

render.dump_yaml = broken
sys.argv = ["netpolgen", *sys.argv[1:]]
from netpolgen.cli import main
main()
"""
)


def _real_case(disk: Path, case: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``case`` writing onto ``disk``; TMPDIR is on ``disk`` for the spool and crash."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir(exist_ok=True)
    if case == "dir":
        return run(["from-flows", str(THREE_TIER), "--force", "-o", str(disk / "out")], work, tmp)
    if case == "yaml":
        args = ["from-flows", str(THREE_TIER), "--force", "-o", str(disk / "out.yaml")]
        return run(args, work, tmp)
    if case == "junit":
        policies = work / "policies"
        assert run(["from-flows", str(THREE_TIER), "-o", str(policies)], work, tmp).returncode == 0
        args = ["verify", str(THREE_TIER), "--policies", str(policies), "--junit"]
        return run([*args, str(disk / "verify.xml")], work, tmp)
    if case == "report":
        return run(["report", str(THREE_TIER), "-o", str(disk / "page.html")], work, tmp)
    if case == "spool":  # more standard input than the disk holds
        big = work / "big.csv"
        lines = THREE_TIER.read_text().splitlines(keepends=True)
        big.write_text(lines[0] + "".join(lines[1:]) * 200)
        args = ["from-flows", "-", "-o", str(work / f"out-{uuid.uuid4().hex}")]
        with big.open("rb") as feed:
            return subprocess.run(
                [sys.executable, "-c", _MAIN_TEXT, str(disk), *args], stdin=feed,
                capture_output=True, text=True, cwd=work, env=cli_env(tmp), timeout=180,
            )  # fmt: skip
    assert case == "crash"
    return subprocess.run(
        [sys.executable, "-c", _CRASHING, str(disk), "from-flows", str(THREE_TIER)],
        capture_output=True, text=True, cwd=work, env=cli_env(tmp), timeout=180,
    )  # fmt: skip


_MAIN_TEXT = (
    _PINNED + "sys.argv = ['netpolgen', *sys.argv[1:]]\nfrom netpolgen.cli import main; main()\n"
)
REAL_CASES = ["dir", "yaml", "junit", "report", "spool", "crash"]


@pytest.mark.parametrize("case", REAL_CASES)
def test_a_full_tmpfs(full_disk: Path, tmp_path: Path, case: str) -> None:
    _check_real(full_disk, case, tmp_path, ERRORS[errno.ENOSPC])


@pytest.mark.parametrize("case", REAL_CASES)
def test_a_read_only_mount(read_only_disk: Path, tmp_path: Path, case: str) -> None:
    _check_real(read_only_disk, case, tmp_path, ERRORS[errno.EROFS])


def _check_real(disk: Path, case: str, tmp_path: Path, reason: str) -> None:
    before = {p.name: snapshot(p) for p in disk.iterdir()}
    result = _real_case(disk, case, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert reason in lines[0] and str(disk) in lines[0], lines[0]
    assert {p.name: snapshot(p) for p in disk.iterdir()} == before, "something partial stayed"
