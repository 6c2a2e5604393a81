"""zmqtest: process testing for pyzmq applications.

Start the real process under test, play its peers with mimic sockets, and write the
conversation as a generator test. See README.md for a tour.

The public names load on first use, from where :mod:`zmqtest.exports` says each lives, so
that the pytest plugin (which imports this package) costs nothing in projects that do not use
zmqtest; type checkers read them from ``__init__.pyi``.

PYTEST_DONT_REWRITE: it has no asserts, so pytest's assertion rewriter need not walk it.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name[0] == "_" and name != "__all__":  # what pytest and others probe for (__wrapped__, _mock_name, ...)
        raise AttributeError(f"module 'zmqtest' has no attribute {name!r}")
    from zmqtest.exports import load

    return load(name)


def __dir__() -> list[str]:
    from zmqtest.exports import NAMES

    return sorted(NAMES)
