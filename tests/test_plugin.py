"""The pytest plugin, tested from outside with pytester.

Collection, options and markers run in-process (``runpytest``); whatever depends on a
fresh interpreter (``sys.modules``, the line printed when pyzmq is in use, real sockets,
xdist) runs in a subprocess with a deadline.
"""

from __future__ import annotations

import glob
import importlib.metadata

import pytest
import zmq

import zmqtest

SUBPROCESS_DEADLINE = 60.0
"""Seconds an inner pytest run in a subprocess may take before pytester kills it."""
NO_RANDOM = ("-p", "no:randomly")
"""Inner runs keep file order, so outputs and journals can be compared line by line."""
YIELD_IN_TEST = "'yield' keyword is allowed in fixtures, but not in tests"
"""pytest's own collection error for generator tests (pytest >= 8.4)."""
SESSION_LINE = f"zmqtest {zmqtest.__version__}, pyzmq {zmq.pyzmq_version()}, libzmq {zmq.zmq_version()}, timeout"

# --- inner-project modules --------------------------------------------------------------------

DOUBLER = '''
from zmqtest import ProcessTest


class Doubler(ProcessTest):
    """Actions that answer at once: generator tests that need no socket."""

    def double(self, n):
        return 2 * n

    def echo(self, value):
        return value
'''

LOOPBACK = '''
import zmq
from zmqtest import ProcessTest, make_sock

class LoopbackTest(ProcessTest):
    """Two PAIR mimics connected on loopback, made fresh for each test."""

    def setup_method(self):
        self.context = zmq.Context()
        self.left = make_sock(self.context, zmq.PAIR, bind=("", 0))
        self.right = make_sock(self.context, zmq.PAIR, connect=self.left.endpoint)

    def teardown_method(self):
        self.left.close()
        self.right.close()
        self.context.term()
'''

JOURNAL = """
from pathlib import Path

FILE = Path(__file__).with_name("journal.txt")


def note(text):
    with FILE.open("a") as journal:
        journal.write(text + "\\n")
"""

COLLECTED = """
import pytest
from doubler import Doubler


class TestDoubler(Doubler):
    def test_doubles(self):
        doubled = yield ("double", 21)
        assert doubled == 42

    def test_wrong(self):
        doubled = yield ("double", 2)
        assert doubled == 5

    def test_not_a_generator(self):
        assert self.double(1) == 2

    def helper_conversation(self):
        yield ("double", 1)


class TestPlain:
    def test_method(self):
        assert True


def test_function():
    assert True
"""


def verbose_line(test: str, outcome: str) -> str:
    """The fnmatch pattern of ``test``'s line in ``-v`` output (the brackets of parametrize ids are literal)."""
    return f"*::{glob.escape(test)} {outcome}*"


def read_journal(pytester: pytest.Pytester) -> list[str]:
    return (pytester.path / "journal.txt").read_text().splitlines()


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*NO_RANDOM, *args)


def run_subprocess(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*NO_RANDOM, *args, timeout=SUBPROCESS_DEADLINE)


@pytest.fixture
def doubler(pytester: pytest.Pytester) -> pytest.Pytester:
    """An inner project with the ``doubler`` module (a ProcessTest with actions only)."""
    pytester.makepyfile(doubler=DOUBLER)
    return pytester


# --- collection -------------------------------------------------------------------------------


def test_generator_methods_of_process_tests_run_and_ordinary_tests_are_untouched(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(test_collected=COLLECTED)
    result = run(doubler, "-v")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_collected.py::TestDoubler::test_doubles PASSED*",
            "test_collected.py::TestDoubler::test_wrong FAILED*",
            "test_collected.py::TestDoubler::test_not_a_generator PASSED*",
            "test_collected.py::TestPlain::test_method PASSED*",
            "test_collected.py::test_function PASSED*",
        ]
    )
    result.stdout.no_fnmatch_line("*helper_conversation*")


