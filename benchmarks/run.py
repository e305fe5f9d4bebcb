"""Benchmark: ``netpolgen from-flows`` (and ``verify`` when available) on synthetic logs.

For each corpus (CSV, two Hubble corpora, AWS VPC text) it writes a log of the chosen size with
``benchmarks/generate.py``: ``hubble`` is the original synthetic corpus, ``hubble-real`` is
shaped like a real Cilium 1.16 ``hubble observe -o jsonpb`` capture (every field, trace points
on both nodes, policy verdicts, drops, L7 DNS/HTTP, aggregated exporter records; see
``benchmarks/hubble_real.py``). It times on that same file

* the **floor**: a bare parse (pyarrow's CSV reader for CSV and VPC text, ``orjson.loads`` line by
  line for Hubble), in a subprocess; for CSV and VPC text also the **streaming floor**, pyarrow's
  streaming reader (``open_csv``), which holds a few blocks at a time as from-flows does, where
  the first holds the whole table (the from-flows row's note gives the ratio to it);
* **from-flows** end to end through the CLI in a subprocess (policies written to a directory);
* **verify** of those policies against the same flows, if this checkout has ``netpolgen.verify``
  with a ``verify`` function,

and prints seconds, records per second, peak memory (the largest resident set of the process
tree, sampled every 100 ms) and our time as a ratio to the floor. With ``--repeat N`` each
step runs N times and the median is reported (the machine may be shared). It also times
``netpolgen --help`` (the command line's start-up).

Usage::

    python benchmarks/run.py                         # full size: 1M Hubble, 10M CSV and AWS
    python benchmarks/run.py --quick                 # CI size (seconds)
    python benchmarks/run.py --formats hubble,hubble-real --records 200000 --repeat 3
    python benchmarks/run.py --size 500MB            # every format at about this file size
    python benchmarks/run.py --workdir /tmp/b --reuse  # keep the logs, and reuse them next time
    python benchmarks/run.py --formats hubble-real --records 200000 \
        --audit2policy "$(which hubble-audit2policy)"  # the peer of PEERS.md on the same file
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

FULL_RECORDS = {"hubble": 1_000_000, "hubble-real": 1_000_000, "csv": 10_000_000,
                "aws-vpc": 10_000_000}  # fmt: skip
QUICK_RECORDS = {"hubble": 4_000, "hubble-real": 4_000, "csv": 20_000, "aws-vpc": 20_000}
BYTES_PER_RECORD = {"hubble": 1967, "hubble-real": 2193, "csv": 390, "aws-vpc": 112}
SUFFIX = {"hubble": "jsonl", "hubble-real": "real.jsonl", "csv": "csv", "aws-vpc": "log"}
# The reader a corpus is for (hubble-real is Hubble output too).
READER = {"hubble-real": "hubble"}

FLOOR_CODE: dict[str, str] = {
    "hubble": (
        "import orjson,sys\n"
        "n=0\n"
        "with open(sys.argv[1],'rb') as f:\n"
        "    for line in f:\n"
        "        orjson.loads(line); n+=1\n"
    ),
    "csv": ("import pyarrow.csv as c,sys\nt=c.read_csv(sys.argv[1])\n"),
    "aws-vpc": (
        "import pyarrow.csv as c,sys\n"
        "t=c.read_csv(sys.argv[1],parse_options=c.ParseOptions(delimiter=' '))\n"
    ),
}


FLOOR_CODE["hubble-real"] = FLOOR_CODE["hubble"]
# A second floor for the Arrow formats: pyarrow's streaming reader over the file's record
# batches, which like from-flows holds a few blocks at a time (~150 MB), where read_csv holds the
# whole table (2.9 GB for 3M CSV records) and parses it on every core.
STREAMING_FLOOR_CODE: dict[str, str] = {
    "csv": "import pyarrow.csv as c,sys\nfor b in c.open_csv(sys.argv[1]): pass\n",
    "aws-vpc": (
        "import pyarrow.csv as c,sys\n"
        "o=c.ParseOptions(delimiter=' ')\n"
        "for b in c.open_csv(sys.argv[1],parse_options=o): pass\n"
    ),
}


@dataclass
class Measure:
    seconds: float
    peak_rss: int  # bytes, largest sum over the process tree
    returncode: int
    stderr: str
    # user + system seconds of the process tree: each process's last sample (a process that
    # ends between two samples loses at most 100 ms of its time). Against the wall time it says
    # how well the cores were used: cpu / cores is the wall time of a perfect overlap.
    cpu_seconds: float = 0.0


def measure(command: list[str], env: dict[str, str] | None = None) -> Measure:
    """Run ``command``, sampling the RSS of it and its children (100 ms; children looked for at
    each sample for 3 s, then each second).

    Sampling is kept sparse so that it takes no noticeable CPU from the measured run. The end
    is taken when the process ends (a thread waits for it), not at the next sample: a poll
    every 100 ms would add 0-100 ms to every time, floor and ours alike.
    """
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO
    )
    ended = threading.Event()
    end = [0.0]
    errors: list[bytes] = []

    def wait_for_the_end() -> None:  # reading stderr meanwhile: a full pipe would stall it
        errors.append(process.communicate()[1] or b"")
        end[0] = time.perf_counter()
        ended.set()

    threading.Thread(target=wait_for_the_end, daemon=True).start()
    peak = 0
    root = psutil.Process(process.pid)
    tree = [root]
    cpu: dict[int, float] = {}
    ticks = 0
    while not ended.is_set():
        try:
            # Every sample in the first 3 s (workers start then, and a short run would end
            # before a later look found them), then each second.
            if ticks < 30 or ticks % 10 == 0:
                tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        for member in tree:
            try:
                times = member.cpu_times()
                cpu[member.pid] = times.user + times.system
            except psutil.Error:
                pass
        ticks += 1
        ended.wait(0.1)
    seconds = end[0] - start
    return Measure(seconds, peak, process.returncode, errors[0].decode(), sum(cpu.values()))


def median_measure(command: list[str], env: dict[str, str] | None, repeat: int) -> Measure:
    """The run of median time among ``repeat`` runs of ``command`` (its peak RSS with it)."""
    runs = sorted((measure(command, env) for _ in range(max(1, repeat))), key=lambda m: m.seconds)
    failed = [m for m in runs if m.returncode not in (0, 3)]
    return failed[0] if failed else runs[(len(runs) - 1) // 2]


STARTUP_ARGS = {"--help": ["--help"], "--version": ["--version"],
                "a usage error": ["from-flows", "--no-such-option"]}  # fmt: skip


def startup_seconds(repeat: int, args: tuple[str, ...] = ("--help",)) -> float:
    """Median wall time of ``netpolgen ARGS`` in a fresh interpreter.

    Timed around the process alone: :func:`measure` samples memory every 100 ms, which would
    round a start-up of 0.12 s up to 0.2 s."""
    command = [sys.executable, "-m", "netpolgen", *args]
    env = python_env()
    times = []
    for _ in range(max(5, repeat)):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=REPO, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def python_env() -> dict[str, str]:
    compile_package()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def compile_package() -> None:
    """Byte-compile netpolgen's modules in place, as ``pip install`` does for an installed copy:
    where ``PYTHONDONTWRITEBYTECODE`` is set (this checkout is on the path, not installed), each
    run would otherwise compile ~70 modules from source (~0.1 s) before doing any work, in every
    process, which is not what a user's command costs."""
    compileall.compile_dir(str(REPO / "netpolgen"), quiet=1)


