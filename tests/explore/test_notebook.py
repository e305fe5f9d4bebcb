"""The exploration notebook runs top to bottom on a fresh install, and is stored without outputs."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip outputs before committing"
            assert cell.execution_count is None


# Jupyter's own packages warn about their path migration and event-loop policies; that is not
# ours to fix, and the suite turns warnings into errors.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    # The kernel is a child process: it must import this checkout (the notebook draws inline).
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=300,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # A failing cell raises CellExecutionError naming the cell and the traceback.
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    figures = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(figures) >= 4, "the plots should be displayed"


def test_the_notebook_extra_installs_what_runs_it() -> None:
    # pip install -e '.[notebook]' must bring jupyter lab (to open it) and nbconvert (to run it
    # headless): the README says to use them.
    import tomllib

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["notebook"]
    names = {requirement.split(">")[0].split("[")[0] for requirement in extra}
    assert {"jupyterlab", "nbconvert", "ipykernel", "matplotlib", "networkx"} <= names


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_copy_outside_the_checkout_runs_with_jupyter_nbconvert(tmp_path: Path) -> None:
    # What the README says: jupyter nbconvert --execute, here on a copy in another folder,
    # which used to stop at a bare StopIteration looking for sample_flows/.
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists() or importlib.util.find_spec("nbconvert") is None:
        pytest.skip("the notebook extra (nbconvert) is not installed")
    copy = tmp_path / "elsewhere" / "explore.ipynb"
    copy.parent.mkdir()
    shutil.copy(REPO / "notebooks" / "explore.ipynb", copy)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
           os.environ.get("PYTHONPATH")]))}  # fmt: skip
    done = subprocess.run(
        [str(jupyter), "nbconvert", "--to", "notebook", "--execute", str(copy),
         "--output", "run.ipynb", "--ExecutePreprocessor.timeout=300"],
        cwd=copy.parent, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    nbformat = pytest.importorskip("nbformat")
    ran = nbformat.read(copy.parent / "run.ipynb", as_version=4)
    outputs = [o for c in ran.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4


def test_a_missing_sample_folder_is_a_clear_error(tmp_path: Path) -> None:
    # Outside any checkout and with a netpolgen that has no sample_flows/ beside it, the first
    # cell says where the samples are expected, not StopIteration.
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(REPO / "notebooks" / "explore.ipynb", as_version=4)
    source = next(c.source for c in notebook.cells if "def find_samples" in c.source)
    source = source.replace("%matplotlib inline", "")
    fake = tmp_path / "site" / "netpolgen"
    fake.mkdir(parents=True)
    code = (
        "import sys, types, os\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "fake = types.ModuleType('netpolgen')\n"
        f"fake.__file__ = {str(fake / '__init__.py')!r}\n"
        "sys.modules['netpolgen'] = fake\n"
        "sys.modules['netpolgen.explore'] = types.ModuleType('netpolgen.explore')\n"
        "sys.modules['netpolgen.explore'].plots = None\n" + source
    )
    env = {k: v for k, v in os.environ.items() if k != "NETPOLGEN_SAMPLES"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 1
    assert "FileNotFoundError: sample_flows/ not found" in done.stderr
    assert "StopIteration" not in done.stderr
