"""The Dask engine on a 2-process LocalCluster gives byte-identical policies to pandas."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpolgen.generator import generate_from_files
from netpolgen.policy.from_reduction import GenerateOptions
from tests.conftest import SAMPLE_FLOWS
from tests.reduce.test_stream import random_flows

distributed = pytest.importorskip("distributed")

from netpolgen.engine.dask import generate_dask  # noqa: E402

COLUMNS = [
    "time", "src_namespace", "src_pod", "src_labels", "src_ip", "src_port", "src_kind",
    "dst_namespace", "dst_pod", "dst_labels", "dst_ip", "dst_port", "dst_kind",
    "protocol", "verdict", "is_reply", "count",
]  # fmt: skip


def write_csv(flows, path: Path) -> None:  # type: ignore[no-untyped-def]
    frame = flows[COLUMNS].copy()
    frame["time"] = frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    frame["is_reply"] = frame["is_reply"].astype("string").str.lower()
    frame.to_csv(path, index=False)


@pytest.mark.parametrize("sorted_times", [True, False])
def test_dask_matches_pandas_on_several_files(
    tmp_path: Path, dask_client: object, sorted_times: bool
) -> None:
    paths = []
    for part in range(4):
        flows = random_flows(100 + part, 150, sorted_times=sorted_times, with_nat=False)
        path = tmp_path / f"flows-{part}.csv"
        write_csv(flows, path)
        paths.append(str(path))
    paths.append(str(SAMPLE_FLOWS / "three-tier.csv"))
    for options in (GenerateOptions(), GenerateOptions(include_denied=True, min_count=2)):
        expected = generate_from_files(paths, options, chunk_size=40)
        result = generate_dask(paths, options, client=dask_client, chunk_size=40)
        assert result.to_yaml() == expected.to_yaml()
        assert result.report.to_dict()["records_read"] == expected.report.records_read
        assert dict(result.report.filtered) == dict(expected.report.filtered)


def test_globs_expand_in_order(tmp_path: Path, dask_client: object) -> None:
    sample = (SAMPLE_FLOWS / "three-tier.csv").read_text()
    for name in ("b.csv", "a.csv"):
        (tmp_path / name).write_text(sample)
    result = generate_dask([str(tmp_path / "*.csv")], client=dask_client)
    expected = generate_from_files([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert result.to_yaml() == expected.to_yaml()


def test_cli_engine_dask_with_a_scheduler_address(dask_client: object) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    sample = str(SAMPLE_FLOWS / "three-tier.csv")
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    runner = CliRunner()
    dask = runner.invoke(cli, ["from-flows", sample, "--engine", "dask", "--scheduler", address])
    pandas = runner.invoke(cli, ["from-flows", sample])
    assert dask.exit_code == 0, dask.output
    assert dask.stdout == pandas.stdout


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from netpolgen.engine import dask as engine
    from netpolgen.errors import NetpolgenError

    monkeypatch.setitem(sys.modules, "distributed", None)  # importing it raises ImportError
    with pytest.raises(NetpolgenError, match=r"netpolgen\[dask\]"):
        engine.named_inputs(["x.csv"])


def aws_files(tmp_path: Path) -> tuple[list[str], Path]:
    """Two AWS VPC logs of the benchmark's cluster (addresses only) and its inventory."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generate

    paths = []
    for part in range(2):
        path = tmp_path / f"vpc-{part}.log"
        generate.write("aws-vpc", 400 + part, path)
        paths.append(str(path))
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(generate.inventory(generate.make_cluster())))
    return paths, inventory


def test_verify_on_dask_matches_pandas(tmp_path: Path, dask_client: object) -> None:
    from netpolgen import format_report, verify_files, write_policy_dir

    paths, inventory = aws_files(tmp_path)
    result = generate_from_files(paths[:1], inventory=[inventory])  # the second file has more
    write_policy_dir(result.policies, tmp_path / "policies")
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    for inventories in ([], [inventory]):
        pandas = verify_files(paths, tmp_path / "policies", inventories)
        dask = verify_files(
            paths, tmp_path / "policies", inventories, engine="dask", scheduler=address
        )
        assert format_report(dask, "json") == format_report(pandas, "json")
        assert dask.ingest is not None and pandas.ingest is not None
        assert dask.ingest.to_dict() == pandas.ingest.to_dict()
        assert dask.ingest.messages == pandas.ingest.messages


def test_inspect_on_dask_matches_pandas(tmp_path: Path, dask_client: object) -> None:
    from netpolgen import format_summary, inspect_flows

    paths, inventory = aws_files(tmp_path)
    paths.append(str(SAMPLE_FLOWS / "three-tier.csv"))
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    for inventories in ([], [inventory]):
        pandas = inspect_flows(paths, inventory=inventories)
        dask = inspect_flows(paths, inventory=inventories, engine="dask", scheduler=address)
        assert format_summary(dask, "json") == format_summary(pandas, "json")


def test_cli_verify_and_inspect_on_dask(tmp_path: Path, dask_client: object) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    sample = str(SAMPLE_FLOWS / "three-tier.csv")
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["from-flows", sample, "-o", str(tmp_path / "p"), "-q"]).exit_code == 0
    )
    for command in (
        ["verify", "--flows", sample, "--policies", str(tmp_path / "p"), "--format", "json"],
        ["inspect", sample, "--format", "json"],
    ):
        pandas = runner.invoke(cli, command)
        dask = runner.invoke(cli, [*command, "--engine", "dask", "--scheduler", address])
        assert dask.exit_code == pandas.exit_code == 0, dask.output
        assert dask.stdout == pandas.stdout


