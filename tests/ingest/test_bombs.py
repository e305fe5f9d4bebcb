"""Hostile archives: gzip bombs in flows and inventories stop with a clear error, in bounded
memory (issue 21).

What this encodes: gzip (RFC 1952, deflate) expands a run of zeros about 1,000 times, while real
flow logs and ``kubectl ... -o json`` expand 10-20 times (measured on the bundled samples); the
reader refuses a stream that expanded more than ``MAX_GZIP_RATIO`` times once 64 MiB came out.
Before, a 1.5 GB-of-zeros gzip given as ``-i`` was decompressed whole (5.1 GB peak).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from netpolgen.ingest.sources import MAX_GZIP_RATIO, RATIO_CHECK_AFTER
from tests.conftest import REPO, SAMPLE_FLOWS
from tests.peak import PEAK_RSS_KIB_EXPRESSION

pytestmark = pytest.mark.slow

# Run the CLI in a fresh interpreter that reports its own peak RSS (KiB on Linux) at exit.
RUN_AND_MEASURE = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: sys.stderr.write("
    "f'MAXRSS={" + PEAK_RSS_KIB_EXPRESSION + "}\\n'))\n"
    "from netpolgen.cli import main\n"
    "sys.argv = ['netpolgen', *sys.argv[1:]]\n"
    "main()\n"
)


def zeros_bomb(path: Path, megabytes: int, head: bytes = b"", fill: bytes = b"\x00") -> Path:
    """A gzip file of ``head`` then ``megabytes`` MiB of ``fill``, written without holding it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    block = fill * (1 << 20)
    with path.open("wb") as out:
        out.write(compressor.compress(head))
        for _ in range(megabytes):
            out.write(compressor.compress(block))
        out.write(compressor.flush())
    return path


def run(*args: str) -> tuple[int, str, int]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_MEASURE, *args],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    peak = int(done.stderr.rsplit("MAXRSS=", 1)[1].split()[0]) // 1024  # MiB
    return done.returncode, done.stderr, peak


def test_a_flow_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    bomb = zeros_bomb(tmp_path / "flows.csv.gz", 400, b"src_ip,dst_ip,dst_port\n")
    assert bomb.stat().st_size * MAX_GZIP_RATIO < 400 << 20  # it is one, by the rule
    code, stderr, peak = run("from-flows", str(bomb), "-o", str(tmp_path / "out"))
    assert code == 1, stderr
    assert "decompression bomb" in stderr and "flows.csv.gz" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
    assert peak < 600, f"peak RSS {peak} MiB"


def test_an_inventory_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    # Spaces, not zeros: JSON whitespace, so only the expansion gives it away.
    bomb = zeros_bomb(tmp_path / "inventory.json.gz", 300, b'{"kind": "List", "items": [', b" ")
    code, stderr, peak = run(
        "from-flows", str(SAMPLE_FLOWS / "three-tier.csv"), "-i", str(bomb), "-q"
    )
    assert code == 1, stderr
    assert "decompression bomb" in stderr and "inventory.json.gz" in stderr
    assert "Traceback" not in stderr
    assert peak < 600, f"peak RSS {peak} MiB"


def test_binary_inventory_is_refused_at_once(tmp_path: Path) -> None:
    from netpolgen.cluster.inventory import load_inventory
    from netpolgen.errors import InventoryError

    path = tmp_path / "inventory.json"
    path.write_bytes(bytes(4096))
    with pytest.raises(InventoryError, match="binary data"):
        load_inventory(path)
    with pytest.raises(InventoryError, match="binary data"):  # zeros, compressed: the same
        load_inventory(zeros_bomb(tmp_path / "zeros.json.gz", 300))


def test_a_real_compressed_log_is_read() -> None:
    """The bundled samples expand 10-20x: far from the limit, so nothing real is refused."""
    data = (SAMPLE_FLOWS / "online-shop.hubble.jsonl").read_bytes()
    assert len(data) / len(gzip.compress(data)) < MAX_GZIP_RATIO / 5
    assert RATIO_CHECK_AFTER >= 64 << 20
