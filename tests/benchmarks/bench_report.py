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
        "made these cheaper (the group sweep without a /proc scan, descendants through `/proc/<tid>`, the log "
        "collector on the test's context, the forkserver preloading zmqtest's child-side modules, mimics "
        "reconnecting every 1 ms) and, on 2026-12-04, the log forwarder a plain socket speaking ZMTP "
        "(`zmqtest/plainpush.py`: no zmq context, no thread in the child; a fork test 0.4 ms shorter, measured "
        "interleaved with the zmq forwarder: 8.35 against 8.75 ms, none 7.72). Where a fork test's time goes "
        "(medians of 40, stamps in parent and child; bare: start 0.4 ms, fork to bound 2.1, ping 1.1, stop 0.8): "
        "setup 0.5; up to the fork 0.3; the fork 0.45; fork to `run()` 1.7 (bare 1.3: the child's set-up, "
        "0.3); `forward()` and the bind 1.0; bind to ready 0.8-1.2: the mimic's next reconnect (libzmq's floor "
        "is 1 ms; `RECONNECT_IVL` 0 divides by zero in its jitter) and the handshake; the conversation 0.8; the "
        "stop 2.2, of which 0.35 before the SIGINT (the escaped descendants are read first: after the exit they "
        "are someone else's), the child's exit 1.2 and 0.6 after it; the context 0.3. The test process spends "
        "5.5 ms of CPU per fork test (bare 1.9), spread over about a hundred functions (none above 0.2 ms), "
        "and a forked child pays a copy-on-write fault for each page it first writes: its set-up and "
        "`forward()`, 25 us in a fresh process, take 0.3 ms each there. Forkserver and spawn tests meet the "
        "target. What it would take for fork: readiness without the reconnect wait (a child that reports its "
        "bind: a change to what the process under test does, so not by default), and a third less Python in "
        "the test process per test."
    ),
    "P4": (
        "With zmqtest installed, pytest loads its plugin in every project. It passes every module of an "
        "entry-point plugin's distribution that it imports through its assertion rewriter "
        "(`_mark_plugins_for_rewrite` marks the top-level package), which, where it cannot cache its copies "
        "(PYTHONDONTWRITEBYTECODE=1, a fresh container or CI job), parses and compiles each at every start: for "
        "the plugin, its fixtures and its options, 18 M instructions (2.4 % of pytest's own start; about 17 k "
        "per node of the parsed tree, the docstrings nearly free). Since 2026-12-04 the entry point is "
        "`zmqtest.entrypoint:plugin`, a short module that imports them with Python's own loader (from the "
        "bytecode pip compiled) and hands pytest `zmqtest.plugin`: they hold no asserts (each says "
        "PYTEST_DONT_REWRITE, which pytest can only read once it has parsed the module). Instruction counts "
        "(callgrind, one run of the trivial project, PYTHONHASHSEED=0; they decide the target): pytest only "
        "772 M; an empty plugin about 10 M more (the distribution and pyzmq and psutil beside it, the entry "
        "point, the package's `__init__`); with the bytecode cache 823 -> 791 -> 787 M (1.020x); without it 979 "
        "-> 805 -> 790 M (1.023x). What is left over the empty plugin: registering eleven fixtures, nine options "
        "with their ini keys, and the hooks."
    ),
    "P5": (
        "Two workers can only be twice as fast if two CPUs are free for them and the work splits evenly. The CPU "
        "rows say what each run costs (every process, on the two CPUs it is pinned to): the serial run already "
        "keeps about 1.08 CPUs busy (the test process and its child overlap), and `-n 2` spends about 1.6 s "
        "of CPU more than serial whatever the number of tests (200 tests: 8 ms more per test; 500: 3): a "
        "controller and two worker interpreters that each start pytest, collect every test and import zmqtest "
        "and pyzmq, a forkserver per worker, and xdist's reports. Two CPUs cannot finish the parallel run "
        "faster than in half its CPU time, so 2 x serial wall / parallel CPU (the note above) is the highest "
        "speed-up these runs allow, whatever the scheduling; the runs reach about 85 % of it. A cheaper test "
        "does not raise it: it shortens both runs alike while xdist's fixed cost stays, so the ratio falls (it "
        "did, as zmqtest got faster: 1.56x in the issue's first run, 1.39x, 1.34x now, with serial CPU per "
        "test 38.6 -> 18.3 -> 17 ms). The target cannot be met on 2 CPUs. What it would take: more CPUs than "
        "twice the workers (a test and its child each on a CPU), or a suite that waits more than it computes."
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
        rows = [row for row in result.rows if row.unit == result.rows[0].unit]  # one axis, one unit (the table has all)
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
