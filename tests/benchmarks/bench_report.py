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
        "(2026-12-04) made these cheaper, measured side by side with the code before: the group sweep without a "
        "/proc scan at each stop (0.7 ms), the descendants read through `/proc/<tid>` (the kernel's reaping cost "
        "1-3 ms of CPU through `/proc/<pid>/task/<tid>`), the log collector's socket on the test's context, the "
        "forkserver preloading zmqtest's child-side modules (a child's CPU 43 -> 29 ms), the child's log "
        "forwarder connecting with its first record (0.24 ms before the child binds, was 1.0 ms; none at all "
        "for a process that never logs), and the mimics reconnecting every 1 ms (was 2): readiness waits for the "
        "mimic's next retry after the bind, 1.0-1.7 ms at 2 ms with libzmq's jitter, 0.3-0.6 ms at 1 ms. The "
        "test process's CPU per fork test went 9.2 -> 5.4 ms (bare 1.5). Why fork is still above 1.5x: the bare "
        "reference's child reports its port through a pipe and its REQ connects once, to a bound port, while "
        "zmqtest's readiness is the mimic's own connection (up to one reconnect interval after the bind); the "
        "forwarder's flush at exit (0.3 ms: closing with linger is how libzmq confirms the records went); the "
        "context's termination in a thread (0.3 ms: sockets made with `zmq.Socket(ctx, ...)` are not tracked, so "
        "only a thread keeps the wait bounded); copy-on-write page faults in the test process while the forked "
        "child lives (the same bookkeeping costs about three times as much on the fork path as on the "
        "forkserver's). What it would take: a child that reports its bind (a change to what the process under "
        "test does, so not by default), or fewer Python steps in the test process while the child runs."
    ),
    "P4": (
        "With zmqtest installed, pytest loads its plugin in every project and, since it is an entry-point plugin, "
        "passes every module of its distribution that it imports through its assertion rewriter "
        "(`_mark_plugins_for_rewrite` marks the top-level package, so all of `zmqtest.*`); where it cannot write "
        "its cache (PYTHONDONTWRITEBYTECODE=1, a fresh container or CI job) it parses and compiles each of them at "
        "every start. The cost follows the code, about 13 k instructions per node of the parsed tree, not the "
        "bytes (a docstring is one node). Since 2026-12-04 the modules loaded at start hold only what pytest must "
        "see before collection: `zmqtest/fixtures.py` keeps each fixture's name, arguments and help and hands "
        "over to `zmqtest/fixturework.py`; `zmqtest/plugin.py` keeps each hook's cheap check and hands the work "
        "to `zmqtest/pluginwork.py`; `zmqtest/__init__.py` keeps `__version__` and a `__getattr__` (the public "
        "names in `zmqtest/exports.py`, their types in `zmqtest/__init__.pyi`). Instruction counts (callgrind, "
        "one run of the trivial project, PYTHONHASHSEED=0; they decide the target): pytest only 772 M, an empty "
        "plugin 781 M (1.011x: the distribution and its pyzmq dependency); with the bytecode cache 823 -> 791 M "
        "(1.067x -> 1.024x); without it 979 -> 804 M (1.269x -> 1.041x). What is left over the empty plugin: "
        "10 M with the cache (registering eleven fixtures and nine options with their ini keys, the hooks) and "
        "13 M more without it, to parse and compile the four modules. What it would take: a pytest that lets a "
        "plugin's own modules skip its rewriter (they have no asserts), or fewer fixtures and hooks defined "
        "before collection."
    ),
    "P5": (
        "Two workers can only be twice as fast if two CPUs are free for them and the work splits evenly; xdist "
        "adds CPU of its own (two more interpreters importing pytest, zmqtest and pyzmq, and each test's report). "
        "CPU of every process per test (rusage and /proc at the end of the session), 500 tests, before -> after "
        "issue 14: serial 38.6 -> 18.3 ms (pytest 9.9 -> 6.3, forkserver 4.5 -> 0.8, children 23.9 -> 11.1), "
        "`-n 2` 39.5 -> 21.7 ms. The serial run is CPU-bound already (the test process and its child overlap on "
        "the two CPUs: 9.4 s of wall for 9.2 s of CPU), so `-n 2` has only what is left of the second CPU to "
        "gain: the ceiling is 2 x 18.3 / 21.7 = 1.69x before any scheduling loss, and two workers with their "
        "children (four busy processes on two CPUs) lose more. What would lift it: less CPU per test in the "
        "pytest process (6.3 ms, zmqtest's fixtures among it) and in the child (its own import of the "
        "application, `pingpong.pong` here, some 5 ms: `multiprocessing.set_forkserver_preload`, a choice only "
        "the user can make)."
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
    verdict = "" if row.met is None else ("yes" if row.met else "**no**")
    return f"{verdict}: {row.decided_by}" if verdict and row.decided_by else verdict


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
    figure = row.decided_by.split(" ")[0] if row.decided_by else figure
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