def test_generator_tests_outside_process_tests_still_get_pytests_own_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_plain_class="""
        class TestPlain:
            def test_method(self):
                yield 1
        """,
        test_plain_function="""
        def test_function():
            yield 1
        """,
    )
    result = run(pytester, "--continue-on-collection-errors")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([f"*{YIELD_IN_TEST} (test_method)*", f"*{YIELD_IN_TEST} (test_function)*"])


def test_without_the_zmqtest_plugin_generator_tests_are_a_collection_error(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(test_collected=COLLECTED)
    result = run(doubler, "-p", "no:zmqtest")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines([f"*{YIELD_IN_TEST} (test_doubles)*", "*Interrupted: 1 error during collection*"])


def test_the_plugin_is_registered_through_its_pytest11_entry_point() -> None:
    entry_points = importlib.metadata.entry_points(group="pytest11")
    assert [entry.value for entry in entry_points if entry.name == "zmqtest"] == ["zmqtest.entrypoint:plugin"]


def test_parametrize_with_ids_and_marks_works_on_generator_tests(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(
        test_params="""
        import pytest
        from doubler import Doubler


        ODD = pytest.mark.xfail(reason="odd one", strict=True)


        class TestParams(Doubler):
            @pytest.mark.parametrize("n", [1, 2, pytest.param(3, marks=ODD)])
            def test_numbers(self, n):
                doubled = yield ("double", n)
                assert doubled == 2 * n and n != 3

            @pytest.mark.parametrize(("n", "doubled"), [(1, 2), (5, 10)], ids=["one", "five"])
            def test_ids(self, n, doubled):
                assert (yield ("double", n)) == doubled
        """
    )
    result = run(doubler, "-v")
    result.assert_outcomes(passed=4, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            verbose_line("TestParams::test_numbers[1]", "PASSED"),
            verbose_line("TestParams::test_numbers[2]", "PASSED"),
            verbose_line("TestParams::test_numbers[3]", "XFAIL"),
            verbose_line("TestParams::test_ids[one]", "PASSED"),
            verbose_line("TestParams::test_ids[five]", "PASSED"),
        ]
    )


def test_fixtures_are_generator_test_arguments_and_tear_down_after_the_generator(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(journal=JOURNAL)
    doubler.makeconftest(
        """
        import pytest
        from journal import note


        @pytest.fixture
        def offset():
            return 20


        @pytest.fixture
        def recorded():
            note("fixture set up")
            yield "value"
            note("fixture torn down")
        """
    )
    doubler.makepyfile(
        test_fixtures="""
        import pytest
        from doubler import Doubler
        from journal import note


        class TestFixtures(Doubler):
            def test_builtin_and_conftest_fixtures(self, tmp_path, offset):
                doubled = yield ("double", offset)
                assert tmp_path.is_dir()
                assert doubled == 40

            def test_yield_fixture(self, recorded):
                echoed = yield ("echo", recorded)
                note(f"test got {echoed}")

            def test_default_is_not_a_fixture(self, offset, n=1):
                assert (yield ("double", offset + n)) == 42
        """
    )
    result = run(doubler)
    result.assert_outcomes(passed=3)
    assert read_journal(doubler) == ["fixture set up", "test got value", "fixture torn down"]


def test_setup_and_teardown_methods_run_around_generator_tests(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(journal=JOURNAL)
    doubler.makepyfile(
        test_methods="""
        from doubler import Doubler
        from journal import note


        class TestMethods(Doubler):
            def setup_method(self, method):
                note(f"setup {method.__name__}")

            def teardown_method(self, method):
                note(f"teardown {method.__name__}")

            def test_first(self):
                note(f"first got {(yield ('double', 1))}")

            def test_second(self):
                note(f"second got {(yield ('double', 2))}")
                assert False
        """
    )
    result = run(doubler)
    result.assert_outcomes(passed=1, failed=1)
    assert read_journal(doubler) == [
        "setup test_first",
        "first got 2",
        "teardown test_first",
        "setup test_second",
        "second got 4",
        "teardown test_second",
    ]


def test_skip_skipif_and_xfail_apply_to_generator_tests(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(
        test_marks="""
        import pytest
        from doubler import Doubler


        class TestMarks(Doubler):
            @pytest.mark.skip(reason="not today")
            def test_skip(self):
                yield ("double", 1)
                raise AssertionError("a skipped test ran")

            @pytest.mark.skipif(True, reason="condition holds")
            def test_skipif_true(self):
                yield ("double", 1)
                raise AssertionError("a skipped test ran")

            @pytest.mark.skipif(False, reason="condition fails")
            def test_skipif_false(self):
                assert (yield ("double", 1)) == 2

            def test_skip_at_run_time(self):
                yield ("double", 1)
                pytest.skip("decided at run time")

            @pytest.mark.xfail(reason="known bug", strict=False)
            def test_xfail(self):
                assert (yield ("double", 1)) == 3

            @pytest.mark.xfail(reason="fixed meanwhile", strict=False)
            def test_xpass(self):
                assert (yield ("double", 1)) == 2

            @pytest.mark.xfail(reason="fixed meanwhile", strict=True)
            def test_xpass_strict(self):
                assert (yield ("double", 1)) == 2
        """
    )
    result = run(doubler, "-rsxXf")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1, xpassed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * not today",
            "SKIPPED * condition holds",
            "SKIPPED * decided at run time",
            "XFAIL *::test_xfail - known bug",
            "XPASS *::test_xpass - fixed meanwhile",
            "FAILED *::test_xpass_strict*",
        ]
    )


def test_k_selects_generator_tests_by_name(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(test_collected=COLLECTED)
    result = run(doubler, "-v", "-k", "TestDoubler and not wrong")
    result.assert_outcomes(passed=2, deselected=3)
    result.stdout.fnmatch_lines(["*::test_doubles PASSED*", "*::test_not_a_generator PASSED*"])


def test_last_failed_reruns_only_the_failed_generator_test(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(test_collected=COLLECTED)
    run(doubler, "-p", "cacheprovider").assert_outcomes(passed=4, failed=1)
    result = run(doubler, "-p", "cacheprovider", "--lf", "-v")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure", "*::TestDoubler::test_wrong FAILED*"])


def test_a_test_socket_imported_into_a_test_module_is_not_collected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_imports="""
        from zmqtest import TestSocket


        def test_function():
            assert TestSocket.__test__ is False
        """
    )
    result = run(pytester, "-W", "error")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*cannot collect*")


def test_assertions_are_rewritten_inside_generator_tests(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(
        test_rewrite="""
        from doubler import Doubler


        class TestRewrite(Doubler):
            def test_reply(self):
                reply = yield ("echo", {"name": "pong", "n": 1})
                assert reply == {"name": "pong", "n": 2}
        """
    )
    result = run(doubler)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       assert reply == {"name": "pong", "n": 2}',
            "E       AssertionError: assert {'name': 'pong', 'n': 1} == {'name': 'pong', 'n': 2}",
            "E         Differing items:",
            "E         {'n': 1} != {'n': 2}",
        ]
    )


def test_a_failure_traceback_ends_at_the_users_yield_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(loopback=LOOPBACK)
    source = pytester.makepyfile(
        test_no_reply="""
        import pytest
        from loopback import LoopbackTest


        class TestNoReply(LoopbackTest):
            @pytest.mark.zmqtest(timeout=0.05)
            def test_no_reply(self):
                reply = yield ("recv", self.left)
                assert reply == [["pong", 1]]
        """
    )
    yield_line = source.read_text().splitlines().index('        reply = yield ("recv", self.left)') + 1
    result = run_subprocess(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '>       reply = yield ("recv", self.left)',
            "E       zmqtest.errors.SocketTimeout: recv_multipart on PAIR socket bound to tcp://127.0.0.1:*: "
            "no message within 0.05 s; a peer is connected at tcp://127.0.0.1:*",
            f"E         event: ('recv', <TestSocket PAIR socket bound to tcp://127.0.0.1:*>) "
            f"at test_no_reply.py:{yield_line}",
            "",
            f"test_no_reply.py:{yield_line}: SocketTimeout",
        ]
    )
    for internal in (
        "*zmqtest/runner.py*",
        "*zmqtest/plugin.py*",
        "*zmqtest/sockets.py*",
        "*zmqtest/sendrecv.py*",
        "*zmq/sugar/*",
    ):
        result.stdout.no_fnmatch_line(internal)


# --- markers ----------------------------------------------------------------------------------

TIERS = """
import pytest


@pytest.mark.process
def test_process():
    pass


@pytest.mark.system
def test_system():
    pass


@pytest.mark.zmqtest(timeout=2)
def test_settings():
    pass


def test_unit():
    pass
"""


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.process: a process test *",
            "@pytest.mark.system: a system test *",
            "@pytest.mark.zmqtest(timeout=None, start_method=None, *, deadline=None, transcript_dir=None): "
            "zmqtest settings for this test*",
        ]
    )


