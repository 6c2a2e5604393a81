"""P4: pytest start-up in a project that does not use zmqtest, with zmqtest installed vs not.

Two virtual environments made from this interpreter: ``plain`` has the same pytest as
this interpreter, ``zmqtest`` has that pytest and zmqtest installed (not editable) from a
copy of this repository's sources, so its plugin is registered through its entry point
exactly as for a user. The project is a temporary directory with one trivial test; each
run is ``python -m pytest -q -p no:cacheprovider`` from spawn to exit. Each round runs
both environments with Python's bytecode cache on (as on a usual machine) and both with
``PYTHONDONTWRITEBYTECODE=1`` as in a fresh container or CI job (the assertion-rewritten copies
of zmqtest's modules that pytest cached in earlier runs are removed before each such run), in
rotating order; a ratio is the
median over rounds of zmqtest / plain under the same condition. CPU time (user + system,
from ``getrusage``) has rows of its own next to wall time, in both settings; where valgrind is
installed, one run of each variant under ``valgrind --tool=callgrind`` (``PYTHONHASHSEED=0``) gives
instruction counts, which other programs' load does not change, and the verdict on the target
(else CPU time gives it).

The environments take a minute or so to build. ``--venv-cache DIR`` keeps them between
runs (rebuilt when zmqtest's sources change); without it they are made in a temporary
directory and removed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench_common import REPO, Result, Row, ratio_fields, rotated, round_ratios, scaled

TARGET = 1.03
SOURCES = ("zmqtest", "setup.cfg", "pyproject.toml", "README.md", "LICENSE")
"""What a non-editable install of zmqtest is built from."""
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 60.0
TRIVIAL_TEST = "def test_nothing_to_do_with_zmq():\n    assert 1 + 1 == 2\n"
PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider")


def clean_env() -> dict[str, str]:
    """Our environment without what would change how pytest starts."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def source_digest() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        path = Path(REPO, name)
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(REPO)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def check(
    command: list[str], what: str, timeout: float, cwd: str | None = None, env: dict[str, str] | None = None
) -> str:
    """Run ``command``; its output, or an error that quotes it."""
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=clean_env() if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what}: still running after {timeout:g} s: {' '.join(command)}") from None
    if done.returncode != 0:
        raise RuntimeError(
            f"{what}: exit code {done.returncode}: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return done.stdout


def make_venv(where: Path, packages: list[str]) -> Path:
    """A virtual environment at ``where`` with ``packages``; its python. Marked complete only once done."""
    python = where / "bin" / "python"
    if (where / ".complete").exists():
        return python
    shutil.rmtree(where, ignore_errors=True)
    print(f"  P4: building {where.name} ({' '.join(os.path.basename(p) for p in packages)})", flush=True)
    check([sys.executable, "-m", "venv", str(where)], f"creating the venv {where}", INSTALL_TIMEOUT)
    check(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *packages],
        f"installing {packages} into {where}",
        INSTALL_TIMEOUT,
    )
    (where / ".complete").write_text("")
    return python


@contextlib.contextmanager
def venvs(cache: Path | None) -> Iterator[tuple[Path, Path]]:
    """The ``plain`` and ``zmqtest`` environments' pythons (cached under ``cache``, else temporary)."""
    import pytest

    base = Path(tempfile.mkdtemp(prefix="zmqtest-bench-venvs-")) if cache is None else cache
    base.mkdir(parents=True, exist_ok=True)
    version = f"py{sys.version_info.major}{sys.version_info.minor}-pytest{pytest.__version__}"
    digest = source_digest()
    try:
        if cache is not None:  # drop environments of older sources
            for old in base.glob(f"p4-{version}-zmqtest-*"):
                if not old.name.endswith(digest):
                    shutil.rmtree(old, ignore_errors=True)
        plain = make_venv(base / f"p4-{version}-plain", [f"pytest=={pytest.__version__}"])
        with tempfile.TemporaryDirectory(prefix="zmqtest-src-") as copy:
            for name in SOURCES:
                source = Path(REPO, name)
                if source.is_dir():
                    shutil.copytree(source, Path(copy, name), ignore=shutil.ignore_patterns("__pycache__"))
                elif source.exists():
                    shutil.copy2(source, Path(copy, name))
            with_zmqtest = make_venv(base / f"p4-{version}-zmqtest-{digest}", [f"pytest=={pytest.__version__}", copy])
        yield plain, with_zmqtest
    finally:
        if cache is None:
            shutil.rmtree(base, ignore_errors=True)


