"""Optional dependencies: the one place that knows which extra brings which module.

netpolgen runs on pandas, PyYAML, click and scikit-learn alone. The ``fast`` extra (pyarrow,
orjson, msgspec) only makes the same work faster, so its modules are :func:`optional`: code
falls back when one is missing. The ``dask`` and ``notebook`` extras enable features, so their
modules are :func:`require`\\ d: a clear error says which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from netpolgen.errors import NetpolgenError

EXTRAS = {
    "pyarrow": "fast", "orjson": "fast", "msgspec": "fast",
    "dask": "dask", "distributed": "dask", "fsspec": "dask",
    "matplotlib": "notebook", "networkx": "notebook",
}  # fmt: skip


def optional(module: str) -> ModuleType | None:
    """``module`` when it is installed, else None (a speed-up with a fallback)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def require(module: str, feature: str, *, source: str | None = None) -> ModuleType:
    """``module``, or a :class:`NetpolgenError` saying which extra brings it.

    Args:
        module: the module to import (``pyarrow.parquet``, ``distributed``, ...).
        feature: what needs it, for the message ("reading Parquet", "the Dask engine").
        source: the input that asked for it, if any.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        missing = getattr(error, "name", None) or top
        extra = EXTRAS.get(missing.split(".")[0], EXTRAS.get(top, "fast"))
        raise NetpolgenError(
            f"{feature} needs {missing.split('.')[0]}, which is not installed",
            source=source,
            hint=f"pip install 'netpolgen[{extra}]'",
        ) from error
