"""conftest for the pingpong example.

Its presence is what makes ``import pingpong`` work in the tests: in pytest's default
(prepend) import mode, the directory of a conftest.py that is not inside a package is
put on ``sys.path``. zmqtest itself comes in through its pytest11 entry point, so
nothing else is needed here.
"""
