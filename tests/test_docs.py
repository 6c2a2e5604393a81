"""The docs stay true: what they name exists, what exists is named, and their code runs.

- **The reference against the plugin.** A real pytest is asked what zmqtest adds (``--help``,
  ``--markers`` and ``--fixtures``, each compared with a run under ``-p no:zmqtest``, and the
  error for an unknown marker keyword). Every option, ini key, marker, marker keyword and fixture
  it reports must be in ``docs/reference.md``, and everything there must be real: a new option
  fails this test until it is documented. Every name in ``zmqtest.__all__`` is in the reference,
  and every documented default is the setting's real default.
- **Links.** Every relative link in ``docs/*.md`` and ``README.md`` points to a file that exists,
  and its ``#anchor`` to a heading of that file.
- **Code.** A fenced block with a title (```` ```python title="myapp/worker.py" ````) is a file of
  its document's project; a later block with the same title is the file's next version. In a
  document with such files, a ``console`` block whose first line is ``$ python -m pytest ARGS``
  is run against the files written above it (in a fresh pytester directory, one test per
  block): the output the block shows must appear in the real output, in order (ports, process
  ids, durations, versions, absolute paths, the lengths of ``====`` rules and the last characters
  of a line cut short with ``...`` may differ), and the exit status must be a failure exactly
  when the shown output reports one. ``$ rm FILE`` removes a file of the project; any other
  command must be listed in ``NOT_RUN``. A document whose files have no such block must pass
  ``python -m pytest`` as a whole. (Console blocks of documents without files, such as
  measurements, are illustrations and are not run.)
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import zmqtest
from zmqtest import settings as zsettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference.md"
LINKED = sorted([*DOCS.glob("*.md"), *DOCS.glob("*/*.md"), ROOT / "README.md"])
"""The Markdown files whose relative links must resolve."""
SUBPROCESS_DEADLINE = 120.0
"""Seconds an inner pytest run of a document's code may take before pytester kills it."""
INNER_ARGS = ("-p", "no:randomly")
"""Added to every inner run: the shown outputs list tests in file order."""
NOT_RUN = {
    "python -m pip install": "installs into the reader's environment",
    "python -m myapp": "the tutorial's app, serving until Ctrl-C: its tests start it",
    "python -m zmqtest replay": "plays against a program the reader runs: tests/test_replay.py runs it",
    "python -m zmqtest generate": "writes the module shown after it: tests/test_generate.py checks that it does",
}
"""Commands shown in the docs that test_docs does not run, and why."""
NOT_COMPARED = ("plugins:",)
"""Output lines that depend on the reader's environment (which pytest plugins are installed)."""


# --- Markdown ---------------------------------------------------------------------------------------------------------

