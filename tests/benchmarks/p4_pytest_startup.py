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
from ``getrusage``) is reported next to wall time.

The environments take a minute or so to build. ``--venv-cache DIR`` keeps them between
runs (rebuilt when zmqtest's sources change); without it they are made in a temporary
directory and removed at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import statistics
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
        command = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
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

    def samples(name: str) -> list[float]:
        return [wall[name][0] for wall in rounds]

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
    rows[1].met = rows[1].ratio is not None and rows[1].ratio <= TARGET
    rows[3].met = rows[3].ratio is not None and rows[3].ratio <= TARGET
    cpu_ratio = statistics.median(round_ratios(cpu_rounds, "zmqtest", "plain"))
    cpu_ratio_no_bytecode = statistics.median(round_ratios(cpu_rounds, "zmqtest, no bytecode", "plain, no bytecode"))
    where = f"cached in {cache}" if cache is not None else "temporary"
    notes += [
        f"{rounds_count} rounds of `python -m pytest -q -p no:cacheprovider`, one run per variant in rotating order, "
        f"after 2 warm-up runs each; environments {where} (ready in {built:.0f} s).",
        "The first two rows run as on a usual machine, with Python's bytecode cache on (PYTHONDONTWRITEBYTECODE "
        "unset), so that pytest can cache its assertion-rewritten copies of the plugin's modules (it rewrites every "
        "module of an entry-point plugin's distribution). The last two run with PYTHONDONTWRITEBYTECODE=1 as in a "
        "fresh container or CI job: the rewritten copies cached by earlier runs are removed before each, so pytest "
        "parses and compiles the plugin's modules again at every start.",
        f"CPU time (user + system) ratio, median over rounds: {cpu_ratio:.3f}x with the bytecode cache, "
        f"{cpu_ratio_no_bytecode:.3f}x without (less sensitive to other programs' load than wall time).",
    ]
    return Result("P4", "pytest start-up without and with zmqtest installed", rows, notes)
