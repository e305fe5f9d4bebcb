"""The Dask engine on a 2-process LocalCluster gives byte-identical policies to pandas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from netpolgen.pipeline import GenerateOptions, generate_from_files
from tests.conftest import SAMPLE_FLOWS
from tests.test_stream import random_flows

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


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.mark.parametrize("sorted_times", [True, False])
def test_dask_matches_pandas_on_several_files(
    tmp_path: Path, client: object, sorted_times: bool
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
        result = generate_dask(paths, options, client=client, chunk_size=40)
        assert result.to_yaml() == expected.to_yaml()
        assert result.report.to_dict()["records_read"] == expected.report.records_read
        assert dict(result.report.filtered) == dict(expected.report.filtered)


def test_globs_expand_in_order(tmp_path: Path, client: object) -> None:
    sample = (SAMPLE_FLOWS / "three-tier.csv").read_text()
    for name in ("b.csv", "a.csv"):
        (tmp_path / name).write_text(sample)
    result = generate_dask([str(tmp_path / "*.csv")], client=client)
    expected = generate_from_files([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert result.to_yaml() == expected.to_yaml()


def test_cli_engine_dask_with_a_scheduler_address(client: object) -> None:
    from click.testing import CliRunner

    from netpolgen.cli import cli

    sample = str(SAMPLE_FLOWS / "three-tier.csv")
    address = client.scheduler.address  # type: ignore[attr-defined]
    runner = CliRunner()
    dask = runner.invoke(cli, ["from-flows", sample, "--engine", "dask", "--scheduler", address])
    pandas = runner.invoke(cli, ["from-flows", sample])
    assert dask.exit_code == 0, dask.output
    assert dask.stdout == pandas.stdout


def test_missing_dask_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from netpolgen.engine import dask as engine
    from netpolgen.errors import NetpolgenError

    real_import = builtins.__import__

    def fail(name: str, *args: object, **kwargs: object) -> object:
        if name == "distributed":
            raise ImportError("no distributed", name="distributed")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fail)
    with pytest.raises(NetpolgenError, match=r"netpolgen\[dask\]"):
        engine.expand_inputs(["x.csv"])