def test_strict_markers_accept_the_plugins_markers_and_nothing_else(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_tiers=TIERS)
    pytester.makepyfile(
        test_typo="""
        import pytest


        @pytest.mark.proces
        def test_typo():
            pass
        """
    )
    result = run(pytester, "--strict-markers", "-W", "error", "--continue-on-collection-errors")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*'proces' not found in `markers` configuration option*"])


@pytest.mark.parametrize(
    ("expression", "outcomes"),
    [
        pytest.param("not (process or system)", {"passed": 2, "deselected": 2}, id="not-slow-tiers"),
        pytest.param("process or system", {"passed": 2, "deselected": 2}, id="slow-tiers"),
        pytest.param("", {"passed": 4}, id="empty-selects-all"),
        pytest.param("1", {"deselected": 4}, id="1-is-a-marker-name"),
    ],
)
def test_m_selects_by_tier(pytester: pytest.Pytester, expression: str, outcomes: dict[str, int]) -> None:
    """``-m 1`` selected all in pytest < 5.4 (eval); since then ``1`` is a marker name, and ``-m ""`` selects all."""
    pytester.makepyfile(test_tiers=TIERS)
    run(pytester, "-m", expression).assert_outcomes(**outcomes)


@pytest.mark.parametrize(
    ("args", "outcomes"),
    [
        pytest.param((), {"passed": 2, "deselected": 2}, id="default-skips-the-slow-tiers"),
        pytest.param(("-m", ""), {"passed": 4}, id="empty-runs-all"),
        pytest.param(("-m", "process or system or not (process or system)"), {"passed": 4}, id="tautology-runs-all"),
        pytest.param(("-m", "process or system"), {"passed": 2, "deselected": 2}, id="slow-tiers-only"),
    ],
)
def test_the_readme_recipe_skips_the_slow_tiers_by_default(
    pytester: pytest.Pytester, args: tuple[str, ...], outcomes: dict[str, int]
) -> None:
    """addopts ``-m "not (process or system)"``; a later ``-m`` on the command line replaces it."""
    pytester.makeini('[pytest]\naddopts = -m "not (process or system)"\n')
    pytester.makepyfile(test_tiers=TIERS)
    run(pytester, "--strict-markers", *args).assert_outcomes(**outcomes)


