"""The results as a console table, as docs/benchmarks.md, and as docs/benchmarks.png."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_common import Result, Row, machine_line

TARGET_P2_MS = 5.0
COMMAND = 'python -m pip install ".[bench]" && python tests/benchmarks/run.py'

WHY_MISSED: dict[str, str] = {
    "P1": (
        "A ProcessTest round trip does more than two blocking pyzmq calls: two generator resumes, the runner's "
        "dispatch (`ProcessTest._drive`: `gen.send`, a dict hit, the action call), the actions' checks "
        "(`ProcessTest.send`/`recv`), the TestSocket wrappers (`zmqtest/sendrecv.py`: the timeout, the watch, the "
        "armed-timeout cache) and a transcript entry per message; and it frames the body with `JsonCodec`, not "
        "`json.dumps`/`json.loads`. Since issue 14 item 1 (2026-12-04) the multipart wrappers have pyzmq's explicit "
        "signature and call libzmq's send/recv directly with the transcript's common case inline, the actions take "
        "their common case without helpers, and `JsonCodec` builds its C encoder once per thread and decodes with "
        "json's scanner directly: 31 Python calls per round trip (raw: 29; 53 before), and the framing a third of "
        "`json.dumps` + `json.loads`, which more than pays for the rest (the framing-aside row: about 0.6 us on this "
        "VM). A miss then means a loaded machine: compare the framing-aside row with the bare echo's round trip."
    ),
    "P2": (
        "A timeout that fires late on an idle machine means the wait slept past its deadline: libzmq's RCVTIMEO "
        "and `zmq_poll` count whole milliseconds, so up to about 1 ms late is their granularity; more than that "
        "is the scheduler not running the process on time because other programs hold the CPUs."
    ),
    "P3": (
        "A zmqtest process test does more than the bare start + ping + stop: it redirects the child's output to "
        "files, puts it in a session of its own, registers it with the watchdog (`zmqtest.reaper`), waits for "
        "readiness through the mimic's connection, collects the child's log records, stops it with SIGINT and "
        "makes sure its whole process group is gone, and terminates the context in a helper thread. Issue 14 "
        "(2026-12-04) made these cheaper, measured side by side with the code before (two interpreters, "
        "interleaved blocks; the machine was loaded by other sessions, load average 7-10, so CPU time is the "
        "figure to trust): the group sweep no longer scans /proc at each stop (the leader's zombie made "
        "`killpg(pgid, 0)` succeed; now the group is SIGKILLed by number while the zombie holds it, the leader "
        "reaped, and one `killpg(pgid, 0)` answers ESRCH for an empty group: 0.7 ms); the descendants noted at "
        "stop are read through `/proc/<tid>` (under `/proc/<pid>/task/<tid>` they made the kernel's reaping of "
        "the process cost 1-3 ms of CPU, perf: `d_walk` in `release_task`); the log collector's socket lives on "
        "the test's context (no context with two I/O threads per test); the forkserver preloads "
        "`zmqtest.childsetup`, `zmqtest.logs` and `zmqtest.endpoints` (a forkserver child's CPU 43 -> 29 ms, "
        "bare 27-30). The test process's CPU per test: fork 9.2 -> 5.2 ms (bare 1.5), forkserver 7.6 -> 5.2 ms "
        "(bare 1.3); wall, load average 3.3: fork 12.4 -> 10.9 ms (bare 5.7: 2.17x -> 1.94x), forkserver 46 -> 30 ms "
        "(bare 24: 1.87x -> 1.26x); at load 10 the ratios were twice that: a zmqtest test wakes more processes "
        "and threads, and each wake-up waits for a CPU. What is left on "
        "the fork path (timeline marks in test and child): readiness 1.3-1.8 ms after the child has bound "
        "(libzmq retries a refused connect every 2-3 ms: the mimics' RECONNECT_IVL of 2 ms plus its jitter); "
        "the child's log forwarder (`zmqtest.logs.forward`: a zmq context of its own, 0.6 ms before the child "
        "binds, its flush at exit 0.5 ms); the child-side setup 0.5 ms; copy-on-write page faults in the test "
        "process while the child lives (a third of its CPU in perf); context termination in a thread 0.5 ms. "
        "What it would take: readiness without the reconnect wait (a 1 ms interval saved 0.25-0.5 ms; or the "
        "child reporting it), a forwarder that connects on its first record, and fewer Python steps in the test "
        "process while the child runs. Measure on a quiet machine."
    ),
    "P4": (
        "With zmqtest installed, pytest loads its plugin in every project and, since it is an entry-point plugin, "
        "passes every module of its distribution that it imports through its assertion rewriter. Since 2026-12-04 "
        "the plugin imports only `zmqtest.fixtures` and the literals of `zmqtest.options` (no settings dataclass, "
        "transcript, deadline), and registers the hooks that run each test (`zmqtest.testhooks`) only once "
        "collection shows the run may use zmqtest. Instruction counts (callgrind, one run of the trivial project, "
        "PYTHONHASHSEED=0; repeatable under load, unlike times): pytest only 771.9 M; zmqtest installed with an "
        "empty plugin 781.5 M (1.012x: the distribution and its pyzmq dependency, the package `__init__`); before "
        "823.4 M (1.067x); now 793.5 M (1.028x). With PYTHONDONTWRITEBYTECODE=1 and nothing cached (a fresh "
        "container): before 979.4 M (1.269x), now 829.3 M (1.074x), empty plugin 789.8 M (1.023x). Why the cold "
        "case stays above 1.03x: without bytecode writing pytest parses and compiles `plugin.py`, `fixtures.py` "
        "and `options.py` (~22 KB, mostly the options' and fixtures' help that `--help` and `--fixtures` show) at "
        "every start; PYTEST_DONT_REWRITE (in their docstrings) spares only the walk for asserts. What it would "
        "take: less source loaded at start (the fixtures must be defined before collection), or a pytest that "
        "lets a plugin's modules be imported without its rewriter. Wall-time figures on a loaded machine (load "
        "average 8-10 on 2 CPUs) spread far more than this difference (p10-p90 of round ratios 0.7-1.3)."
    ),
    "P5": (
        "Two workers can only be twice as fast if two CPUs are free for them and the work splits evenly; xdist "
        "adds CPU of its own (two more interpreters importing pytest, zmqtest and pyzmq, and each test's report). "
        "CPU per test is the figure that can be measured on a loaded machine: all processes' CPU (the pytest "
        "processes, the forkserver, the children under test, the watchdog; rusage and /proc at the end of the "
        "session), 500 tests, 2026-12-04, before -> after issue 14: serial 38.6 -> 18.3 ms per test (pytest "
        "9.9 -> 6.3, forkserver 4.5 -> 0.8, children 23.9 -> 11.1, watchdog 0.2), `-n 2` 39.5 -> 21.7 ms (the "
        "three pytest processes 12.8 -> 9.5). The children no longer import zmqtest's modules (preloaded by the "
        "forkserver) and the forkserver, which reaps them, no longer pays for our reads of their /proc entries "
        "(see P3). The serial run went 32.5 -> 9.4 s, and is now CPU-bound (9.4 s of wall for 9.2 s of CPU: the "
        "test process and its child already overlap on the two CPUs), so `-n 2` has only what is left of the "
        "second CPU to gain from; in this page's run other sessions kept the machine busy (load average 3.3, "
        "7-10 in the runs before), and `-n 2` took as long as serial. The wall-clock speed-up needs a quiet "
        "machine. Why it is missed, and what it would take: even on a quiet machine the ceiling is "
        "2 x 18.3 / 21.7 = 1.69x, because of xdist's 3.4 ms of CPU per test; what "
        "lifts it is less CPU per test in the pytest process (6.3 ms, zmqtest's plugin and fixtures among it) and "
        "in the child (its own import of the application, `pingpong.pong` here, some 5 ms: "
        "`multiprocessing.set_forkserver_preload`, a choice only the user can make)."
    ),
}


NEAR = 0.85
"""A met target is 'nearly missed' when the figure uses more than this share of what the target allows."""


def near(row: Row) -> bool:
    """Whether ``row`` met its target with little to spare.

    For a ratio the share is that of the overhead (``1.08x`` of ``≤ 1.10x`` uses 80 % of the
    10 % allowed; ``1.78x`` of ``≥ 1.7x`` has 0.78 where 0.7 is needed); for a time, that of the limit.
    """
    match = re.match(r"([≤≥]) \+?([\d.]+)(x?)", row.target)
    if not row.met or match is None:
        return False
    limit = float(match.group(2))
    value = row.ratio if match.group(3) else row.median
    if value is None:
        return False
    if match.group(3):
        value, limit = value - 1, limit - 1
    if value <= 0 or limit <= 0:
        return False
    used = value / limit if match.group(1) == "≤" else limit / value
    return used > NEAR


def fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio_text(row: Row) -> str:
    if row.ratio is None:
        return "1 (reference)" if "(reference)" in row.what else ""
    text = f"{row.ratio:.3f}x" if row.ratio < 2 else f"{row.ratio:.1f}x"
    if row.ratio_spread is not None:
        low, high = row.ratio_spread
        text += f" ({low:.2f}-{high:.2f})"
    return text


def met_text(row: Row) -> str:
    return "" if row.met is None else ("yes" if row.met else "**no**")


def table_rows(results: Sequence[Result]) -> list[list[str]]:
    lines = []
    for result in results:
        for row in result.rows:
            lines.append(
                [
                    row.bench,
                    row.what,
                    f"{fmt(row.median)} {row.unit}",
                    f"{fmt(row.p10)}-{fmt(row.p90)}",
                    str(row.n),
                    ratio_text(row),
                    row.target,
                    met_text(row),
                ]
            )
    return lines


HEADER = ["", "what", "median", "p10-p90", "n", "ratio (p10-p90 of rounds)", "target", "met"]


def console_table(results: Sequence[Result]) -> str:
    lines = [HEADER, *table_rows(results)]
    lines = [[cell.replace("**", "").replace("`", "") for cell in line] for line in lines]
    widths = [max(len(line[column]) for line in lines) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def markdown(results: Sequence[Result], info: dict[str, Any]) -> str:
    machine = info["machine"]
    out = [
        "# Benchmarks",
        "",
        "How much zmqtest costs next to doing the same by hand, measured side by side in one run. Variants that are "
        "compared run in interleaved rounds with rotating order, so a slow spell of the machine hits all of them; "
        "a ratio is the median over rounds (or pairs of runs) of variant / reference, shown with the p10-p90 of "
        "those per-round ratios. Medians and p10-p90 are over every measurement.",
        "",
        "Run them (from a clone of this repository; the whole run takes several minutes and rewrites this page and "
        "its plot):",
        "",
        "```sh",
        COMMAND,
        "python tests/benchmarks/run.py --only P1,P2 --scale 0.2   # a quick look: two benchmarks, fewer rounds",
        "python tests/benchmarks/run.py --help                      # every option",
        "```",
        "",
        "The sources are in [`tests/benchmarks/`](../tests/benchmarks/), one module per benchmark, each starting "
        "with a docstring that says exactly what it measures.",
        "",
        "## Latest run",
        "",
        f"- Date: {info['date']}; whole run {info['seconds']:.0f} s (`{info['command']}`).",
        f"- Machine: {machine['cpu']}; {machine['cores']} CPUs; {machine['memory']}; {machine['kernel']}.",
        f"- Software: {machine['python']}, pyzmq {machine['pyzmq']}, libzmq {machine['libzmq']}, "
        f"pytest {machine['pytest']}.",
        f"- Load average at start {info['load_start']}, at end {info['load_end']}; CPU busy with other programs "
        "just before each benchmark (sampled for 0.5 s while it was idle): "
        + ", ".join(
            f"{result.bench} {result.background_cpu:.0f}%" for result in results if result.background_cpu is not None
        )
        + ".",
    ]
    if info.get("remark"):
        out += ["", f"**{info['remark']}**"]
    out += [
        "",
        "![benchmark plot](benchmarks.png)",
        "",
        "## Results",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in table_rows(results)]
    missed = [result for result in results if any(row.met is False or near(row) for row in result.rows)]
    out += ["", "## Targets missed or nearly missed: why, and what it would take", ""]
    if not missed:
        out += ["Every target was met in this run, each with some room to spare.", ""]
    for result in missed:
        rows = [row for row in result.rows if row.met is False or near(row)]
        figures = "; ".join(
            f"{row.what}: {ratio_text(row) or fmt(row.median) + ' ' + row.unit} (target {row.target}, "
            f"{'missed' if row.met is False else 'met, but close'})"
            for row in rows
        )
        others = [
            f"{row.what}: {ratio_text(row)}"
            for row in result.rows
            if row.met is None and row.ratio is not None and row.key != "article"
        ]
        context = f" The other rows of this run, for comparison: {'; '.join(others)}." if others else ""
        out += [f"- **{result.bench}** ({figures}). {WHY_MISSED.get(result.bench, '')}{context}", ""]
    out += ["## What each benchmark measures", ""]
    for result in results:
        out += [f"### {result.bench}: {result.title}", "", *[f"- {note}" for note in result.notes], ""]
        out.append(f"Took {result.seconds:.0f} s.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def target_line(row: Row) -> str:
    figure = ratio_text(row).split(" (")[0] or f"{fmt(row.median)} {row.unit}"
    where = row.key.replace("\n", " ")
    return f"{row.bench} {'met   ' if row.met else 'MISSED'} {figure:>9}  target {row.target:<16} {where}"


def plot(results: Sequence[Result], info: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [result for result in results if result.rows]
    columns = min(3, len(panels)) or 1
    lines = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(6.2 * columns, 4.6 * lines), squeeze=False)
    for ax, result in zip(axes.flat, panels, strict=False):
        rows = result.rows
        labels = [row.key or row.what for row in rows]
        medians = [row.median for row in rows]
        low = [max(row.median - row.p10, 0) for row in rows]
        high = [max(row.p90 - row.median, 0) for row in rows]
        colors = ["tab:green" if row.met else "tab:red" if row.met is False else "tab:gray" for row in rows]
        positions = range(len(rows))
        ax.barh(list(positions), medians, xerr=[low, high], color=colors, capsize=3)
        ax.set_yticks(list(positions), labels, fontsize=7)
        ax.invert_yaxis()
        unit = rows[0].unit
        ax.set_xlabel(f"median ({unit}), whiskers p10-p90", fontsize=8)
        smallest = min((abs(m) for m in medians if m), default=1.0)
        if max(abs(m) for m in medians) / smallest > 20:  # a cost below zero (the harness faster): symmetric log
            ax.set_xscale("log" if min(medians) > 0 else "symlog", **({} if min(medians) > 0 else {"linthresh": 1}))
        if result.bench == "P2":
            ax.axvline(TARGET_P2_MS, color="tab:green", linestyle="--", linewidth=1)
            ax.annotate(f" target +{TARGET_P2_MS:g} ms (idle)", (TARGET_P2_MS, len(rows) - 0.5), fontsize=7)
        for position, row in zip(positions, rows, strict=True):
            if row.ratio is not None:
                ax.annotate(
                    f" {row.ratio:.2f}x",
                    (row.median, position),
                    fontsize=7,
                    va="bottom",
                    ha="left",
                )
        ax.set_title(f"{result.bench}: {result.title}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    spare = list(axes.flat)[len(panels) :]
    for ax in spare:
        ax.axis("off")
    if spare:
        lines_text = [target_line(row) for result in panels for row in result.rows if row.met is not None]
        spare[0].text(0, 1, "Targets\n\n" + "\n".join(lines_text), va="top", family="monospace", fontsize=7)
    figure.suptitle(
        f"zmqtest benchmarks, {info['date']}\n{machine_line(info['machine'])}"
        + (f"\n{info['remark']}" if info.get("remark") else ""),
        fontsize=10,
    )
    figure.text(0.01, 0.005, "green: target met, red: missed, gray: reference or no target", fontsize=7)
    figure.tight_layout(rect=(0, 0.02, 1, 0.93))
    figure.savefig(path, dpi=110)
    plt.close(figure)