FENCE = re.compile(r"^```(?P<info>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TITLE = re.compile(r'\btitle="(?P<title>[^"]+)"')
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.+?)\s*$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced code block of a Markdown file."""

    path: Path
    line: int
    language: str
    title: str | None
    body: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    found = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        title = TITLE.search(info)
        found.append(
            Block(
                path=path,
                line=text.count("\n", 0, match.start()) + 1,
                language=info.split()[0] if info else "",
                title=title["title"] if title else None,
                body=match["body"],
            )
        )
    return found


def without_code(text: str) -> str:
    """``text`` with its fenced blocks blanked out (links and headings inside code are not links or headings)."""
    return FENCE.sub(lambda match: "\n" * match.group(0).count("\n"), text)


def sections(path: Path) -> dict[str, str]:
    """The ``## `` sections of a Markdown file, by heading text."""
    text = without_code(path.read_text())
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def section(path: Path, heading: str) -> str:
    found = sections(path)
    if heading not in found:
        pytest.fail(f"{path.relative_to(ROOT)} has no section '## {heading}' (it has: {', '.join(found)})")
    return found[heading]


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a file's headings; a repeated one gets ``-1``, ``-2``... as on GitHub."""
    found: set[str] = set()
    for match in HEADING.finditer(without_code(path.read_text())):
        base = name = anchor(match["text"])
        repeat = 0
        while name in found:
            repeat += 1
            name = f"{base}-{repeat}"
        found.add(name)
    return found


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in ``text``, as lists of cells (header and rule rows left out)."""
    rows = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("|") or re.fullmatch(r"[|\s:-]+", line):
            continue
        if number + 1 < len(lines) and re.fullmatch(r"\|[|\s:-]+", lines[number + 1]):
            continue  # a header row: the rule follows it
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# --- what the plugin really adds, asked through pytest ----------------------------------------------------------------


def plugin_output(pytester: pytest.Pytester, *args: str) -> tuple[list[str], list[str]]:
    """The output lines of ``pytest ARGS`` with zmqtest, and without it (``-p no:zmqtest``)."""
    with_plugin = pytester.runpytest(*args)
    without = pytester.runpytest("-p", "no:zmqtest", *args)
    assert with_plugin.ret == without.ret == 0, (with_plugin.outlines, without.outlines)
    return with_plugin.outlines, without.outlines


def real_help(pytester: pytest.Pytester) -> tuple[set[str], set[str]]:
    """The command-line options and ini keys that zmqtest adds to ``pytest --help``."""
    with_plugin, without = plugin_output(pytester, "--help")

    def options(lines: list[str]) -> set[str]:
        return {match[1] for line in lines for match in [re.match(r"\s+(--[\w-]+)", line)] if match}

    def ini_keys(lines: list[str]) -> set[str]:
        return {match[1] for line in lines for match in [re.match(r"  (\w+) \(\w+\):", line)] if match}

    return options(with_plugin) - options(without), ini_keys(with_plugin) - ini_keys(without)


def real_markers(pytester: pytest.Pytester) -> dict[str, str]:
    """The markers zmqtest registers (``--markers``), each with its signature's keywords (or ``""``)."""
    with_plugin, without = plugin_output(pytester, "--markers")
    markers = {}
    for line in sorted(set(with_plugin) - set(without)):
        match = re.match(r"@pytest\.mark\.(\w+)(?:\((.*?)\))?:", line)
        if match:
            markers[match[1]] = match[2] or ""
    return markers


def real_fixtures(pytester: pytest.Pytester) -> set[str]:
    with_plugin, without = plugin_output(pytester, "--fixtures")

    def names(lines: list[str]) -> set[str]:
        return {match[1] for line in lines for match in [re.match(r"(\w+)(?: \[\w+ scope\])? -- ", line)] if match}

    return names(with_plugin) - names(without)


def accepted_marker_keywords(pytester: pytest.Pytester) -> set[str]:
    """The keywords ``@pytest.mark.zmqtest`` accepts, from the error the plugin gives for an unknown one."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.zmqtest(no_such_setting=1)
        def test_marked():
            pass
        """
    )
    result = pytester.runpytest()
    output = "\n".join(result.outlines)
    match = re.search(r"takes only the keyword arguments (.+?); got no_such_setting", output)
    assert match, f"no 'takes only the keyword arguments ...' error for an unknown marker keyword:\n{output}"
    return set(match[1].split(", "))


# --- the reference ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SettingRow:
    """One row of the reference's settings table."""

    option: str
    ini_key: str
    keyword: str
    default: str

    @property
    def name(self) -> str:
        return self.option.removeprefix("--zmqtest-").replace("-", "_")


def documented_settings() -> list[SettingRow]:
    rows = []
    for cells in table_rows(section(REFERENCE, "Settings")):
        spans = [code_spans(cell) for cell in cells[:4]]
        assert all(spans), f"a row of the settings table has a cell without `code`: {cells}"
        option = spans[0][0].split("=")[0]
        rows.append(SettingRow(option=option, ini_key=spans[1][0], keyword=spans[2][0], default=spans[3][0]))
    return rows


def documented_markers() -> dict[str, str]:
    """Marker name -> its keywords as documented (``zmqtest(timeout=None, ...)`` gives the part in brackets)."""
    markers = {}
    for cells in table_rows(section(REFERENCE, "Markers")):
        match = re.fullmatch(r"(\w+)(?:\((.*)\))?", code_spans(cells[0])[0])
        assert match, f"a marker row does not start with `name` or `name(keywords)`: {cells}"
        markers[match[1]] = match[2] or ""
    return markers


def keywords(signature: str) -> set[str]:
    """``timeout=None, strict=None`` -> {"timeout", "strict"}."""
    return {part.split("=")[0].strip() for part in signature.split(",") if part.strip()}


def documented_fixtures() -> set[str]:
    return {match[1] for match in re.finditer(r"^### `(\w+)`", section(REFERENCE, "Fixtures"), re.MULTILINE)}


def documented_public_names() -> set[str]:
    return {match[1] for match in re.finditer(r"^- `(\w+)", section(REFERENCE, "Public names"), re.MULTILINE)}


def all_docs_text() -> str:
    return "\n".join(path.read_text() for path in LINKED)


def test_every_option_and_ini_key_is_documented_and_every_documented_one_exists(pytester: pytest.Pytester) -> None:
    options, ini_keys = real_help(pytester)
    rows = documented_settings()
    assert options, "zmqtest added no option to pytest --help: is the plugin loaded?"
    assert {row.option for row in rows} == options, "the options in reference.md (## Settings) vs pytest --help"
    assert {row.ini_key for row in rows} == ini_keys, "the ini keys in reference.md (## Settings) vs pytest --help"
    for row in rows:
        assert (row.ini_key, row.keyword) == (f"zmqtest_{row.name}", row.name), f"the row of {row.option} mixes names"
    # a mention anywhere in the docs must be real too; one letter (`zmqtest_x`) is a placeholder, not a name
    mentioned = set(re.findall(r"--zmqtest-\w[\w-]*\w", all_docs_text()))
    assert mentioned <= options, f"the docs mention options that do not exist: {sorted(mentioned - options)}"
    mentioned = set(re.findall(r"\bzmqtest_\w\w+", all_docs_text()))
    assert mentioned <= ini_keys, f"the docs mention ini keys that do not exist: {sorted(mentioned - ini_keys)}"


def test_every_marker_and_marker_keyword_is_documented_and_exists(pytester: pytest.Pytester) -> None:
    markers = real_markers(pytester)
    documented = documented_markers()
    assert set(documented) == set(markers), "the markers in reference.md (## Markers) vs pytest --markers"
    for name, signature in markers.items():
        assert keywords(documented[name]) == keywords(signature), f"the keywords of marker {name}: docs vs --markers"
    accepted = accepted_marker_keywords(pytester)
    assert keywords(documented["zmqtest"]) == accepted, "the zmqtest marker's keywords: docs vs what the plugin takes"
    assert {row.keyword for row in documented_settings()} == accepted, "the settings table's marker keywords"


def test_every_documented_default_is_the_real_default() -> None:
    defaults = zsettings.Settings()
    for row in documented_settings():
        assert row.name in zsettings.PARSERS, f"{row.option} documents a setting that does not exist: {row.name}"
        documented = zsettings.parse(row.name, row.default, f"the default of {row.option} in reference.md")
        assert documented == getattr(defaults, row.name), f"the default of {row.option} in reference.md"


def test_every_fixture_is_documented_and_exists(pytester: pytest.Pytester) -> None:
    fixtures = real_fixtures(pytester)
    assert fixtures, "zmqtest added no fixture to pytest --fixtures: is the plugin loaded?"
    assert documented_fixtures() == fixtures, "the fixtures in reference.md (### `name` under ## Fixtures)"


def test_every_public_name_is_documented_and_exists() -> None:
    assert documented_public_names() == set(zmqtest.__all__), "reference.md (## Public names) vs zmqtest.__all__"


# --- links ------------------------------------------------------------------------------------------------------------


def relative_links(path: Path) -> Iterator[tuple[str, str]]:
    for match in LINK.finditer(without_code(path.read_text())):
        target = match["target"]
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            yield match["text"], target


@pytest.mark.parametrize("path", LINKED, ids=[str(path.relative_to(ROOT)) for path in LINKED])
def test_relative_links_point_to_files_and_headings_that_exist(path: Path) -> None:
    broken = []
    for text, target in relative_links(path):
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"[{text}]({target}): no file {linked}")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"[{text}]({target}): no heading with anchor #{fragment} in {linked.name}")
    assert not broken, "\n".join(broken)


