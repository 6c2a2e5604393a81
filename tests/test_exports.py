"""The package's public names: loaded on first use from where zmqtest.exports says, typed in zmqtest/__init__.pyi.

The two lists are kept apart so that importing the package (the pytest plugin does, in every pytest run) parses
neither: these tests keep them the same.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import zmqtest
from zmqtest.exports import EXPORTS

STUB = Path(zmqtest.__file__).with_name("__init__.pyi")


def stub_names() -> tuple[dict[str, str], list[str]]:
    """The stub's imports (name: module) and its ``__all__``."""
    tree = ast.parse(STUB.read_text())
    imported = {
        alias.asname or alias.name: node.module or ""
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    declared = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
    )
    return imported, declared


def test_the_stub_types_the_names_the_package_loads_from_the_same_modules() -> None:
    imported, declared = stub_names()
    assert imported == EXPORTS
    assert sorted(declared) == sorted(zmqtest.__all__) == sorted([*EXPORTS, "__version__"])


def test_each_public_name_loads_from_its_module_and_stays_on_the_package() -> None:
    """In a fresh interpreter: in this one, pytester's in-process runs drop modules that zmqtest's names came from."""
    code = (
        "import sys, zmqtest; from zmqtest.exports import EXPORTS; "
        "print([name for name, module in EXPORTS.items() if not "
        "(getattr(zmqtest, name) is getattr(sys.modules[module], name) is vars(zmqtest)[name])], "
        "dir(zmqtest) == sorted(zmqtest.__all__))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert output.stdout.strip() == "[] True"


def test_an_unknown_name_is_an_attribute_error_that_names_it() -> None:
    with pytest.raises(AttributeError, match="module 'zmqtest' has no attribute 'NoSuchThing'"):
        _ = zmqtest.NoSuchThing  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="module 'zmqtest' has no attribute '__wrapped__'"):
        _ = zmqtest.__wrapped__  # type: ignore[attr-defined]


def test_importing_the_package_loads_neither_list_and_probes_for_private_names_load_nothing() -> None:
    code = (
        "import sys, zmqtest; hasattr(zmqtest, '__wrapped__'); hasattr(zmqtest, '_mock_name'); "
        "print(sorted(name for name in sys.modules if name.startswith('zmqtest')))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert output.stdout.strip() == "['zmqtest']"


def test_a_star_import_gives_every_public_name() -> None:
    code = "from zmqtest import *; print(sorted(name for name in dir() if not name.startswith('__')))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert output.stdout.strip() == str(sorted(EXPORTS))
