"""How each setting reads as a pytest option: its help text, and its metavar or that it is a flag.

Only literals, so that the pytest plugin can register its options in every project at next
to no cost (:mod:`zmqtest.settings`, with the :class:`~zmqtest.settings.Settings` dataclass,
loads only once a test uses zmqtest). A setting is a field of ``Settings`` and its parser
(:mod:`zmqtest.settings`) and its line here; :mod:`zmqtest.settings` checks that each field
has one, and a test that each default named here is the real one.

PYTEST_DONT_REWRITE: it has no asserts, and pytest, which passes every module of a plugin's distribution through
its assertion rewriter, need not walk it at each start where it cannot cache the result (PYTHONDONTWRITEBYTECODE).
"""

FLAG = ""
"""The metavar of an on/off setting: its command-line option takes no value and turns it on."""

OPTIONS: "dict[str, tuple[str, str]]" = {
    "timeout": ("SECONDS", "Seconds a mimic socket waits for a send or receive (default: 1)"),
    "start_method": ("METHOD", "How multiprocessing children start: fork, forkserver, spawn (default: forkserver)"),
    "startup_timeout": ("SECONDS", "Seconds a process under test may take to become ready (default: 10)"),
    "stop_grace": ("SECONDS", "Seconds each stop stage waits before the next, harder one (default: 2)"),
    "transcript": (
        "WHEN",
        "Which test reports show the transcript of messages and process events: failed, always, never "
        "(default: failed)",
    ),
    "strict": (
        FLAG,
        "Fail a test whose mimic sockets still hold unread messages at its end (ini/marker: true or false)",
    ),
    "update_golden": (FLAG, "Rewrite golden files with the output of system tests instead of failing on a difference"),
    "deadline": (
        "SECONDS",
        "Seconds a whole test (setup, call, teardown) may take before zmqtest fails it, stops its processes and "
        "reports where it was; 0 or off: none (default: off)",
    ),
    "transcript_dir": (
        "DIR",
        "Write each failing test's transcript as JSON Lines to DIR/<test id>.jsonl, relative to where pytest "
        "started (default: off)",
    ),
}
"""Setting name: (metavar, or :data:`FLAG`; help), in the order of the fields of ``Settings``."""