# --- code -------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
    """A ``$ python -m pytest ...`` block of a document, with the files written before it."""

    block: Block
    files: dict[str, str | None]
    """Path -> content, in order; ``None``: removed by ``$ rm``."""
    args: list[str]
    shown: list[str]

    @property
    def expected_status(self) -> int:
        """1 if the shown output reports failures or errors, else 0 (pytest's exit codes)."""
        return 1 if any(re.search(r"\b\d+ (failed|errors?)\b", line) for line in self.shown) else 0


@dataclasses.dataclass
class Project:
    """What a document's code amounts to: its pytest commands, its files at the end, what cannot be checked."""

    commands: list[Command] = dataclasses.field(default_factory=list)
    files: dict[str, str | None] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)


def project(path: Path) -> Project:
    """The project a document writes. Only a document with files (titled blocks) runs its console blocks."""
    blocks = code_blocks(path)
    found = Project()
    if not any(block.title for block in blocks):
        return found
    for block in blocks:
        if block.title is not None:
            found.files[block.title] = block.body
        elif block.language == "console" and block.body.startswith("$ "):
            first, *shown = block.body.splitlines()
            command = first.removeprefix("$ ")
            if command.startswith("python -m pytest"):
                found.commands.append(Command(block, dict(found.files), shlex.split(command)[3:], shown))
            elif command.startswith("rm "):
                for removed in shlex.split(command)[1:]:
                    if removed not in found.files:
                        found.problems.append(f"{block.where}: `{command}` removes a file the document never wrote")
                    found.files[removed] = None
            elif not any(command.startswith(prefix) for prefix in NOT_RUN):
                found.problems.append(f"{block.where}: test_docs cannot check `{command}`: teach it, or add to NOT_RUN")
    return found


VOLATILE = re.compile(
    r"""
      \d+\.\d+s\b                  # a duration: 0.41s
    | (?<=127\.0\.0\.1:)\d+         # a port
    | (?<=pid\ )\d+                 # a process id
    | (?<![\w./-])/[^\s:)'"]+       # an absolute path
    | \d+(?:\.\d+)+                 # a version: 3.11.7
    | [=_-]{3,}                     # a rule, as long as the terminal is wide
    """,
    re.VERBOSE,
)