def test_a_strict_error_on_a_dask_worker_names_its_file_and_line(
    tmp_path: Path, dask_client: object
) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    bad = tmp_path / "bad.csv"
    lines = (SAMPLE_FLOWS / "three-tier.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",10.244.", ",not-an-ip-", 1)  # line 4: a bad source address
    bad.write_text("\n".join(lines) + "\n")
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    runner = CliRunner()
    command = ["inspect", str(bad), "--strict"]
    pandas = runner.invoke(cli, command)
    dask = runner.invoke(cli, [*command, "--engine", "dask", "--scheduler", address])
    assert pandas.exit_code == dask.exit_code != 0
    assert f"{bad}:4" in dask.stderr and "Traceback" not in dask.stderr
    assert dask.stderr == pandas.stderr


def test_progress_is_reported_per_file_in_order(tmp_path: Path, dask_client: object) -> None:
    from netpolgen import inspect_flows

    paths, _ = aws_files(tmp_path)
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    pandas: list[tuple[str, int]] = []
    generate_from_files(paths, on_chunk=lambda name, rows: pandas.append((name, rows)))
    reduced: list[tuple[str, int]] = []
    generate_dask(
        paths, client=dask_client, on_chunk=lambda name, rows: reduced.append((name, rows))
    )
    # One call per file and round when the cluster reduces it (these logs have no direction:
    # reply inference takes two rounds), in file order, with the file's rows.
    from netpolgen import load_flows

    expected = [(path, len(load_flows(path))) for path in paths]
    assert reduced == expected * 2
    read: list[tuple[str, int]] = []
    inspect_flows(
        paths, engine="dask", scheduler=address,
        on_chunk=lambda name, rows: read.append((name, rows)),
    )  # fmt: skip
    assert read == pandas  # chunk by chunk, as this process reads them


def test_engine_dispatch_refuses_a_scheduler_without_dask(tmp_path: Path) -> None:
    """One dispatch for every command: a scheduler given to the pandas engine is an error,
    not silently ignored (it once was, command by command)."""
    import netpolgen
    from netpolgen.engine import check_engine

    with pytest.raises(netpolgen.NetpolgenError, match="--engine dask"):
        check_engine("pandas", "tcp://127.0.0.1:8786")
    with pytest.raises(netpolgen.NetpolgenError, match="unknown engine"):
        check_engine("spark", None)
    flows = SAMPLE_FLOWS / "three-tier.csv"
    with pytest.raises(netpolgen.NetpolgenError, match="--engine dask"):
        netpolgen.generate_from_files([flows], scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(netpolgen.NetpolgenError, match="--engine dask"):
        netpolgen.inspect_flows([flows], scheduler="tcp://127.0.0.1:8786")
    policy = tmp_path / "p.yaml"
    policy.write_text(netpolgen.generate_from_files([flows]).to_yaml())
    with pytest.raises(netpolgen.NetpolgenError, match="--engine dask"):
        netpolgen.verify_files([flows], policy, scheduler="tcp://127.0.0.1:8786")


def test_dask_verify_judges_verdicts_across_files_as_pandas(
    tmp_path: Path, dask_client: object
) -> None:
    """The three-tier Azure case (one VNet flow-log blob per NIC): web -> db:5432 is ``D`` at
    db's NIC and ``B``/``E`` at web's. verify on Dask judges web's records by db's denial as
    the pandas engine does (the connection is denied, not checked; counted once), so the
    generated policies verify clean and the reports are the same."""
    import json

    from click.testing import CliRunner

    from netpolgen.cli import cli
    from tests.ingest.test_verdicts_across_files import MACS, _inventory, three_tier_blobs

    paths = []
    for nic, document in three_tier_blobs().items():
        path = tmp_path / f"macAddress={MACS[nic]}" / "PT1H.json"
        path.parent.mkdir()
        path.write_text(json.dumps(document))
        paths.append(str(path))
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(_inventory()))
    runner = CliRunner()
    out = tmp_path / "out"
    made = runner.invoke(cli, ["from-flows", *paths, "-i", str(inventory), "-o", str(out)])
    assert made.exit_code == 0, made.output
    address = dask_client.scheduler.address  # type: ignore[attr-defined]
    common = [*paths, "-i", str(inventory)]
    results = {
        engine: runner.invoke(
            cli, ["verify", *common, "--policies", str(out), "-F", "json", *extra]
        )  # fmt: skip
        for engine, extra in (
            ("pandas", []),
            ("dask", ["--engine", "dask", "--scheduler", address]),
        )  # fmt: skip
    }
    for result in results.values():
        assert result.exit_code == 0, result.output
    assert results["dask"].stdout == results["pandas"].stdout
    assert results["dask"].stderr == results["pandas"].stderr
    assert json.loads(results["dask"].stdout)["counts"]["records_denied_verdict"] == 1
    inspected = [
        runner.invoke(cli, ["inspect", *common, "-F", "json", *extra]).stdout
        for extra in ([], ["--engine", "dask", "--scheduler", address])
    ]
    assert inspected[0] == inspected[1]
