"""The public API (``netpolgen.__all__``): documented, with examples, and the examples run."""

from __future__ import annotations

import doctest
import inspect
import sys

import pytest

import netpolgen

PUBLIC = sorted(netpolgen.__all__)
CALLABLES = [n for n in PUBLIC if inspect.isfunction(getattr(netpolgen, n))
             or inspect.isclass(getattr(netpolgen, n))]  # fmt: skip


def test_all_names_exist() -> None:
    missing = [name for name in PUBLIC if not hasattr(netpolgen, name)]
    assert not missing


@pytest.mark.parametrize("name", CALLABLES)
def test_public_name_has_a_docstring_with_an_example(name: str) -> None:
    obj = getattr(netpolgen, name)
    doc = inspect.getdoc(obj) or ""
    assert doc, f"netpolgen.{name} has no docstring"
    # The exception tree is drawn in netpolgen.errors instead of an example per class.
    if not (inspect.isclass(obj) and issubclass(obj, netpolgen.NetpolgenError)):
        assert "Examples:" in doc, f"netpolgen.{name}: add an Examples: section"


@pytest.mark.parametrize(
    "name", [n for n in CALLABLES if inspect.isfunction(getattr(netpolgen, n))]
)
def test_public_function_documents_its_arguments(name: str) -> None:
    function = getattr(netpolgen, name)
    doc = inspect.getdoc(function) or ""
    parameters = [p for p in inspect.signature(function).parameters if p != "self"]
    if parameters:
        assert "Args:" in doc, f"netpolgen.{name}: add an Args: section (Google style)"
        for parameter in parameters:
            assert f"{parameter}" in doc, f"netpolgen.{name}: document {parameter}"


def test_docstring_examples_run() -> None:
    modules = sorted({getattr(netpolgen, n).__module__ for n in CALLABLES}, key=str)
    failures = 0
    for module_name in modules:
        module = sys.modules[module_name]
        result = doctest.testmod(module, extraglobs={"netpolgen": netpolgen}, verbose=False)
        failures += result.failed
    assert failures == 0


def test_every_exception_class_is_public() -> None:
    """Callers catch what netpolgen raises by name: every error class is in ``__all__``."""
    import netpolgen.errors as errors

    classes = {
        name for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == errors.__name__
    }  # fmt: skip
    assert classes <= set(netpolgen.__all__), sorted(classes - set(netpolgen.__all__))
    assert all(issubclass(getattr(netpolgen, name), netpolgen.NetpolgenError) for name in classes)


def test_public_names_are_not_shadowed_modules() -> None:
    """``netpolgen.verify`` and ``netpolgen.generate`` are the functions: no subpackage or
    module of the same name hides behind them (the modules are ``netpolgen.check.verify`` and
    ``netpolgen.generator``)."""
    from pathlib import Path

    package = Path(netpolgen.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if p.is_dir()
    }
    assert not (set(netpolgen.__all__) & modules)