def test_m_1_is_an_unknown_marker_under_strict_markers(pytester: pytest.Pytester) -> None:
    """Without --strict-markers ``-m 1`` selects nothing (see test_m_selects_by_tier); with it, it is an error."""
    pytester.makepyfile(test_tiers=TIERS)
    result = run(pytester, "--strict-markers", "-m", "1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: Unknown marker(s) in '-m' expression: 1. *"])


AUTO_TIERS = """
from doubler import Doubler


class TestConversation(Doubler):
    def test_generator(self):
        doubled = yield ("double", 1)
        assert doubled == 2

    def test_plain_method(self):
        assert self.double(2) == 4


class TestPlain:
    def test_method(self):
        pass


def test_system(zmq_golden):
    zmq_golden.check("same\\n", "same.txt")


def test_unit():
    pass
"""


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("not (process or system)", ["TestPlain::test_method", "test_unit"]),
        ("process", ["TestConversation::test_generator", "TestConversation::test_plain_method"]),
        ("system", ["test_system"]),
    ],
)
def test_process_tests_and_golden_tests_are_marked_automatically(
    doubler: pytest.Pytester, expression: str, selected: list[str]
) -> None:
    """Every test of a ProcessTest subclass is marked ``process``; every test using ``zmq_golden``, ``system``."""
    doubler.makepyfile(test_auto=AUTO_TIERS)
    (doubler.path / "golden").mkdir()
    (doubler.path / "golden" / "same.txt").write_text("same\n")

    result = run(doubler, "-m", expression, "--strict-markers", "-v")

    result.assert_outcomes(passed=len(selected), deselected=5 - len(selected))
    result.stdout.fnmatch_lines([verbose_line(test, "PASSED") for test in selected])


