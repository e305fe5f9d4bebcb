"""Issue 17: ``netpolgen --help``, ``--version`` and a usage error answer at once.

They used to take ~0.8 s because the public API imported pandas, NumPy and scikit-learn before
click parsed a single argument. The command line now imports the pipeline only when a command
runs; these tests pin that down by what gets imported (timings on a shared machine are noise,
the module list is not), and check the constants the options spell out against the library's.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import netpolgen
from netpolgen.cli import options
from netpolgen.ingest.report import DEFAULT_MAX_LINE_BYTES

HEAVY = ("pandas", "numpy", "pyarrow", "yaml", "sklearn", "rich", "msgspec", "orjson", "dask")

PROBE = """
import json, sys
watched = set(json.loads(sys.argv[2]))
sys.argv = ["netpolgen", *json.loads(sys.argv[1])]
from netpolgen.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & watched)
sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["from-flows", "--no-such-option"], ["verify", "--help"],
     ["inspect"], ["migrate", "-h"]],
)  # fmt: skip
def test_help_version_and_usage_errors_import_no_pipeline(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    heavy = json.loads(done.stderr.rsplit("HEAVY=", 1)[1])
    assert heavy == [], f"netpolgen {' '.join(args)} imported {heavy}"


def test_the_options_constants_are_the_librarys() -> None:
    assert options.FLOW_FORMATS == tuple(netpolgen.FORMATS)
    assert options.DEFAULT_MAX_LINE_BYTES == DEFAULT_MAX_LINE_BYTES


def test_the_lazy_public_api_names_every_export() -> None:
    # netpolgen/__init__.py imports on first use; every name in __all__ must be reachable.
    lazy = set(netpolgen._LAZY)  # noqa: SLF001 - the module's own table, checked here
    assert lazy == set(netpolgen.__all__) - {"__version__"}
    assert {name for name in dir(netpolgen) if not name.startswith("_")} >= lazy
    with pytest.raises(AttributeError, match="no_such_name"):
        netpolgen.no_such_name  # noqa: B018
