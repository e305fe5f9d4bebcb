"""The allocator thresholds are set where glibc is, and nowhere else."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from netpolgen._memory import tune_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_thresholds_are_set_on_glibc() -> None:
    # In a process of its own: the setting is process-wide, and this test run's is left alone.
    code = "from netpolgen._memory import tune_allocator; print(tune_allocator())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr


def test_nothing_is_set_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert tune_allocator() is False