TRUNCATION_SLACK = 10
"""Characters a line cut short with ``...`` may lose to longer volatile parts before the cut (a 7-digit pid)."""


def pattern(shown: str) -> str:
    """An fnmatch pattern for a shown output line: the volatile parts become ``*``, the rest matches itself.

    A line that ends in ``...`` was cut to a width; where it is cut depends on the volatile
    parts before it, so its last few characters match anything.
    """
    truncated = shown.rstrip().endswith("...")
    if truncated:
        shown = shown.rstrip()[: -len("...") - TRUNCATION_SLACK]
    parts = []
    position = 0
    for match in VOLATILE.finditer(shown):
        parts += [glob.escape(shown[position : match.start()]), "*"]
        position = match.end()
    parts.append(glob.escape(shown[position:]))
    return " ".join("".join(parts).split()) + ("*" if truncated else "")


def _carets(line: str) -> bool:
    """A line that only points at an expression (``^^^^``): Python 3.11+ prints them in tracebacks, 3.10 does not."""
    return bool(line.strip()) and set(line.strip()) <= {"^", "~"}


def assert_shown_output_is_real(command: Command, real: list[str]) -> None:
    """Every shown line appears in the real output, in the same order (real lines may come in between)."""
    lines = [" ".join(line.split()) for line in real]
    position = 0
    for shown in command.shown:
        if not shown.strip() or shown.startswith(NOT_COMPARED) or (sys.version_info < (3, 11) and _carets(shown)):
            continue
        wanted = pattern(shown)
        for index in range(position, len(lines)):
            if fnmatch.fnmatchcase(lines[index], wanted):
                position = index + 1
                break
        else:
            pytest.fail(
                f"{command.block.where}: the output shown in the docs has a line the real run does not print "
                f"(after line {position} of it):\n  {shown}\nreal output:\n" + "\n".join(real),
                pytrace=False,
            )


def write_project(pytester: pytest.Pytester, files: dict[str, str | None]) -> None:
    for name, content in files.items():
        if content is not None:
            target = pytester.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def run_inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.RunResult:
    monkeypatch.setenv("COLUMNS", "80")  # the width the shown outputs were copied at
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    for name in ("CI", "BUILD_NUMBER"):  # on CI, pytest shows assertion diffs in full: not what a reader sees
        monkeypatch.delenv(name, raising=False)
    return pytester.runpytest_subprocess(*INNER_ARGS, *args, timeout=SUBPROCESS_DEADLINE)


DOCUMENTS = sorted(DOCS.glob("*.md"))
COMMANDS = [command for path in DOCUMENTS for command in project(path).commands]


@pytest.mark.parametrize(
    "command", COMMANDS, ids=[f"{c.block.where}: pytest {' '.join(c.args)}".strip() for c in COMMANDS]
)
def test_a_pytest_command_in_the_docs_prints_what_they_show(
    command: Command, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project(pytester, command.files)
    result = run_inner(pytester, monkeypatch, *command.args)
    assert_shown_output_is_real(command, result.outlines + result.errlines)
    assert result.ret == command.expected_status, f"{command.block.where}: exit status {result.ret}"


def test_the_tutorial_and_the_recipes_run_their_commands() -> None:
    """A console block whose format drifted would silently stop being run: these pages must have some."""
    for name in ("tutorial.md", "recipes.md", "transcripts.md"):
        assert project(DOCS / name).commands, f"docs/{name} has no `$ python -m pytest` block that test_docs runs"


@pytest.mark.parametrize("path", DOCUMENTS, ids=[path.name for path in DOCUMENTS])
def test_every_command_and_file_of_a_document_is_checked(path: Path) -> None:
    """Each shown command is run or known not to be; no file comes after the last pytest command."""
    found = project(path)
    assert not found.problems, "\n".join(found.problems)
    if found.commands:
        last = found.commands[-1].files
        never_run = sorted(name for name, content in found.files.items() if last.get(name) != content)
        assert not never_run, f"{path.name}: {never_run} come after its last `$ python -m pytest` block"


DOCUMENTS_WITH_FILES = [path for path in DOCUMENTS if project(path).files and not project(path).commands]


@pytest.mark.parametrize("path", DOCUMENTS_WITH_FILES, ids=[path.name for path in DOCUMENTS_WITH_FILES])
def test_the_code_of_a_document_passes(path: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(pytester, project(path).files)
    result = run_inner(pytester, monkeypatch)
    assert result.ret == 0, f"the code of {path.name} fails:\n" + "\n".join(result.outlines)
    assert result.parseoutcomes().get("passed", 0) > 0, f"the code of {path.name} has no test"
