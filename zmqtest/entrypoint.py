"""pytest's entry point for zmqtest (``pytest11: zmqtest = zmqtest.entrypoint:plugin``): :mod:`zmqtest.plugin`,
imported with Python's own loader.

pytest passes every module of an entry-point plugin's distribution through its assertion rewriter, which parses
and compiles each one it imports at every start where it cannot cache the result (``PYTHONDONTWRITEBYTECODE``, a
fresh CI job): for the plugin, its fixtures and its options, some 18 M instructions, 2 % of pytest's own start, in
every project where zmqtest is installed. They hold no asserts, so this module imports them as any library module
is imported (from the bytecode pip compiled, or compiling the source straight away) and pytest registers the plugin
under the same name. With ``-p zmqtest.plugin`` instead, pytest imports it through the rewriter, as it would any
plugin.

PYTEST_DONT_REWRITE: it has no asserts.
"""

import sys
from importlib.machinery import PathFinder
from importlib.util import module_from_spec


def _import_plainly(name: str) -> object:
    """Import the module ``zmqtest.<name>`` as Python does without pytest's import hook in ``sys.meta_path``."""
    package = sys.modules["zmqtest"]
    module = sys.modules.get(f"zmqtest.{name}")
    if module is None:
        spec = PathFinder.find_spec(f"zmqtest.{name}", package.__path__)
        if spec is None or spec.loader is None:  # not a plain source or bytecode file: let the import system say
            return __import__(f"zmqtest.{name}", fromlist=["_"])
        module = sys.modules[spec.name] = module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[spec.name]
            raise
        setattr(package, name, module)
    return module


# the plugin's own imports of its fixtures and options then find them loaded
plugin = [_import_plainly(name) for name in ("options", "fixtures", "plugin")][-1]
