"""Runs stopped by SIGINT, SIGTERM or SIGKILL at a moment hypothesis chooses (issue 21).

Each scenario is a command that replaces an existing output: a policy directory, one YAML file,
a policy directory fed from standard input (spooled to a temporary file), a migration plan,
a policy directory updated in place, an HTML report. The child process stops itself at the
N-th checkpoint (``netpolgen._faults``: after each chunk of flows read, each block of standard
input spooled, each file staged, before and after the renames that publish), N drawn from
those the run passes. Afterwards the output is byte for byte the old one or the new one, never
anything else; SIGINT and SIGTERM exit 130 and 143 with one ``Error:`` line, no traceback,
and no temporary file left; after SIGKILL (which no program can clean up after) the next run
removes the staging copy the killed one left.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.helpers import (
    THREE_TIER,
    Snapshot,
    cli_env,
    command,
    leftovers,
    run,
    snapshot,
)

# Few examples by default (each is a child process, ~2 s); NETPOLGEN_FAULT_EXAMPLES=200 for a
# longer hunt.
EXAMPLES = int(os.environ.get("NETPOLGEN_FAULT_EXAMPLES", "12"))
SIGNALS = ("SIGINT", "SIGTERM", "SIGKILL")
EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGKILL": -signal.SIGKILL}
MESSAGE = {"SIGINT": "Error: interrupted (SIGINT)", "SIGTERM": "Error: terminated (SIGTERM)"}
# What the faults did, for the closing figures (printed at the module's end with -s).
TALLY: collections.Counter[tuple[str, str, str]] = collections.Counter()


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str  # the output, in the work directory
    args: Callable[[Path, Path], list[str]]  # (work, subset csv) -> the faulted command
    old: Callable[[Path, Path], list[str]] | None  # the command that makes the old output
    stdin: bool = False  # the flows come on standard input
    sweeps: bool = True  # the next run removes a killed run's staging copy


SCENARIOS = [
    Scenario(
        "from-flows -o DIR", "out",
        lambda w, s: ["from-flows", str(THREE_TIER), "-o", str(w / "out"), "--force", "-q"],
        lambda w, s: ["from-flows", str(s), "-o", str(w / "out"), "-q"],
    ),
    Scenario(
        "from-flows -o FILE.yaml", "out.yaml",
        lambda w, s: ["from-flows", str(THREE_TIER), "-o", str(w / "out.yaml"), "--force", "-q"],
        lambda w, s: ["from-flows", str(s), "-o", str(w / "out.yaml"), "-q"],
    ),
    Scenario(
        "from-flows - (standard input)", "out",
        lambda w, s: ["from-flows", "-", "-o", str(w / "out"), "--force", "-q"],
        lambda w, s: ["from-flows", str(s), "-o", str(w / "out"), "-q"],
        stdin=True,
    ),
    Scenario(
        "migrate -o DIR", "plan",
        lambda w, s: ["migrate", str(THREE_TIER), "-o", str(w / "plan"), "--force", "-q"],
        lambda w, s: ["migrate", str(s), "-o", str(w / "plan"), "-q"],
    ),
    Scenario(
        "update (in place)", "policies",
        lambda w, s: ["update", str(THREE_TIER), "--policies", str(w / "policies"), "-q"],
        lambda w, s: ["from-flows", str(s), "-o", str(w / "policies"), "-q"],
    ),
    Scenario(
        "report -o PAGE", "page.html",
        lambda w, s: ["report", str(THREE_TIER), "-o", str(w / "page.html"), "-q"],
        None,  # the old page: any file
        sweeps=False,  # a report page's staging file is not swept (tempfile in its folder)
    ),
]  # fmt: skip


@dataclass(frozen=True)
class Baseline:
    template: Path  # a work directory holding the old output
    old: Snapshot
    new: Snapshot
    checkpoints: int


@pytest.fixture(scope="module")
def baselines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Baseline]]:
    root = tmp_path_factory.mktemp("faults")
    subset = root / "subset.csv"  # the header and two records: a smaller old output
    subset.write_text("".join(THREE_TIER.read_text().splitlines(keepends=True)[:3]))
    out: dict[str, Baseline] = {}
    for number, scenario in enumerate(SCENARIOS):
        template = root / f"template-{number}"
        template.mkdir()
        if scenario.old is None:
            (template / scenario.target).write_bytes(b"<html>an older report</html>\n")
        else:
            made = run(scenario.old(template, subset), template, root / "tmp")
            assert made.returncode == 0, made.stderr
        work = root / f"clean-{number}"
        shutil.copytree(template, work)
        args = [a.replace(str(template), str(work)) for a in scenario.args(template, subset)]
        listed = run(
            args, work, root / "tmp", fault="list", stdin=THREE_TIER if scenario.stdin else None
        )
        assert listed.returncode == 0, listed.stderr
        points = listed.stderr.count("netpolgen-checkpoint: ")
        old, new = snapshot(template / scenario.target), snapshot(work / scenario.target)
        assert old != new and points >= 2, scenario.name
        out[scenario.name] = Baseline(template, old, new, points)
    out["subset"] = Baseline(subset, None, None, 0)
    yield out
    print("\nfaults injected (scenario, signal, output afterwards):", file=sys.stderr)
    for key, count in sorted(TALLY.items()):
        print(f"  {key}: {count}", file=sys.stderr)


# No example database: an example is a child process stopped at a moment whose count of
# checkpoints is the baseline's of that run, so replaying a stored one in a later run made
# hypothesis report inconsistent data generation (every run after one that stored an example).
@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
    database=None,
)  # fmt: skip
@given(data=st.data())
def test_a_stopped_run_leaves_the_old_output_or_the_new_one_whole(
    baselines: dict[str, Baseline], data: st.DataObject
) -> None:
    scenario = data.draw(st.sampled_from(SCENARIOS), label="scenario")
    signame = data.draw(st.sampled_from(SIGNALS), label="signal")
    base = baselines[scenario.name]
    at = data.draw(st.integers(1, base.checkpoints), label="checkpoint")
    root = Path(tempfile.mkdtemp(prefix="netpolgen-fault-"))
    try:
        work, tmp = root / "work", root / "tmp"
        shutil.copytree(base.template, work)
        subset = baselines["subset"].template
        args = scenario.args(work, subset)
        stdin = THREE_TIER if scenario.stdin else None
        result = run(args, work, tmp, fault=f"{signame}@{at}", stdin=stdin)
        after = snapshot(work / scenario.target)
        outcome = "old" if after == base.old else "new" if after == base.new else "MIXED"
        TALLY[(scenario.name, signame, outcome)] += 1
        assert outcome != "MIXED", f"{scenario.name}, {signame} at checkpoint {at}"
        assert result.returncode == EXIT[signame], result.stderr
        assert "Traceback" not in result.stderr
        if signame != "SIGKILL":
            lines = result.stderr.splitlines()
            assert lines[-1] == MESSAGE[signame], result.stderr
            assert sum(line.startswith("Error:") for line in lines) == 1, result.stderr
            assert leftovers(work, {scenario.target}) == [], "temporary files left"
            assert leftovers(tmp, set()) == [], "spool or crash report left"
            return
        # SIGKILL: whatever the killed run staged may stay; the next run removes it.
        again = run(args, work, tmp, stdin=stdin)
        assert again.returncode == 0, again.stderr
        if scenario.sweeps:
            assert leftovers(work, {scenario.target}) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


# Worker processes never outlive their parent (engine.processes.worker_started, set up in every
# pool netpolgen starts): a parent that is SIGKILLed leaves none behind.
_POOL_PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from netpolgen.engine.processes import worker_context, worker_started

def pid(_):
    time.sleep(0.2)
    return os.getpid()

if __name__ == "__main__":
    with ProcessPoolExecutor(2, mp_context=worker_context(), initializer=worker_started) as pool:
        pids = set(pool.map(pid, range(8)))
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(600)
"""

