"""zmqtest's benchmarks: one command, side by side, with ratios and targets.

    python -m pip install ".[bench]" && python tests/benchmarks/run.py

- P1: a round trip through ProcessTest vs raw pyzmq, interleaved per round trip (bare echo: target ≤ 1.03x raw;
  inproc: ≤ 1 us of harness per round trip);
- P2: how late a 1.0 s and a 0.1 s receive timeout fires, idle and loaded (target ≤ +5 ms idle);
- P3: a whole process test per start method and for a command line vs bare start + ping + stop
  (target ≤ 1.5x for a Process, ≤ 1.2x for a command line);
- P4: pytest start-up of a project that does not use zmqtest, with zmqtest installed vs not (≤ 1.03x);
- P5: a 500-test process suite, ``-n 2`` vs serial on 2 CPUs (speed-up ≥ 1.7x).

Prints a table; a complete run (every benchmark, ``--scale 1``) also writes docs/benchmarks.md and
docs/benchmarks.png (``--write``/``--no-write`` to decide yourself). Everything it starts (processes,
virtual environments, temporary directories) is gone when it ends.

This module imports nothing heavy at the top: spawn children of P3 import it again.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = ("P1", "P2", "P3", "P4", "P5")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python tests/benchmarks/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), metavar="P1,P3", help="which benchmarks to run (default: all)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every repetition count by F (0.1: a quick check of the harness; default 1)",
    )
    parser.add_argument("--p5-tests", type=int, default=500, metavar="N", help="tests in P5's suite (default 500)")
    parser.add_argument(
        "--venv-cache",
        type=Path,
        metavar="DIR",
        help="keep P4's two virtual environments in DIR between runs (default: build them in a temporary directory)",
    )
    parser.add_argument("--out", type=Path, default=Path(HERE).parent.parent / "docs", help="where to write the report")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write docs/benchmarks.md and .png (default: only after a complete run of all five at --scale 1)",
    )
    parser.add_argument("--remark", default="", help="a sentence for the report, e.g. the state of the machine")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: print and write the report of a run saved with --json FILE",
    )
    args = parser.parse_args(argv)
    args.only = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    if not args.scale > 0:
        parser.error(f"--scale must be more than 0, got {args.scale}")
    if args.p5_tests < 1:
        parser.error(f"--p5-tests must be 1 or more, got {args.p5_tests}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(HERE)), "examples", "pingpong"))

    import json
    import time

    from bench_common import Result, background_cpu_percent, machine, machine_line

    if args.from_json is not None:
        return report_saved(args)
    runners = {
        "P1": lambda: __import__("p1_roundtrip").run(args.scale),
        "P2": lambda: __import__("p2_timeouts").run(args.scale),
        "P3": lambda: __import__("p3_process_test").run(args.scale),
        "P4": lambda: __import__("p4_pytest_startup").run(args.scale, args.venv_cache),
        "P5": lambda: __import__("p5_xdist").run(args.scale, args.p5_tests),
    }
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "load_start": ", ".join(f"{load:.2f}" for load in os.getloadavg()),
        "command": shlex.join(["python", "tests/benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "remark": args.remark,
    }
    print(f"zmqtest benchmarks {', '.join(args.only)}, scale {args.scale:g}; {info['date']}", flush=True)
    print(machine_line(info["machine"]), flush=True)
    began = time.perf_counter()
    results: list[Result] = []
    for name in args.only:
        background = background_cpu_percent()
        print(f"{name}: running (other programs are using {background:.0f}% of the CPUs)", flush=True)
        start = time.perf_counter()
        result = runners[name]()
        result.seconds = time.perf_counter() - start
        result.background_cpu = background
        results.append(result)
        print(f"{name}: done in {result.seconds:.1f} s", flush=True)
    info["seconds"] = time.perf_counter() - began
    info["load_end"] = ", ".join(f"{load:.2f}" for load in os.getloadavg())
    if args.json is not None:
        data = {**info, "results": [{**vars(r), "rows": [vars(row) for row in r.rows]} for r in results]}
        args.json.write_text(json.dumps(data, indent=1))
    complete = args.only == list(BENCHMARKS) and args.scale == 1.0 and args.p5_tests == 500
    report(args, results, info, complete)
    return 0


def report_saved(args: argparse.Namespace) -> int:
    """Print (and write, with --write) the report of a run saved with --json."""
    import json

    from bench_common import Result, Row

    data = json.loads(args.from_json.read_text())
    results = []
    for saved in data.pop("results"):
        rows = [
            Row(**{**row, "ratio_spread": row["ratio_spread"] and tuple(row["ratio_spread"])}) for row in saved["rows"]
        ]
        del saved["rows"]
        results.append(Result(rows=rows, **saved))
    if args.remark:
        data["remark"] = args.remark
    report(args, results, data, complete=False)
    return 0


def report(args: argparse.Namespace, results: list[Any], info: dict[str, Any], complete: bool) -> None:
    import bench_report

    print()
    print(bench_report.console_table(results))
    for result in results:
        for note in result.notes:
            print(f"{result.bench}: {note}")
    print(f"whole run: {info['seconds']:.0f} s; load average at start {info['load_start']}, at end {info['load_end']}")
    write = complete if args.write is None else args.write
    if write:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "benchmarks.md").write_text(bench_report.markdown(results, info))
        bench_report.plot(results, info, args.out / "benchmarks.png")
        print(f"wrote {args.out / 'benchmarks.md'} and {args.out / 'benchmarks.png'}")
    else:
        print("report not written (a partial run; --write to write it anyway)")
    missed = [row for result in results for row in result.rows if row.met is False]
    print(f"targets: {sum(row.met is True for r in results for row in r.rows)} met, {len(missed)} missed")


if __name__ == "__main__":
    sys.exit(main())