def known_formats() -> set[str]:
    sys.path.insert(0, str(REPO))
    import netpolgen

    return set(netpolgen.FORMATS)


def has_verify() -> bool:
    """Whether this checkout's CLI has ``netpolgen verify``."""
    sys.path.insert(0, str(REPO))
    from netpolgen.cli import cli

    return "verify" in cli.commands


def warm_cache(path: Path) -> None:
    """Read ``path`` once so that every measured run finds it in the page cache."""
    with path.open("rb") as handle:
        while handle.read(16 << 20):
            pass


def run_format(
    fmt: str,
    records: int,
    workdir: Path,
    workers: int,
    keep: bool,
    extra: list[str],
    reuse: bool = False,
    repeat: int = 1,
    verify: bool = True,
    audit2policy: str | None = None,
) -> list[dict[str, object]]:
    path = workdir / f"bench-{records}.{SUFFIX[fmt]}"
    began = time.perf_counter()
    if not (reuse and path.exists()):  # the same seed writes the same file
        generate.write(fmt, records, path)
    generated = time.perf_counter() - began
    size = path.stat().st_size
    rows: list[dict[str, object]] = []
    env = python_env()
    warm_cache(path)  # the floor runs first: it must not be the one that reads from disk
    floor = median_measure([sys.executable, "-c", FLOOR_CODE[fmt], str(path)], env, repeat)
    base = {"format": fmt, "records": records, "MB": round(size / 1e6, 1),
            "generated_s": round(generated, 1)}  # fmt: skip
    rows.append(
        {**base, "step": "floor", "seconds": floor.seconds, "peak_MB": floor.peak_rss / 1e6,
         "cpu_s": floor.cpu_seconds}
    )  # fmt: skip
    streaming = None
    if fmt in STREAMING_FLOOR_CODE:
        streaming = median_measure(
            [sys.executable, "-c", STREAMING_FLOOR_CODE[fmt], str(path)], env, repeat
        )
        rows.append(
            {**base, "step": "floor, streaming", "seconds": streaming.seconds,
             "peak_MB": streaming.peak_rss / 1e6, "cpu_s": streaming.cpu_seconds}
        )  # fmt: skip
    if READER.get(fmt, fmt) not in known_formats():
        rows.append({**base, "step": "from-flows", "note": f"no {fmt} reader on this branch"})
        if not keep:
            path.unlink()
        return rows
    out = workdir / f"policies-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    inventory: list[str] = []
    if fmt == "aws-vpc":  # addresses only: the pod inventory names the workloads
        inventory_path = workdir / "inventory.json"
        inventory_path.write_text(json.dumps(generate.inventory(generate.make_cluster())))
        inventory = ["-i", str(inventory_path)]
    command = [sys.executable, "-m", "netpolgen", "from-flows", str(path), "-o", str(out), "-q",
               "--workers", str(workers), "--force", *inventory, *extra]  # fmt: skip
    ours = median_measure(command, env, repeat)
    if ours.returncode != 0:
        raise SystemExit(f"from-flows failed on {path}:\n{ours.stderr}")
    policies = len(list(out.rglob("*.yaml")))
    rows.append({**base, "step": "from-flows", "seconds": ours.seconds,
                 "peak_MB": ours.peak_rss / 1e6, "ratio": ours.seconds / floor.seconds,
                 "cpu_s": ours.cpu_seconds, "policies": policies})  # fmt: skip
    if streaming is not None:
        rows[-1]["note"] = f"{policies} policies; {ours.seconds / streaming.seconds:.2f}x streaming"
    if audit2policy and READER.get(fmt, fmt) == "hubble":
        rows.append(peer_row(audit2policy, path, workdir, repeat, base, ours.seconds))
    if verify and has_verify():
        verify_command = [sys.executable, "-m", "netpolgen", "verify", "--flows", str(path),
                  "--policies", str(out), "-q", "--no-over-permissive", "--workers", str(workers),
                  *inventory]  # fmt: skip
        checked = median_measure(verify_command, env, repeat)
        row = {**base, "step": "verify", "seconds": checked.seconds,
               "peak_MB": checked.peak_rss / 1e6, "cpu_s": checked.cpu_seconds,
               "policies": policies}  # fmt: skip
        if checked.returncode not in (0, 3):  # 3: some observed flow is denied
            lines = checked.stderr.strip().splitlines() or ["?"]
            row["note"] = "failed: " + lines[-1][:80]
        elif checked.returncode == 3:
            row["note"] = f"{policies} policies; reported denied flows"
        rows.append(row)
    elif verify:
        rows.append(
            {**base, "step": "verify", "note": "netpolgen.verify.verify not on this branch"}
        )
    if not keep:
        path.unlink()
        shutil.rmtree(out, ignore_errors=True)
    return rows