# --- timeout settings -------------------------------------------------------------------------

TIMEOUTS = """
import pytest
from doubler import Doubler
from zmqtest import current_timeout

EXPECTED = {expected}


@pytest.fixture
def timeout_at_setup():
    return current_timeout()


def test_unmarked(timeout_at_setup):
    assert (timeout_at_setup, current_timeout()) == (EXPECTED, EXPECTED)


@pytest.mark.zmqtest(timeout=0.25)
def test_marked(timeout_at_setup):
    assert (timeout_at_setup, current_timeout()) == (0.25, 0.25)


class TestGenerator(Doubler):
    @pytest.mark.zmqtest(timeout="0.125")
    def test_marked_generator(self):
        yield ("double", 1)
        assert current_timeout() == 0.125

    def test_unmarked_generator(self):
        yield ("double", 1)
        assert current_timeout() == EXPECTED
"""


@pytest.mark.parametrize(
    ("ini", "args", "expected", "source"),
    [
        pytest.param("", (), 1.0, "default", id="default"),
        pytest.param("3", (), 3.0, "ini option zmqtest_timeout in tox.ini", id="ini"),
        pytest.param("", ("--zmqtest-timeout=5",), 5.0, "command line option --zmqtest-timeout", id="option"),
        pytest.param("3", ("--zmqtest-timeout", "0.5"), 0.5, "command line option --zmqtest-timeout", id="option>ini"),
        pytest.param("3", ("-o", "zmqtest_timeout=0.75"), 0.75, "command line option -o zmqtest_timeout", id="-o>ini"),
        pytest.param(
            "3",
            ("-o", "zmqtest_timeout=0.75", "--zmqtest-timeout=5"),
            5.0,
            "command line option --zmqtest-timeout",
            id="option>-o",
        ),
    ],
)
def test_timeout_precedence_is_marker_then_option_then_ini_then_default(
    doubler: pytest.Pytester, ini: str, args: tuple[str, ...], expected: float, source: str
) -> None:
    if ini:
        doubler.makeini(f"[pytest]\nzmqtest_timeout = {ini}\n")
    doubler.makepyfile(test_timeouts=TIMEOUTS.format(expected=expected))
    result = run(doubler, *args)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([f"{SESSION_LINE} {expected:g} s ({source}), start method *"])


BAD_TIMEOUT_CONFIG = {
    "tox.ini": "[pytest]\nzmqtest_timeout = abc\n",
    "pytest.ini": "[pytest]\nzmqtest_timeout = abc\n",
    "pyproject.toml": '[tool.pytest.ini_options]\nzmqtest_timeout = "abc"\n',
}


