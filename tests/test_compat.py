"""Optional dependencies: one place says which extra brings which module."""

from __future__ import annotations

import sys

import pytest

from netpolgen._compat import optional, require
from netpolgen.errors import NetpolgenError


def test_optional_is_none_when_missing() -> None:
    assert optional("netpolgen_no_such_module") is None
    assert optional("json") is sys.modules["json"]


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import of it raises ImportError
    with pytest.raises(NetpolgenError) as caught:
        require("distributed", "the Dask engine")
    assert "the Dask engine needs distributed" in str(caught.value)
    assert caught.value.hint == "pip install 'netpolgen[dask]'"
    # None in sys.modules makes the import fail, whether or not another test imported it.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(NetpolgenError, match="plotting needs matplotlib") as caught:
        require("matplotlib.pyplot", "plotting")
    assert caught.value.hint == "pip install 'netpolgen[notebook]'"