def peer_row(
    command: str, path: Path, workdir: Path, repeat: int, base: dict[str, object], ours: float
) -> dict[str, object]:
    """hubble-audit2policy (PEERS.md; ``pip install hubble-audit2policy``) on the same file, as
    its README runs it (``FILE -o DIR``), and how many times faster ``from-flows`` was."""
    out = workdir / "policies-hubble-audit2policy"
    shutil.rmtree(out, ignore_errors=True)
    peer = median_measure([command, str(path), "-o", str(out)], None, repeat)
    row: dict[str, object] = {
        **base, "step": "hubble-audit2policy", "seconds": peer.seconds,
        "peak_MB": peer.peak_rss / 1e6, "cpu_s": peer.cpu_seconds,
    }  # fmt: skip
    if peer.returncode != 0:
        lines = peer.stderr.strip().splitlines() or ["?"]
        row["note"] = "failed: " + lines[-1][:80]
    else:
        row["note"] = f"netpolgen {peer.seconds / ours:.1f}x faster"
    shutil.rmtree(out, ignore_errors=True)
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        "| format | records | file MB | step | seconds | CPU s | records/s | peak RSS MB "
        "| ratio to floor | note |"
    )
    print(header)
    print("|" + "---|" * 10)
    for row in rows:
        seconds = row.get("seconds")
        rate = f"{int(row['records']) / float(seconds):,.0f}" if seconds else ""
        ratio = f"{float(row['ratio']):.2f}x" if "ratio" in row else ""
        note = str(row.get("note", ""))
        peak = "" if "peak_MB" not in row else f"{float(row['peak_MB']):.0f}"
        secs = "" if seconds is None else f"{float(seconds):.2f}"
        cpu = f"{float(row['cpu_s']):.2f}" if "cpu_s" in row else ""
        if "policies" in row and not note:
            note = f"{row['policies']} policies"
        print(
            f"| {row['format']} | {int(row['records']):,} | {row['MB']} | {row['step']} | "
            f"{secs} | {cpu} | {rate} | {peak} | {ratio} | {note} |"
        )


