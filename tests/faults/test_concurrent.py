"""Two runs writing to one ``-o`` at the same moment (issue 21): one wins whole and the other
fails cleanly, or (with ``--force``) both write whole in turn; never a mixed directory.

Each run pauses 0.1 s at every checkpoint (``netpolgen._faults``: each file staged, each
rename), so that the two are publishing at the same time rather than one after the other
(without the lock, this test fails: both "win", and a run that took the other's staging
copy for a dead run's once published a mixed directory). The runs take turns through an ``flock`` on
the directory that holds the output (``netpolgen.policy.atomic.directory_lock``); each
publishes by one exchange or rename.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.faults.helpers import THREE_TIER, cli_env, command, leftovers, run, snapshot

# Rounds per output kind (each is two child processes at once, ~4 s on two cores).
ROUNDS = {"out": 6, "out.yaml": 3}
if "NETPOLGEN_CONCURRENT_ROUNDS" in os.environ:
    ROUNDS = dict.fromkeys(ROUNDS, int(os.environ["NETPOLGEN_CONCURRENT_ROUNDS"]))


def _together(
    runs: list[list[str]], cwd: Path, tmp: Path
) -> list[subprocess.CompletedProcess[str]]:
    tmp.mkdir(parents=True, exist_ok=True)
    children = [
        subprocess.Popen(
            command(args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=cli_env(tmp, fault="pause:0.1"),
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        for args in runs
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return results


@pytest.mark.parametrize("target", ["out", "out.yaml"])
def test_two_runs_on_one_output_never_mix(tmp_path: Path, target: str) -> None:
    # Two different outputs, to tell which run's output is there: with and without egress.
    variants = {"all": [], "no-egress": ["--no-egress"]}
    expected = {}
    for name, extra in variants.items():
        alone = tmp_path / f"alone-{name}"
        alone.mkdir()
        made = run(["from-flows", str(THREE_TIER), *extra, "-o", str(alone / target)], alone,
                   tmp_path / "tmp")  # fmt: skip
        assert made.returncode == 0, made.stderr
        expected[name] = snapshot(alone / target)
    assert expected["all"] != expected["no-egress"]
    outcomes = {"one won, one refused": 0, "both wrote in turn": 0}
    for round_number in range(ROUNDS[target]):
        work = tmp_path / f"round-{round_number}"
        work.mkdir()
        force = ["--force"] if round_number % 2 else []  # odd rounds: both may replace
        runs = [
            ["from-flows", str(THREE_TIER), *extra, *force, "-q", "-o", str(work / target)]
            for extra in variants.values()
        ]
        results = _together(runs, work, tmp_path / "tmp")
        after = snapshot(work / target)
        assert after in expected.values(), f"round {round_number}: a mixed output"
        assert all("Traceback" not in r.stderr for r in results)
        codes = sorted(r.returncode for r in results)
        if force:
            assert codes == [0, 0], [r.stderr for r in results]
            outcomes["both wrote in turn"] += 1
        else:
            assert codes == [0, 1], [r.stderr for r in results]
            loser = next(r for r in results if r.returncode == 1)
            assert loser.stderr.startswith(f"Error: {work / target}: output "), loser.stderr
            assert loser.stderr.count("\n") == 1
            winner = next(i for i, r in enumerate(results) if r.returncode == 0)
            assert after == list(expected.values())[winner]
            outcomes["one won, one refused"] += 1
        assert leftovers(work, {target}) == [], "a staging copy was left"
    assert sum(outcomes.values()) == ROUNDS[target]