def forget_rewritten(python: Path) -> None:
    """Remove the assertion-rewritten copies of zmqtest's modules cached in the environment of ``python``."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for cached in (python.parent.parent / "lib" / version / "site-packages").glob("zmqtest/__pycache__/*-pytest-*.pyc"):
        cached.unlink()


def instructions(python: Path, project: str, env: dict[str, str], no_bytecode: bool) -> int | None:
    """Instructions that one pytest run of ``project`` executes (callgrind), or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    if no_bytecode:
        forget_rewritten(python)
    else:  # the rewritten copies cached, as the rounds found them
        check([str(python), *PYTEST], f"pytest ({python})", RUN_TIMEOUT, project, env)
    with tempfile.TemporaryDirectory(prefix="zmqtest-bench-p4-cg-") as where:
        out = Path(where, "callgrind.out")
        command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}", str(python), *PYTEST]
        check(command, f"callgrind of pytest ({python})", RUN_TIMEOUT * 10, project, {**env, "PYTHONHASHSEED": "0"})
        found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.MULTILINE)
    return int(found.group(1)) if found else None


def run(scale: float = 1.0, cache: Path | None = None) -> Result:
    rounds_count = scaled(40, scale, 3)
    notes: list[str] = []
    began = time.perf_counter()
    with venvs(cache) as (plain, with_zmqtest), tempfile.TemporaryDirectory(prefix="zmqtest-bench-p4-") as project:
        built = time.perf_counter() - began
        Path(project, "test_trivial.py").write_text(TRIVIAL_TEST)
        Path(project, "pytest.ini").write_text("[pytest]\n")
        help_text = check([str(with_zmqtest), "-m", "pytest", "--help"], "pytest --help with zmqtest", RUN_TIMEOUT)
        if "--zmqtest-timeout" not in help_text:
            raise RuntimeError("the zmqtest venv's pytest does not load the zmqtest plugin (no --zmqtest-timeout)")
        command = list(PYTEST)
        cached_env = clean_env()
        cached_env.pop("PYTHONDONTWRITEBYTECODE", None)
        variants = {  # name: (python, environment)
            "plain": (plain, cached_env),
            "zmqtest": (with_zmqtest, cached_env),
            "plain, no bytecode": (plain, {**cached_env, "PYTHONDONTWRITEBYTECODE": "1"}),
            "zmqtest, no bytecode": (with_zmqtest, {**cached_env, "PYTHONDONTWRITEBYTECODE": "1"}),
        }

        def once(name: str) -> tuple[float, float]:
            """Wall and CPU (user + system) milliseconds of one pytest run in variant ``name``."""
            python, env = variants[name]
            if "no bytecode" in name:  # as in a fresh container: pytest finds no rewritten module cached
                forget_rewritten(python)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            output = check([str(python), *command], f"pytest ({name})", RUN_TIMEOUT, project, env)
            seconds = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if "1 passed" not in output:
                raise RuntimeError(f"pytest ({name}): expected '1 passed', got {output!r}")
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            return seconds * 1000, cpu * 1000

        for _ in range(2):  # warm up: files in the page cache, pytest's rewritten modules cached where allowed
            for name in variants:
                once(name)
        rounds: list[dict[str, list[float]]] = []
        cpu_rounds: list[dict[str, list[float]]] = []
        for index in range(rounds_count):
            wall: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}
            for name in rotated(list(variants), index):
                figures = once(name)
                wall[name], cpu[name] = [figures[0]], [figures[1]]
            rounds.append(wall)
            cpu_rounds.append(cpu)
        counted = {
            name: instructions(python, project, env, "no bytecode" in name) for name, (python, env) in variants.items()
        }

    def samples(name: str) -> list[float]:
        return [wall[name][0] for wall in rounds]

    def cpu_samples(name: str) -> list[float]:
        return [cpu[name][0] for cpu in cpu_rounds]

    rows = [
        Row("P4", "pytest start-up, pytest only (reference)", "ms", samples("plain"), key="pytest only"),
        Row(
            "P4",
            "pytest start-up, zmqtest installed",
            "ms",
            samples("zmqtest"),
            reference="pytest only",
            target=f"≤ {TARGET:.2f}x",
            key="zmqtest installed",
            **ratio_fields(round_ratios(rounds, "zmqtest", "plain")),
        ),
        Row(
            "P4",
            "the same with PYTHONDONTWRITEBYTECODE=1: pytest only (reference)",
            "ms",
            samples("plain, no bytecode"),
            key="pytest only\nno bytecode cache",
        ),
        Row(
            "P4",
            "the same with PYTHONDONTWRITEBYTECODE=1: zmqtest installed",
            "ms",
            samples("zmqtest, no bytecode"),
            reference="pytest only, no bytecode",
            target=f"≤ {TARGET:.2f}x",
            key="zmqtest installed\nno bytecode cache",
            **ratio_fields(round_ratios(rounds, "zmqtest, no bytecode", "plain, no bytecode")),
        ),
    ]
    for name, reference in (("zmqtest", "plain"), ("zmqtest, no bytecode", "plain, no bytecode")):
        bytecode, short = ("", "") if name == "zmqtest" else (", PYTHONDONTWRITEBYTECODE=1", "\nno bytecode cache")
        reference_row = Row(
            "P4",
            f"CPU time{bytecode}: pytest only (reference)",
            "ms",
            cpu_samples(reference),
            key=f"CPU, pytest{short}",
        )
        rows.append(reference_row)
        rows.append(
            Row(
                "P4",
                f"CPU time{bytecode}: zmqtest installed",
                "ms",
                cpu_samples(name),
                reference=f"CPU time{bytecode}, pytest only",
                target=f"≤ {TARGET:.2f}x",
                key=f"CPU, zmqtest{short}",
                **ratio_fields(round_ratios(cpu_rounds, name, reference)),
            )
        )
    cpu_ratio = rows[5].ratio
    cpu_ratio_no_bytecode = rows[7].ratio
    counts = {name: count for name, count in counted.items() if count is not None}
    by_instructions = len(counts) == len(counted)
    for wall_row, cpu_row, name, reference in (
        (rows[1], rows[5], "zmqtest", "plain"),
        (rows[3], rows[7], "zmqtest, no bytecode", "plain, no bytecode"),
    ):
        verdict = counts[name] / counts[reference] if by_instructions else cpu_row.ratio
        wall_row.met = cpu_row.met = verdict is not None and verdict <= TARGET
        if by_instructions:
            wall_row.decided_by = cpu_row.decided_by = f"{verdict:.3f}x in instructions"
    where = f"cached in {cache}" if cache is not None else "temporary"
    notes += [
        f"{rounds_count} rounds of `python -m pytest -q -p no:cacheprovider`, one run per variant in rotating order, "
        f"after 2 warm-up runs each; environments {where} (ready in {built:.0f} s).",
        "The rows without PYTHONDONTWRITEBYTECODE run as on a usual machine, with Python's bytecode cache on, so "
        "that pytest can cache its assertion-rewritten copies of the plugin's modules (it rewrites every "
        "module of an entry-point plugin's distribution). The others run with PYTHONDONTWRITEBYTECODE=1 as in a "
        "fresh container or CI job: the rewritten copies cached by earlier runs are removed before each, so pytest "
        "parses and compiles the plugin's modules again at every start.",
        f"CPU time (user + system) ratio, median over rounds: {cpu_ratio:.3f}x with the bytecode cache, "
        f"{cpu_ratio_no_bytecode:.3f}x without (less sensitive to other programs' load than wall time).",
    ]
    if by_instructions:
        notes.append(
            "Instructions of one run each (`valgrind --tool=callgrind`, PYTHONHASHSEED=0; they decide the targets): "
            + ", ".join(f"{name} {count / 1e6:.1f} M" for name, count in counts.items())
            + f"; zmqtest / plain {counts['zmqtest'] / counts['plain']:.3f}x with the bytecode cache, "
            f"{counts['zmqtest, no bytecode'] / counts['plain, no bytecode']:.3f}x without."
        )
    else:
        notes.append("valgrind is not installed: CPU time decides the targets (no instruction counts).")
    return Result("P4", "pytest start-up without and with zmqtest installed", rows, notes)
