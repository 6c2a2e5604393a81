"""The plugin in a project that does not use zmqtest: it loads next to nothing, and still works where it is used.

Each run is a fresh interpreter (``runpytest_subprocess``): in this process zmqtest is loaded already.
"""

from __future__ import annotations

import re

import pytest

from zmqtest.options import FLAG, OPTIONS
from zmqtest.settings import FLAGS, HELP, METAVARS, NAMES, Settings

SUBPROCESS_DEADLINE = 90.0
INNER = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:timeout", "-p", "no:xdist")

WHAT_IS_LOADED = """
import sys

def test_nothing_to_do_with_zmq():
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("zmqtest", "zmq"))
    print("LOADED", loaded)
"""


def test_a_run_that_does_not_use_zmqtest_loads_only_the_plugin_its_fixtures_and_options(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_plain=WHAT_IS_LOADED)
    result = pytester.runpytest_subprocess(*INNER, "-s", timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=1)
    loaded = ["zmqtest", "zmqtest.entrypoint", "zmqtest.fixtures", "zmqtest.options", "zmqtest.plugin"]
    assert f"LOADED {loaded}" in result.stdout.str()


def test_a_bad_option_is_still_a_usage_error_at_start(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=WHAT_IS_LOADED)
    result = pytester.runpytest_subprocess(*INNER, "--zmqtest-timeout=soon", timeout=SUBPROCESS_DEADLINE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*invalid timeout 'soon' from command line option --zmqtest-timeout*"])


def test_a_test_that_only_asks_for_a_fixture_gets_its_transcript(pytester: pytest.Pytester) -> None:
    """Its module imports pyzmq, not zmqtest: the fixture is what says the test uses zmqtest."""
    pytester.makepyfile(
        test_fixture_only="""
        import zmq

        def test_no_reply(zmq_socket_factory, zmq_endpoint):
            server = zmq_socket_factory(zmq.REP, bind=zmq_endpoint, name="server")
            client = zmq_socket_factory(zmq.REQ, connect=zmq_endpoint, name="client", timeout=0.05)
            client.send(b"ping")
            assert server.recv() == b"ping"
            client.recv()
        """
    )
    result = pytester.runpytest_subprocess(*INNER, timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*zmqtest transcript (call)*", "*client*server*", "*o--*b'ping'*"])


def test_the_zmqtest_marker_alone_makes_a_test_use_its_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_marker_only="""
        import pytest

        @pytest.mark.zmqtest(timeout=0.25)
        def test_timeout():
            from zmqtest.settings import current_timeout

            assert current_timeout() == 0.25
        """
    )
    pytester.runpytest_subprocess(*INNER, timeout=SUBPROCESS_DEADLINE).assert_outcomes(passed=1)


def test_every_setting_has_its_option_and_the_help_names_its_real_default() -> None:
    assert tuple(OPTIONS) == NAMES
    assert tuple(name for name, (metavar, _) in OPTIONS.items() if metavar == FLAG) == FLAGS
    assert set(METAVARS) == set(NAMES) - set(FLAGS)
    defaults = Settings()
    for name in NAMES:
        said = re.search(r"\(default: ([^)]+)\)", HELP[name])
        if said is None:  # flags: off unless given
            assert getattr(defaults, name) is False, name
            continue
        real = getattr(defaults, name)
        assert said.group(1) == ("off" if real is None else format(real, "g") if isinstance(real, float) else real)


LOADERS = """
import sys

def test_which_loader():
    for name in ("zmqtest.options", "zmqtest.fixtures", "zmqtest.plugin"):
        print("LOADER", name, type(sys.modules[name].__loader__).__name__)
"""


def test_the_entry_point_imports_the_plugin_without_the_assertion_rewriter(pytester: pytest.Pytester) -> None:
    """pytest would parse and compile them at each start where it cannot cache its rewritten copies.

    pytest marks an installed plugin's package for rewriting (an editable install may escape that: this one is
    marked by a plugin of the test's own, loaded before the entry points).
    """
    pytester.makepyfile(test_loaders=LOADERS, mark_zmqtest="import pytest\npytest.register_assert_rewrite('zmqtest')\n")
    result = pytester.runpytest_subprocess(*INNER, "-p", "mark_zmqtest", "-s", timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=1)
    for name in ("zmqtest.options", "zmqtest.fixtures", "zmqtest.plugin"):
        result.stdout.fnmatch_lines([f"*LOADER {name} SourceFileLoader"])


def test_the_plugin_named_with_p_works_without_the_entry_point(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 pytest -p zmqtest.plugin``: pytest imports it through its rewriter then."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_loaders=LOADERS + "\n\ndef test_fixture(zmq_endpoint):\n    assert zmq_endpoint\n")
    result = pytester.runpytest_subprocess(*INNER, "-p", "zmqtest.plugin", "-s", timeout=SUBPROCESS_DEADLINE)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*LOADER zmqtest.plugin AssertionRewritingHook"])