@pytest.mark.parametrize(
    ("config_file", "args", "message"),
    [
        pytest.param(
            None,
            ("--zmqtest-timeout=abc",),
            "ERROR: invalid timeout 'abc' from command line option --zmqtest-timeout: expected a number of seconds*",
            id="option",
        ),
        pytest.param(
            None,
            ("--zmqtest-timeout=inf",),
            "ERROR: invalid timeout 'inf' from command line option --zmqtest-timeout:*an endless wait*",
            id="option-inf",
        ),
        pytest.param(
            None,
            ("-o", "zmqtest_timeout=abc"),
            "ERROR: invalid timeout 'abc' from command line option -o zmqtest_timeout: expected a number of seconds*",
            id="override-ini",
        ),
        pytest.param(
            "tox.ini",
            (),
            "ERROR: invalid timeout 'abc' from ini option zmqtest_timeout in tox.ini: expected a number of seconds*",
            id="tox.ini",
        ),
        pytest.param(
            "pytest.ini",
            (),
            "ERROR: invalid timeout 'abc' from ini option zmqtest_timeout in pytest.ini: expected a number of seconds*",
            id="pytest.ini",
        ),
        pytest.param(
            "pyproject.toml",
            (),
            "ERROR: invalid timeout 'abc' from ini option zmqtest_timeout in pyproject.toml: expected a number*",
            id="pyproject.toml",
        ),
    ],
)
def test_a_bad_timeout_is_a_usage_error_naming_its_source(
    pytester: pytest.Pytester, config_file: str | None, args: tuple[str, ...], message: str
) -> None:
    if config_file is not None:
        (pytester.path / config_file).write_text(BAD_TIMEOUT_CONFIG[config_file])
    pytester.makepyfile(test_unit="def test_unit(): pass")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_bad_zmqtest_marker_errors_that_test_only(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(
        test_bad_markers="""
        import pytest
        from doubler import Doubler


        @pytest.mark.zmqtest(timeout="soon")
        def test_bad_value():
            pass


        @pytest.mark.zmqtest(timeout=1, retries=3)
        def test_unknown_keyword():
            pass


        @pytest.mark.zmqtest(2)
        def test_positional():
            pass


        def test_fine():
            pass


        class TestGenerator(Doubler):
            @pytest.mark.zmqtest(timeout=0)
            def test_zero(self):
                yield ("double", 1)
        """
    )
    result = run(doubler)
    result.assert_outcomes(passed=1, errors=4)
    where = "@pytest.mark.zmqtest on test_bad_markers.py::"
    result.stdout.fnmatch_lines_random(
        [
            f"invalid timeout 'soon' from {where}test_bad_value (timeout=...): expected a number of seconds*",
            f"{where}test_unknown_keyword takes only the keyword arguments timeout, start_method, *; got retries",
            f"{where}test_positional takes only the keyword arguments timeout, start_method, *; got 2",
            f"invalid timeout 0 from {where}TestGenerator::test_zero (timeout=...): expected a number of seconds*",
        ]
    )


def test_help_shows_the_timeout_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--zmqtest-timeout=SECONDS*", "*zmqtest_timeout (string):*"])


def test_help_shows_the_deadline_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--zmqtest-deadline=SECONDS*", "*zmqtest_deadline (string):*"])


# --- inert where unused, visible where used ---------------------------------------------------


def test_a_project_that_never_imports_zmq_loads_neither_pyzmq_nor_the_runner(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inert="""
        import sys


        def test_nothing_heavy_imported():
            assert [name for name in ("zmq", "zmqtest.runner", "zmqtest.sockets") if name in sys.modules] == []
        """
    )
    result = run_subprocess(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("zmqtest *, pyzmq *")


def test_a_project_that_uses_zmq_gets_the_version_and_timeout_line(doubler: pytest.Pytester) -> None:
    doubler.makepyfile(
        test_uses_zmq="""
        from doubler import Doubler


        class TestUsesZmq(Doubler):
            def test_doubles(self):
                assert (yield ("double", 1)) == 2
        """
    )
    result = run_subprocess(doubler, "--zmqtest-timeout=2.5")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["collected 1 item", f"{SESSION_LINE} 2.5 s (command line option --zmqtest-timeout), start method forkserver"]
    )


def test_generator_tests_pass_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(loopback=LOOPBACK)
    pytester.makepyfile(
        test_xdist="""
        import pytest
        from loopback import LoopbackTest


        class TestPingPong(LoopbackTest):
            @pytest.mark.parametrize("n", range(4))
            def test_round_trip(self, n):
                yield ("send", self.left, [], ["ping", n])
                request = yield ("recv", self.right)
                yield ("send", self.right, [], ["pong", n])
                reply = yield ("recv", self.left)
                assert (request, reply) == ([["ping", n]], [["pong", n]])
        """
    )
    result = run_subprocess(pytester, "-n", "2")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*2 workers*"])