def parse_size(text: str) -> int:
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "B": 1}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="netpolgen benchmark (see the module docstring)")
    parser.add_argument("--formats", default="hubble,hubble-real,csv,aws-vpc")
    parser.add_argument("--records", type=int, help="records per format (default: full size)")
    parser.add_argument("--size", help="file size per format instead, e.g. 500MB or 2GB")
    parser.add_argument("--quick", action="store_true", help="CI size: a few seconds in all")
    parser.add_argument("--workers", type=int, default=0, help="from-flows --workers (0: cores)")
    parser.add_argument(
        "--workdir", type=Path, help="where to write the logs (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep generated files")
    parser.add_argument(
        "--reuse", action="store_true", help="use logs already in --workdir (implies --keep)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per step; the median")
    parser.add_argument("--no-verify", action="store_true", help="time from-flows only")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument(
        "--audit2policy",
        metavar="CMD",
        help="also time hubble-audit2policy (this executable) on the Hubble corpora",
    )
    args, extra = parser.parse_known_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="netpolgen-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    try:
        for fmt in formats:
            if args.quick:
                records = QUICK_RECORDS[fmt]
            elif args.size:
                records = max(1, parse_size(args.size) // BYTES_PER_RECORD[fmt])
            else:
                records = args.records or FULL_RECORDS[fmt]
            keep = args.keep or args.reuse
            rows += run_format(
                fmt,
                records,
                workdir,
                args.workers,
                keep,
                extra,
                args.reuse,
                args.repeat,
                verify=not args.no_verify,
                audit2policy=args.audit2policy,
            )
    finally:
        if args.workdir is None and not (args.keep or args.reuse):
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"# netpolgen benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}"
          + (f", medians of {args.repeat} runs" if args.repeat > 1 else ""))  # fmt: skip
    print_table(rows)
    print()
    for label, startup_args in STARTUP_ARGS.items():
        seconds = startup_seconds(args.repeat, tuple(startup_args))
        print(f"netpolgen {label}: {seconds:.3f} s (median)")
    if args.json:
        print(json.dumps(rows, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
