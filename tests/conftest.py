"""Shared fixtures: repository paths, golden files, the shared samples beside the checkout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FLOWS = REPO / "sample_flows"
GOLDEN = Path(__file__).resolve().parent / "golden"
# ../shared beside the checkout holds public samples under their own licences: tests read them
# there and never copy them into the repository.
SHARED_SAMPLES = REPO.parent / "shared" / "samples"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden files from current output"
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """``golden(relative_path, text)``: compare with (or, with --update-golden, write) a file."""
    update = request.config.getoption("--update-golden")

    def check(relative: str, text: str) -> None:
        path = GOLDEN / relative
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"golden file {path} missing; run pytest --update-golden"
        assert text == path.read_text(encoding="utf-8")

    return check


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    """A Dask client on a LocalCluster of two single-threaded worker processes, one per test
    module (the Dask engine's tests; skipped without the ``dask`` extra)."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every hypothesis property test is ``slow`` (the memory tests are marked where they are):
    ``-m 'not slow'`` gives a quick run; the README's test command runs everything."""
    for item in items:
        function = getattr(item, "function", None)
        if getattr(function, "is_hypothesis_test", False):
            item.add_marker(pytest.mark.slow)
