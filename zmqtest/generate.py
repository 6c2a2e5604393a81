"""A recorded conversation written out as a process test: a pytest module to read, keep and edit.

:func:`generate` turns a recording (:func:`zmqtest.replay.record`'s file: the mimics' messages, or
one tapped peer's side of what a :class:`~zmqtest.tap.Tap` saw) into a :class:`~zmqtest.ProcessTest`
subclass with one generator test: the sockets made with ``zmq_socket_factory`` by recorded type and
name, then the conversation as events, ``yield send(sock, [], body)`` and ``reply = yield recv(sock)``
followed by ``assert reply == [...]``. Bodies read as Python values where the frame is JSON, as bytes
literals otherwise; a ROUTER's routing ids become variables taken from what it receives (they change
from run to run). How to start the program under test is a pair of constants at the top, ``COMMAND``
and ``READY``, which the user fills in (or :func:`generate` is given). ``python -m zmqtest generate
RECORDING [OUT.py]`` writes it.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zmqtest.tapreplay import is_tap_recording, played_side, tapped_peers
from zmqtest.transcriptfile import Event, Recorded, load

__all__ = ["generate", "write_test"]

WIDTH = 120
"""The line length the module is written for (the project's ruff setting)."""
PLACEHOLDER_COMMAND = 'sys.executable, "my_program.py"'
PLACEHOLDER_READY = r"listening on (?P<endpoint>\S+)"
TAKEN = frozenset({"sys", "zmq", "send", "recv", "reply", "program", "self", "arg", "pytest", "COMMAND", "READY"})


class _Mimic:
    def __init__(self, who: str, kind: str, connects: bool, variable: str) -> None:
        self.who, self.kind, self.connects, self.variable = who, kind, connects, variable
        self.options: list[str] = []


def generate(
    source: str | os.PathLike[str] | Recorded,
    *,
    play: str | None = None,
    command: Sequence[str] | None = None,
    ready: str | None = None,
) -> str:
    """The text of a pytest module that has the recorded conversation as a process test.

    ``play``: the tapped peer whose side the test plays, for a tap's recording (default: the peer that
    connected through the tap, the client). ``command`` and ``ready`` fill in ``COMMAND`` (the program's
    command line; ``{endpoint}`` in it stands for where a binding socket of the test listens) and
    ``READY`` (a regular expression for the line the program prints once it serves; its group
    ``endpoint`` is where the test's sockets connect); placeholders to edit otherwise.
    """
    recorded = source if isinstance(source, Recorded) else load(source)
    name = Path(source).name if not isinstance(source, Recorded) else (recorded.test or "a recording")
    mimics: list[_Mimic] = []
    taken = set(TAKEN)
    if is_tap_recording(recorded):
        side = played_side(recorded, play or _tap_client(recorded), where=name)
        recorded = side.recorded
        mimic = _Mimic(side.peer, side.socket_type, side.connects, _variable(side.peer, taken))
        options = [f"routing_id={_bytes(side.routing_id)}"] if side.routing_id else []
        options += [f"subscribe={_bytes(topic)}" for topic in side.subscriptions[:1]]
        mimic.options = options
        mimics.append(mimic)
        topics = side.subscriptions[1:]
        played = f"{side.peer}'s side of what a tap saw"
    else:
        if play is not None:
            raise ValueError(f"play={play!r} names a tapped peer; {name} is a recording of mimic sockets")
        topics = ()
        for participant in recorded.participants:
            if participant.role != "mimic" or not recorded.messages(participant.id):
                continue
            kind = participant.socket_type or participant.description.partition(" ")[0]
            connects = " bound to " not in participant.description
            mimic = _Mimic(participant.id, kind, connects, _variable(participant.id, taken))
            if kind == "SUB":
                mimic.options = ['subscribe=b""']  # every topic: the recording does not say which it took
            mimics.append(mimic)
        played = "the mimics' side"
    if not mimics:
        raise ValueError(f"{name} has no messages to make a test of")
    return _Module(recorded, name, played, mimics, topics, command, ready, taken).text()


def write_test(source: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, **options: Any) -> Path:
    """Write :func:`generate`'s module to ``out`` (default: ``test_<recording's name>.py`` beside it)."""
    path = Path(source)
    target = Path(out) if out is not None else path.with_name(f"test_{_variable(path.stem, set())}.py")
    target.write_text(generate(path, **options), encoding="utf-8")
    return target


def _tap_client(recorded: Recorded) -> str:
    for event in recorded.events:
        if event.kind == "wire" and event.text.startswith("connection ") and " through tap " in event.text:
            return event.who
    return tapped_peers(recorded)[0]


def _variable(who: str, taken: set[str]) -> str:
    base = re.sub(r"\W+", "_", who).strip("_").lower() or "sock"
    if base[0].isdigit() or keyword.iskeyword(base):
        base = f"sock_{base}"
    name, count = base, 1
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    taken.add(name)
    return name


class _Module:
    def __init__(
        self,
        recorded: Recorded,
        name: str,
        played: str,
        mimics: list[_Mimic],
        topics: Sequence[bytes],
        command: Sequence[str] | None,
        ready: str | None,
        taken: set[str],
    ) -> None:
        self.recorded, self.name, self.played, self.mimics, self.topics = recorded, name, played, mimics, topics
        self.command, self.ready = command, ready
        self.by_who = {mimic.who: mimic for mimic in mimics}
        self.peers: dict[tuple[str, bytes], str] = {}
        """(ROUTER mimic, recorded routing id) -> the variable that holds the live one."""
        self.taken = taken

    def text(self) -> str:
        body = self._conversation()
        events = [name for name in ("recv", "send") if any(f"yield {name}(" in line for line in body)]
        lines = [*self._head(events), *self._setup(), "", *body]
        return "\n".join(lines) + "\n"

    def _head(self, events: list[str]) -> list[str]:
        binds = any(not mimic.connects for mimic in self.mimics)
        connects = any(mimic.connects for mimic in self.mimics)
        command = PLACEHOLDER_COMMAND
        if self.command is not None:  # the Python running this is the one the test runs with
            command = ", ".join(_argument(arg, first=not at) for at, arg in enumerate(self.command))
        ready = PLACEHOLDER_READY if self.ready is None else self.ready
        what = f" (recorded: {_docstring(self.recorded.test)})" if self.recorded.test else ""
        imports = ", ".join(["from zmqtest import Conversation", "ProcessTest", *events])
        lines = [
            f'"""{self.played.capitalize()} in {_docstring(self.name)}{what}, as a process test.',
            "",
            "Written by `python -m zmqtest generate`: the sockets below talk to the program under test as the",
            "recording did and check each reply as it was recorded. COMMAND and READY below say how the program",
            "starts"
            + (" (fill them in)." if self.command is None else ".")
            + " Values that change from run to run (a pid, a port, a time) need asserts of their own.",
            '"""',
            "",
            *(["import sys", ""] if "sys.executable" in command else []),
            "import zmq",
            "",
            imports,
            "",
        ]
        how = "How to start the program under test" + (" (fill in)" if self.command is None else "")
        how += ": COMMAND is its command line"
        if binds:
            how += ', in which "{endpoint}" stands for where the socket below binds (the program connects to it)'
        if connects:
            how += "; READY" if binds else ", READY"
            how += ' a regular expression for the line it prints once it serves, whose group "endpoint" is where'
            how += " the sockets below connect"
        lines += ["# " + line for line in textwrap.wrap(how + ".", 100)]
        lines.append(f"COMMAND = [{command}]")
        if connects:
            lines.append(f"READY = {_raw(ready)}")
        return lines

    def _setup(self) -> list[str]:
        test = "test_it_answers_as_recorded"
        lines = [
            "",
            "",
            "class TestRecordedConversation(ProcessTest):",
            f"    def {test}(self, zmq_process_factory, zmq_socket_factory) -> Conversation:",
        ]
        bound = [mimic for mimic in self.mimics if not mimic.connects]
        for mimic in bound:
            lines += _call(
                f"{mimic.variable} = zmq_socket_factory",
                [f"zmq.{mimic.kind}", 'bind="tcp://127.0.0.1:*"', f"name={_string(mimic.who)}", *mimic.options],
            )
        start = "[arg.format(endpoint=" + bound[0].variable + ".endpoint) for arg in COMMAND]" if bound else "COMMAND"
        connecting = [mimic for mimic in self.mimics if mimic.connects]
        if connecting:
            lines.append(f"        program = zmq_process_factory({start}, ready=READY)")
        else:
            lines.append(f"        zmq_process_factory({start}, ready={bound[0].variable})")
        for mimic in connecting:
            lines += _call(
                f"{mimic.variable} = zmq_socket_factory",
                [f"zmq.{mimic.kind}", "connect=program.endpoint", f"name={_string(mimic.who)}", *mimic.options],
            )
        for topic in self.topics:
            lines.append(f"        {self.mimics[0].variable}.subscribe({_bytes(topic)})")
        return lines

    def _conversation(self) -> list[str]:
        lines: list[str] = []
        for event in self.recorded.messages():
            mimic = self.by_who.get(event.who)
            if mimic is None or event.kind == "skipped":
                continue
            lines += self._send(mimic, event) if event.kind == "send" else self._recv(mimic, event)
        return lines

    def _frames(self, mimic: _Mimic, frames: Sequence[Any]) -> list[str]:
        shown = [_bytes(frame) for frame in frames]
        if mimic.kind == "ROUTER" and frames:
            shown[0] = self.peers.get((mimic.who, frames[0]), shown[0])
        return shown

    def _send(self, mimic: _Mimic, event: Event) -> list[str]:
        frames = _whole(event)
        body = _json(frames[-1]) if frames else None
        sock = _Code(mimic.variable)
        if body is not None:
            header = [_Code(frame) for frame in self._frames(mimic, frames[:-1])]
            return _statement("yield ", _Call("send", sock, header, body[0]))
        return _statement(
            "", _Call(f"{mimic.variable}.send_multipart", [_Code(f) for f in self._frames(mimic, frames)])
        )

    def _recv(self, mimic: _Mimic, event: Event) -> list[str]:
        frames = _whole(event)
        body = _json(frames[-1]) if frames else None
        lines = [
            f"        reply = yield recv({mimic.variable}" + (")" if body is not None else ", json_load_index=None)")
        ]
        known = self._frames(mimic, frames[:-1] if body is not None else frames)
        if mimic.kind == "ROUTER" and known and (mimic.who, frames[0]) not in self.peers:
            variable = _variable(f"peer{len(self.peers) + 1}", self.taken)
            self.peers[(mimic.who, frames[0])] = variable
            lines.append(f"        {variable} = reply[0]  # the sender's routing id: it changes from run to run")
            known[0] = variable
        expected: list[Any] = [_Code(frame) for frame in known]
        return lines + _statement("assert reply == ", expected if body is None else [*expected, body[0]])


def _whole(event: Event) -> list[bytes]:
    try:
        return event.whole_frames()
    except ValueError as problem:
        raise ValueError(f"{problem}: record with zmqtest.replay.record(), which keeps every frame") from None


class _Code(str):
    """Python source to write as it is."""


def _json(frame: bytes) -> tuple[Any] | None:
    """``(value,)`` if the frame is JSON that ``JsonCodec`` writes back the same, else ``None`` (bytes it stays)."""
    try:
        value = json.loads(frame)
    except ValueError:
        return None
    return (value,) if json.dumps(value).encode() == frame else None


def _call(head: str, arguments: list[str], indent: int = 8) -> list[str]:
    """``head(arguments)`` on one line if it fits in :data:`WIDTH`, else one argument a line (as ruff formats it)."""
    pad = " " * indent
    one = f"{pad}{head}({', '.join(arguments)})"
    if len(one) <= WIDTH:
        return [one]
    return [f"{pad}{head}(", *(f"{pad}    {argument}," for argument in arguments), f"{pad})"]


def _statement(prefix: str, value: Any, suffix: str = "", indent: int = 8) -> list[str]:
    """``prefix + value + suffix`` as lines of at most :data:`WIDTH`: one if it fits, else the value exploded."""
    one = " " * indent + prefix + _literal(value) + suffix
    if len(one) <= WIDTH:
        return [one]
    inner = " " * (indent + 4)
    if isinstance(value, (list, dict, _Call)) and value:
        opening, closing = (
            ("[", "]") if isinstance(value, list) else ("{", "}") if isinstance(value, dict) else ("(", ")")
        )
        head = f"{value.name}(" if isinstance(value, _Call) else opening
        lines = [" " * indent + prefix + head]
        if isinstance(value, dict):
            for key, item in value.items():
                lines += _statement(f"{_string(key)}: ", item, ",", indent + 4)
        else:
            for item in value.args if isinstance(value, _Call) else value:
                lines += _statement("", item, ",", indent + 4)
        return [*lines, " " * indent + closing + suffix]
    if isinstance(value, (str, bytes)) and len(value) > 1:  # a long text: pieces that Python joins
        pieces = _pieces(value, WIDTH - indent - 4 - 3)
        return [
            " " * indent + prefix + "(",
            *(inner + _literal(piece) for piece in pieces),
            " " * indent + ")" + suffix,
        ]
    return [one]


def _pieces(value: str | bytes, room: int) -> list[Any]:
    """``value`` cut into pieces whose literals are at most ``room`` characters long (quotes and ``b`` aside)."""
    pieces, start, used = [], 0, 0
    for at in range(len(value)):
        size = len(_literal(value[at : at + 1])) - (3 if isinstance(value, bytes) else 2)
        if used + size > room and at > start:
            pieces.append(value[start:at])
            start, used = at, 0
        used += size
    return [*pieces, value[start:]]


class _Call:
    """A call to write: ``name(arg, ...)``."""

    def __init__(self, name: str, *args: Any) -> None:
        self.name, self.args = name, args

    def __len__(self) -> int:
        return len(self.args)


def _literal(value: Any) -> str:
    """Python source for a JSON value or bytes, double-quoted as the formatter writes it."""
    if isinstance(value, _Code):
        return str(value)
    if isinstance(value, _Call):
        return f"{value.name}(" + ", ".join(_literal(arg) for arg in value.args) + ")"
    if isinstance(value, bytes):
        return _bytes(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_string(key)}: {_literal(item)}" for key, item in value.items()) + "}"
    return repr(value)


def _string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a Python string (\\uXXXX escapes included)


def _argument(arg: str, *, first: bool) -> str:
    """A command line's argument as source: the Python running the generator, or ``python``, is the test's own."""
    if arg == sys.executable or (first and arg in ("python", "python3")):
        return "sys.executable"
    return _string(arg)


def _raw(text: str) -> str:
    return f'r"{text}"' if '"' not in text and not text.endswith("\\") else repr(text)


def _docstring(text: str) -> str:
    """``text`` on one line, as it reads, inside a docstring."""
    return " ".join(text.split()).replace("\\", "\\\\").replace('"', "'")


def _bytes(frame: bytes) -> str:
    shown = repr(frame)
    if shown.startswith("b'") and '"' not in shown:
        shown = 'b"' + shown[2:-1].replace("\\'", "'") + '"'
    return shown
