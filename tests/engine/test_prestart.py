"""How worker processes start (netpolgen._workers): forked from the command's process while it
runs a single thread (Linux), else from a fork server that starts before the pipeline is
imported, for an input the Hubble reader will cut into parts (prestart), and only then."""

from __future__ import annotations

import os
import subprocess
import sys
from multiprocessing import forkserver
from pathlib import Path

import pytest

from netpolgen import _workers
from netpolgen.engine import local
from netpolgen.ingest import hubble


def test_the_threshold_is_the_readers_two_chunks() -> None:
    assert _workers.HUBBLE_PARALLEL_BYTES == 2 * hubble.CHUNK_BYTES + 1
    assert local.MIN_PARALLEL_BYTES >= _workers.HUBBLE_PARALLEL_BYTES


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    calls: list[bool] = []
    monkeypatch.setattr(forkserver, "ensure_running", lambda: calls.append(True))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr(_workers, "_forks_workers", lambda: False)  # a system that cannot fork
    return calls


def _sparse(path: Path, head: bytes, size: int) -> Path:
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(size)  # sparse: no disk is written
    return path


def test_a_big_json_lines_file_starts_the_server(tmp_path: Path, started: list[bool]) -> None:
    big = _sparse(tmp_path / "big.jsonl", b'{"flow": {}}\n', _workers.HUBBLE_PARALLEL_BYTES)
    assert _workers.prestart(["-", str(tmp_path / "missing"), str(big)], None)
    assert started == [True]


def test_nothing_starts_for_small_files_text_or_one_worker(
    tmp_path: Path, started: list[bool]
) -> None:
    size = _workers.HUBBLE_PARALLEL_BYTES
    small = _sparse(tmp_path / "small.jsonl", b'{"flow": {}}\n', size - 1)
    csv = _sparse(tmp_path / "big.csv", b"time,src_ip\n", size)
    big = _sparse(tmp_path / "big.jsonl", b'{"flow": {}}\n', size)
    assert not _workers.prestart([str(small), str(csv), str(tmp_path)], None)
    assert not _workers.prestart([str(big)], 1)
    assert started == []


def test_no_server_where_workers_are_forked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(forkserver, "ensure_running", lambda: calls.append(True))
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr(_workers, "_forks_workers", lambda: True)
    big = _sparse(tmp_path / "big.jsonl", b'{"flow": {}}\n', _workers.HUBBLE_PARALLEL_BYTES)
    assert not _workers.prestart([str(big)], None)
    assert calls == []


def _python(code: str, **env: str) -> str:
    """``code`` run by a fresh interpreter (its own threads only), with ``env`` added."""
    environment = {
        key: value for key, value in os.environ.items()
        if key not in ("OPENBLAS_NUM_THREADS", "JE_ARROW_MALLOC_CONF")
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", code], env={**environment, **env},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return result.stdout


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks on Linux")


@linux_only
def test_the_command_line_stays_forkable_after_loading_numpy_and_arrow() -> None:
    # NumPy's OpenBLAS and Arrow's jemalloc start threads as they load (tests/engine: without
    # keep_forkable, forking_is_safe is False), which would make every pool a fork server's.
    code = (
        "from netpolgen._workers import forking_is_safe, keep_forkable, worker_context\n"
        "keep_forkable()\n"
        "import numpy, pyarrow, pandas\n"
        "print(forking_is_safe(), worker_context().get_start_method())\n"
    )
    assert _python(code).split() == ["True", "fork"]
    code_without = code.replace("keep_forkable()\n", "")
    assert _python(code_without).split() == ["False", "forkserver"]


@linux_only
def test_a_users_library_settings_stay_theirs() -> None:
    code = (
        "import os\nfrom netpolgen._workers import keep_forkable\nkeep_forkable()\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], os.environ['JE_ARROW_MALLOC_CONF'])\n"
    )
    assert _python(code, OPENBLAS_NUM_THREADS="4").split() == ["4", "background_thread:false"]


@linux_only
def test_a_thread_running_means_no_fork() -> None:
    code = (
        "import threading, time\nfrom netpolgen._workers import forking_is_safe\n"
        "print(forking_is_safe())\n"
        "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "print(forking_is_safe())\n"
    )
    assert _python(code).split() == ["True", "False"]


@linux_only
def test_only_the_command_lines_objects_are_frozen_before_a_fork() -> None:
    code = (
        "import gc\nfrom netpolgen import _workers\n{setup}"
        "_workers.fork_context()\nprint(gc.get_freeze_count() > 0)\n"
    )
    assert _python(code.format(setup="_workers.keep_forkable()\n")).split() == ["True"]
    assert _python(code.format(setup="")).split() == ["False"]  # a library caller's process


def test_the_collector_rests_while_the_pipeline_loads() -> None:
    """netpolgen's lazy attributes import the pipeline with the cyclic collector paused: then
    it is as it was (enabled, or a caller's disabled one stays so), and only the command
    line's process freezes what the import made."""
    code = (
        "import gc\nfrom netpolgen import _workers\n{setup}"
        "seen = []\ngc.callbacks.append(lambda phase, info: seen.append(phase))\n"
        "import netpolgen\nnetpolgen.generate_from_files\n"
        "print(gc.get_freeze_count() > 0, gc.isenabled(), seen.count('start'))\n"
    )
    command_line = _python(code.format(setup="_workers.keep_forkable()\n")).split()
    library = _python(code.format(setup="")).split()
    # The import of pandas and the readers alone ran some twenty collections before. After
    # it, a caller's collector takes the young objects once (nothing was frozen for it).
    assert command_line == ["True", "True", "0"]
    assert library[:2] == ["False", "True"] and int(library[2]) <= 1
    assert _python(code.format(setup="gc.disable()\n")).split() == ["False", "False", "0"]


@linux_only
def test_a_forked_worker_does_not_keep_the_commands_sigterm_handler() -> None:
    # The command line turns SIGTERM into "terminated" (exit 143); a worker forked from it
    # that kept the handler would report a worker sent SIGTERM as the whole command's end.
    code = (
        "import signal\nfrom concurrent.futures import ProcessPoolExecutor\n"
        "from netpolgen._workers import keep_forkable\nkeep_forkable()\n"
        "from netpolgen.engine.processes import worker_context, worker_started\n"
        "def handler(*_):\n    raise SystemExit(143)\n"
        "def sigterm(_):\n    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n"
        "signal.signal(signal.SIGTERM, handler)\n"
        "with ProcessPoolExecutor(1, mp_context=worker_context(), initializer=worker_started)"
        " as pool:\n"
        "    print(pool._mp_context.get_start_method(), pool.submit(sigterm, 0).result())\n"
    )
    assert _python(code).split() == ["fork", "True"]
