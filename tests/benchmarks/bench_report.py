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
        "A ProcessTest round trip does more than two blocking pyzmq calls: profiled (cProfile, 10,000 inproc round "
        "trips), the harness runs 56 Python calls per round trip where raw pyzmq with the same framing runs 29: two "
        "generator resumes and the runner's dispatch (`ProcessTest._drive`: `gen.send`, a dict hit, the action call), "
        "the actions' argument checks (`ProcessTest.send`/`recv`), the TestSocket wrapper of each call "
        "(`zmqtest/sendrecv.py`: the timeout, the watch, the armed-timeout cache), a transcript entry per message "
        "and the decoding. Cut on 2026-12-04 (inproc, interleaved: 2.0-2.2 us -> 1.4-1.7 us per round trip): the "
        "multipart calls call pyzmq's compiled send/recv/get directly (pyzmq's Python `send` only adds draft "
        "options never passed here), the transcript takes the hot calls' frames without a helper call, the default "
        "timeout is one C call, JsonCodec decodes with json's decoder directly. What is left is the design's own: an "
        "event is a generator resume plus a method call with its checks, a wrapper with its bookkeeping and a "
        "transcript entry, about 1.5 us of CPython 3.11 on this VM. Over tcp the bare echo answers in ~33 us, so "
        "1.5-2 us is 1.05x; the 1.03x target needs the same <= 1 us. What it would take: about half of the "
        "remaining Python frames gone, e.g. send_multipart/recv_multipart wrappers with pyzmq's explicit signature "
        "(no *args/**kwargs packing), the transcript's common case inlined in the wrapper, a JSON encoder built once; "
        "or a faster interpreter (3.12+ makes calls cheaper)."
    ),
    "P2": (
        "A timeout that fires late on an idle machine means the wait slept past its deadline: libzmq's RCVTIMEO "
        "and `zmq_poll` count whole milliseconds, so up to about 1 ms late is their granularity; more than that "
        "is the scheduler not running the process on time because other programs hold the CPUs."
    ),
    "P3": (
        "A zmqtest process test does more than the bare start + ping + stop: it redirects the child's output to "
        "files, puts it in a session of its own, registers it with the watchdog (`zmqtest.reaper`), waits for "
        "readiness through a socket monitor (ready = the mimic's connection), stops it with SIGINT and then makes "
        "sure its whole process group is gone, and terminates the context in a helper thread. These are fixed costs "
        "of some milliseconds: small next to forkserver, spawn or a command line (tens to hundreds of "
        "milliseconds), but a bare fork start + ping + stop takes only about 10 ms. Profiled on the 2-core VM "
        "(2026-11-21, fork, bare 11 ms vs zmqtest 26 ms per test): readiness 10 ms (the mimic connects before the "
        "child has bound, so libzmq retries after the mimic's 10 ms RECONNECT_IVL; with 1 ms the test took 24 "
        "instead of 29 ms), start 3.3 ms, stop 4 ms, the watchdog's registration 0.9 ms, log collection 0.9 ms, "
        "context termination 0.6 ms. What it would take: a shorter reconnect interval for mimics that wait for a "
        "process's readiness (or readiness reported by the child), and a cheaper stop (e.g. skip the group sweep "
        "when the process group is already empty). Forkserver: zmqtest makes the forkserver preload pyzmq "
        "(`zmqtest.processes.FORKSERVER_PRELOAD`) and mimics reconnect every 2 ms (was 10), which took zmqtest's "
        "forkserver test from 97 to 69 ms and its fork test from 28 to 21 ms; the bare reference runs in the same "
        "interpreter and so shares that forkserver and its preload (64 -> 37-41 ms), which a bare user would not "
        "have. What is left over the bare start is the pickling of the Process with its child-side setup and the "
        "fixed costs above."
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
        "Most of a process test's time is CPU spent starting the process: every forkserver child imports pyzmq "
        "and the application afresh (tens of milliseconds of CPU), and the test's own process does its share. "
        "Two workers can only be twice as fast if two CPUs are free for them; on a machine loaded by other "
        "programs they are not, and xdist's start-up (two more interpreters importing pytest, zmqtest and pyzmq) "
        "is a fixed cost on top. Making each test cheaper made both runs faster but the ratio no better: with the "
        "forkserver preloading pyzmq and a 2 ms reconnect interval, serial went 52 -> 32.5 s and `-n 2` 37 -> 20.8 s "
        "(speed-up 1.63x -> 1.56x): what a test saved was mostly time spent waiting, which a second worker had "
        "already overlapped; what is left is CPU, shared by the two workers and the children they start. What it "
        "would take: less CPU per test in the test process (readiness through a socket monitor, the group sweep at "
        "stop, a log collector per test) and in the child (preloading the application's own modules, "
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
        if max(medians) / max(min(medians), 1e-9) > 20:
            ax.set_xscale("log")
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