_DASK_PARENT = """
import os, time
from netpolgen.engine.dask import dask_client

if __name__ == "__main__":
    with dask_client() as client:
        pids = client.run(os.getpid)
        print(" ".join(map(str, sorted(pids.values()))), flush=True)
        time.sleep(600)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan may wait for a reaper that is slow or absent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _kill_parent_and_wait(script: Path, tmp: Path) -> tuple[list[int], list[int]]:
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, cwd=tmp, env=cli_env(tmp),
    )  # fmt: skip
    try:
        assert parent.stdout is not None
        with parent.stdout:
            line = parent.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert workers and all(_alive(p) for p in workers), line
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    return workers, [p for p in workers if _alive(p)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_POOL_PARENT)
    workers, survivors = _kill_parent_and_wait(script, tmp_path)
    TALLY[("process pool", "SIGKILL parent", f"{len(workers)} workers")] += 1
    assert survivors == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_dask_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    script = tmp_path / "parent.py"
    script.write_text(_DASK_PARENT)
    workers, survivors = _kill_parent_and_wait(script, tmp_path)
    TALLY[("dask LocalCluster", "SIGKILL parent", f"{len(workers)} workers")] += 1
    assert survivors == []


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            parents[int(entry.name)] = int(stat[1])
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


@pytest.fixture(scope="module")
def big_hubble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Over two of the Hubble reader's 64 MiB chunks: parsed by worker processes."""
    from netpolgen.ingest import hubble

    sample = (THREE_TIER.parent / "online-shop.hubble.jsonl").read_bytes()
    path = tmp_path_factory.mktemp("big") / "flows.jsonl"
    with path.open("wb") as out:
        for _ in range((2 * hubble.CHUNK_BYTES + (8 << 20)) // len(sample) + 1):
            out.write(sample)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signame", SIGNALS)
def test_a_stopped_run_leaves_no_worker_behind(
    big_hubble: Path, tmp_path: Path, signame: str
) -> None:
    """A real run with its worker pool up (two workers, forked from it on Linux; else a fork
    server's, with the server and the resource tracker beside them) is stopped: no
    process it started survives it, and its output is not there. The parent pauses at each
    chunk (the test hook, 3 s), so that the signal comes while it reads, not after the run or
    while it writes: parsing the file alone takes less than the half second the test waits."""
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    with subprocess.Popen(
        command(["from-flows", str(big_hubble), "-q", "-o", str(out)]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=cli_env(tmp, "pause:3"),
    ) as child:  # fmt: skip
        deadline = time.monotonic() + 120
        started: list[int] = []
        while time.monotonic() < deadline and child.poll() is None:
            started = _descendants(child.pid)
            if len(started) >= 2:  # the two workers (and any server that forked them)
                break
            time.sleep(0.1)
        assert len(started) >= 2, f"workers never started: {started}"
        time.sleep(0.5)  # the workers are parsing
        child.send_signal(getattr(signal, signame))
        _, stderr = child.communicate(timeout=120)
    assert child.returncode == EXIT[signame], stderr
    if signame != "SIGKILL":
        assert stderr.splitlines() == [MESSAGE[signame]], stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(p) for p in started):
        time.sleep(0.1)
    survivors = [p for p in started if _alive(p)]
    TALLY[
        ("from-flows with workers", signame, f"{len(started)} children, {len(survivors)} left")
    ] += 1
    assert survivors == []
    assert not out.exists() and leftovers(tmp_path, {"tmp"}) == []


@pytest.mark.parametrize("scenario", [SCENARIOS[0]], ids=lambda s: s.name)
def test_sigkill_at_every_checkpoint(baselines: dict[str, Baseline], scenario: Scenario) -> None:
    """Every checkpoint, not a sample: the moments around the exchange that publishes a
    directory (just before it, just after it, before the old copy is removed) included."""
    base = baselines[scenario.name]
    seen = set()
    for at in range(1, base.checkpoints + 1):
        root = Path(tempfile.mkdtemp(prefix="netpolgen-fault-"))
        try:
            work = root / "work"
            shutil.copytree(base.template, work)
            args = scenario.args(work, baselines["subset"].template)
            result = run(args, work, root / "tmp", fault=f"SIGKILL@{at}")
            assert result.returncode == -signal.SIGKILL, result.stderr
            after = snapshot(work / scenario.target)
            outcome = "old" if after == base.old else "new" if after == base.new else "MIXED"
            TALLY[(scenario.name, f"SIGKILL at checkpoint {at}", outcome)] += 1
            assert outcome != "MIXED", f"SIGKILL at checkpoint {at}"
            seen.add(outcome)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    assert seen == {"old", "new"}  # the kills fell on both sides of the publication


def test_an_update_with_nothing_to_change_sweeps_a_killed_runs_copy(tmp_path: Path) -> None:
    """The draw that found it (update, SIGKILL at checkpoint 7, write_tree.exchanged: the old
    copy is aside, not yet removed): the next update has no change to write, and used to leave
    the dead run's copy beside the policies, since only a write swept it."""
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    subset = tmp_path / "subset.csv"
    subset.write_text("".join(THREE_TIER.read_text().splitlines(keepends=True)[:3]))
    made = run(["from-flows", str(subset), "-o", str(work / "policies"), "-q"], work, tmp)
    assert made.returncode == 0, made.stderr
    update = ["update", str(THREE_TIER), "--policies", str(work / "policies"), "-q"]
    killed = run(update, work, tmp, fault="SIGKILL@7")
    assert killed.returncode == EXIT["SIGKILL"]
    assert leftovers(work, {"policies"}) != []  # the dead run's copy
    again = run(update, work, tmp)
    assert again.returncode == 0, again.stderr
    assert leftovers(work, {"policies"}) == []
