"""Body codecs: the JSON wire format (checked against pyzmq on real sockets), its errors, the raw codec, msgpack,
and the Codec base class."""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import os
import pickle
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack  # type: ignore[import-untyped]
import pytest
import zmq

from zmqtest import Codec, JsonCodec, MessageError, MsgpackCodec, ProcessTest, RawCodec, ZmqTestError

if TYPE_CHECKING:
    from conftest import Sockets

BODIES = [
    {"a": "é", "b": [1, 2.5, None, True, False]},
    ["ping", 3],
    "snowman ☃ and 🐍",
    0,
    None,
    {"nested": {"deep": [{"x": []}, {}]}, "1": "one"},
    [["plzdiekthxbye", None]],
]


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_json_wire_format_is_json_dumps_byte_for_byte(body: Any) -> None:
    frame = JsonCodec().encode(body)
    assert isinstance(frame, bytes)
    assert frame == json.dumps(body).encode()


def test_json_default_escapes_non_ascii_and_spaces_separators_as_json_dumps() -> None:
    assert JsonCodec().encode({"a": "é", "b": [1, None]}) == b'{"a": "\\u00e9", "b": [1, null]}'


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_json_equals_pyzmq_send_json_on_the_wire(socks: Sockets, body: Any) -> None:
    server = socks(zmq.PAIR, bind=("", 0), timeout=5)
    client = socks(zmq.PAIR, connect=server.endpoint, timeout=5)
    client.send_json(body)
    assert server.recv() == JsonCodec().encode(body)


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_compact_json_is_utf8_without_spaces(body: Any) -> None:
    frame = JsonCodec(compact=True).encode(body)
    assert frame == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_compact_json_keeps_non_ascii_and_has_no_spaces() -> None:
    assert JsonCodec(compact=True).encode({"a": "é", "b": [1, None]}) == '{"a":"é","b":[1,null]}'.encode()


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_compact_json_equals_pyzmq_send_json_with_compact_options(socks: Sockets, body: Any) -> None:
    server = socks(zmq.PAIR, bind=("", 0), timeout=5)
    client = socks(zmq.PAIR, connect=server.endpoint, timeout=5)
    client.send_json(body, separators=(",", ":"), ensure_ascii=False)
    assert server.recv() == JsonCodec(compact=True).encode(body)


@pytest.mark.parametrize("compact", [True, False])
def test_either_form_decodes_both(compact: bool) -> None:
    body = {"a": "é", "b": [1, 2.5, None]}
    for frame in (JsonCodec().encode(body), JsonCodec(compact=True).encode(body)):
        assert JsonCodec(compact=compact).decode(frame) == body


def test_compact_takes_only_a_bool() -> None:
    with pytest.raises(TypeError, match=r"JsonCodec\(compact=\.\.\.\) takes True or False, got 'yes'"):
        JsonCodec(compact="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("body", BODIES, ids=repr)
def test_json_interoperates_with_pyzmq_defaults(socks: Sockets, body: Any) -> None:
    """A process using plain send_json/recv_json reads our frames, and we read theirs."""
    server = socks(zmq.PAIR, bind=("", 0), timeout=5)
    client = socks(zmq.PAIR, connect=server.endpoint, timeout=5)
    codec = JsonCodec()
    client.send(codec.encode(body))
    assert server.recv_json() == body
    server.send_json(body)
    assert codec.decode(client.recv()) == body


@pytest.mark.parametrize("frame", [b"not json", b'{"a": 1', b"\xff\xfe\xfa", b""], ids=repr)
def test_json_decode_errors_are_value_errors(frame: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (json's own message varies; the type is the contract)
        JsonCodec().decode(frame)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            {"ts": datetime.datetime(2024, 1, 2, 3, 4, 5)},
            "body['ts'] = datetime.datetime(2024, 1, 2, 3, 4, 5) (datetime)",
        ),
        ([1, 2, object()], "body[2] = <object object at"),
        ({"a": [{"b": {1, 2}}]}, "body['a'][0]['b'] = {1, 2} (set)"),
        ((1, b"raw"), "body[1] = b'raw' (bytes)"),
        ({(1, 2): "tuple key"}, "key (1, 2) of body (tuple)"),
        ({"outer": {frozenset(): 1}}, "key frozenset() of body['outer'] (frozenset)"),
        ({1: "fine", "x": [complex(1, 2)]}, "body['x'][0] = (1+2j) (complex)"),
        (datetime.date(2024, 1, 2), "body = datetime.date(2024, 1, 2) (date)"),
    ],
    ids=["dict-value", "list-item", "nested", "bytes", "tuple-key", "nested-key", "int-key-ok", "top-level"],
)
def test_unencodable_body_names_the_path(body: Any, where: str) -> None:
    with pytest.raises(MessageError) as excinfo:
        JsonCodec().encode(body)
    message = str(excinfo.value)
    assert message.startswith("body is not JSON-serialisable: ")
    assert where in message
    assert "is not JSON serializable" in message or "keys must be" in message  # json's own reason follows
    assert excinfo.value.__cause__ is None


def test_message_error_is_a_value_error_and_a_zmqtest_error() -> None:
    with pytest.raises(ValueError, match="JSON-serialisable") as excinfo:
        JsonCodec().encode({"ts": datetime.time(1, 2)})
    assert isinstance(excinfo.value, ZmqTestError)


def test_long_values_are_shortened_in_the_message() -> None:
    class Big:
        def __repr__(self) -> str:
            return "Big(" + "x" * 500 + ")"

    with pytest.raises(MessageError) as excinfo:
        JsonCodec().encode({"big": Big()})
    where = str(excinfo.value).split(": ", 1)[1].split(" (Object of type")[0]
    assert where == "body['big'] = Big(" + "x" * 53 + "... (Big)"


@pytest.mark.parametrize("make", [list, dict], ids=["list", "dict"])
def test_circular_reference_is_a_message_error(make: Any) -> None:
    inner = make()
    body = {"a": [1, inner]}
    if isinstance(inner, list):
        inner.append(body)
    else:
        inner["back"] = body
    with pytest.raises(MessageError, match="circular reference") as excinfo:
        JsonCodec().encode(body)
    expected = "body['a'][1][0]" if isinstance(inner, list) else "body['a'][1]['back']"
    assert f"{expected} (a circular reference)" in str(excinfo.value)


def test_shared_but_not_circular_values_encode() -> None:
    shared = [1, 2]
    assert JsonCodec().encode({"x": shared, "y": [shared, shared]}) == b'{"x": [1, 2], "y": [[1, 2], [1, 2]]}'


def test_a_json_codec_encodes_a_body_again_after_refusing_it() -> None:
    """The codec's C encoder is built once: a refused body leaves none of its containers marked as being encoded."""
    codec = JsonCodec()
    body: list[Any] = [[1], object()]
    with pytest.raises(MessageError, match=r"body\[1\] = <object"):
        codec.encode(body)
    body.pop()
    assert codec.encode(body) == b"[[1]]"  # not "a circular reference": the refused encode's marks are gone


def test_threads_encode_the_same_body_at_once() -> None:
    """Each thread has its own encoder: a body one thread is encoding is no circular reference to another."""
    inside, go_on = threading.Event(), threading.Event()

    class Slow(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            if not inside.is_set():  # the first encode waits here, inside the body, until the second one is done
                inside.set()
                go_on.wait(10)
            return super().items()

    codec, body = JsonCodec(), [Slow(a=1)]
    encoded: list[bytes] = []
    thread = threading.Thread(target=lambda: encoded.append(codec.encode(body)))
    thread.start()
    try:
        assert inside.wait(10)
        assert codec.encode(body) == b'[{"a": 1}]'
    finally:
        go_on.set()
        thread.join(10)
    assert encoded == [b'[{"a": 1}]']


@pytest.mark.parametrize("codec", [JsonCodec(), JsonCodec(compact=True)], ids=repr)
def test_a_json_codec_copies_and_pickles(codec: JsonCodec) -> None:
    for copied in (copy.deepcopy(codec), pickle.loads(pickle.dumps(codec))):
        assert repr(copied) == repr(codec)
        assert copied.encode({"a": "é"}) == codec.encode({"a": "é"})


@pytest.mark.parametrize(
    "frame", [b'["ping", 1]', b' ["ping", 1] ', b'\n{"a": 1}\t', b"NaN", b"-Infinity", b"1e400", b'"\\ud800"'], ids=repr
)
def test_json_decode_is_json_loads_of_the_utf8_text(frame: bytes) -> None:
    assert repr(JsonCodec().decode(frame)) == repr(json.loads(frame.decode()))


@pytest.mark.parametrize(
    "frame", [b'["ping", 1] and more', b'["ping", 1]]', b'\xef\xbb\xbf["ping", 1]', b'["ping"', b" ", b"[1,]"], ids=repr
)
def test_json_decode_errors_are_those_of_json_loads(frame: bytes) -> None:
    with pytest.raises(ValueError) as expected:  # noqa: PT011  (the message is compared below)
        json.loads(frame.decode())
    with pytest.raises(type(expected.value), match=f"^{re.escape(str(expected.value))}$"):
        JsonCodec().decode(frame)


def test_json_lone_surrogate_is_escaped_as_send_json_escapes_it() -> None:
    assert JsonCodec().encode({"s": "\ud800"}) == json.dumps({"s": "\ud800"}).encode() == b'{"s": "\\ud800"}'


def test_compact_json_lone_surrogate_is_a_message_error() -> None:
    with pytest.raises(MessageError, match="not JSON-serialisable"):
        JsonCodec(compact=True).encode({"s": "\ud800"})


def test_json_codec_repr_and_name() -> None:
    assert repr(JsonCodec()) == "JsonCodec()"
    assert repr(JsonCodec(compact=True)) == "JsonCodec(compact=True)"
    assert JsonCodec.name == "json"


@pytest.mark.parametrize(
    ("body", "frame"),
    [
        (b"\x00\xffbytes", b"\x00\xffbytes"),
        (bytearray(b"ba"), b"ba"),
        (memoryview(b"mv"), b"mv"),
        ("héllo", "héllo".encode()),
        ("", b""),
    ],
    ids=["bytes", "bytearray", "memoryview", "str", "empty"],
)
def test_raw_codec_encodes_bytes_like_and_str(body: Any, frame: bytes) -> None:
    encoded = RawCodec().encode(body)
    assert type(encoded) is bytes
    assert encoded == frame


@pytest.mark.parametrize(("body", "type_name"), [(1, "int"), (None, "NoneType"), ({"a": 1}, "dict"), ([b"x"], "list")])
def test_raw_codec_rejects_other_bodies(body: Any, type_name: str) -> None:
    with pytest.raises(MessageError, match=f"body must be bytes or str for the raw codec, got {type_name}$"):
        RawCodec().encode(body)


def test_raw_codec_decode_passes_the_frame_through() -> None:
    frame = b"\xff not json"
    assert RawCodec().decode(frame) is frame
    assert repr(RawCodec()) == "RawCodec()"
    assert RawCodec.name == "raw"


# --- the Codec base class: a readable repr -----------------------------------------------------------------------


class Levelled(Codec):
    def __init__(self, level: int, *, fast: bool = False) -> None:
        self.level = level
        self.fast = fast

    def encode(self, body: Any) -> bytes:
        return bytes(body)

    def decode(self, frame: bytes) -> Any:
        return frame


@dataclasses.dataclass
class Tagged(Codec):
    tag: str = "v1"

    def encode(self, body: Any) -> bytes:
        return self.tag.encode() + bytes(body)

    def decode(self, frame: bytes) -> Any:
        return frame[len(self.tag) :]


class Opaque(Codec):
    """Parameters it does not keep under their names are not shown (it cannot know them)."""

    def __init__(self, secret: str) -> None:
        self._key = secret

    def encode(self, body: Any) -> bytes:
        return bytes(body)

    def decode(self, frame: bytes) -> Any:
        return frame


class Arrayish:
    """A value whose == is not a bool (as numpy arrays)."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value of an array is ambiguous")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Arrayish()"


class WithArray(Codec):
    def __init__(self, table: Any = None) -> None:
        self.table = table

    def encode(self, body: Any) -> bytes:
        return bytes(body)

    def decode(self, frame: bytes) -> Any:
        return frame


@pytest.mark.parametrize(
    ("codec", "shown"),
    [
        (Levelled(3), "Levelled(level=3)"),
        (WithArray(Arrayish()), "WithArray(table=Arrayish())"),
        (Levelled(3, fast=True), "Levelled(level=3, fast=True)"),
        (Tagged(), "Tagged(tag='v1')"),
        (Opaque("s3cret"), "Opaque()"),
        (JsonCodec(), "JsonCodec()"),
        (JsonCodec(compact=True), "JsonCodec(compact=True)"),
        (RawCodec(), "RawCodec()"),
        (MsgpackCodec(), "MsgpackCodec()"),
    ],
    ids=[
        "param",
        "not-comparable",
        "keyword-not-default",
        "dataclass",
        "private-attribute",
        "json",
        "json-compact",
        "raw",
        "msgpack",
    ],
)
def test_a_codec_subclass_reprs_as_its_class_and_parameters(codec: Codec, shown: str) -> None:
    assert repr(codec) == shown
    assert Codec in type(codec).__mro__  # a base class (Codec is also the Protocol that duck-typed codecs meet)


def test_a_codec_class_made_in_a_function_is_named_by_its_qualname() -> None:
    class Local(Codec):
        def encode(self, body: Any) -> bytes:
            return b""

        def decode(self, frame: bytes) -> Any:
            return frame

    assert repr(Local()).endswith(".<locals>.Local()")


# --- msgpack -------------------------------------------------------------------------------------------------------

MSGPACK_BODIES = [["spawn", {"count": 3, "rate": 1.5, "tags": None}], {"bin": b"\x00\xff", "str": "é"}, 0, "x" * 300]


@pytest.mark.parametrize("body", MSGPACK_BODIES, ids=repr)
def test_msgpack_frames_are_those_of_msgpack_packb_both_ways(socks: Sockets, body: Any) -> None:
    """A peer that packs with msgpack itself reads our frames, and we read its frames."""
    server = socks(zmq.PAIR, bind=("", 0), timeout=5)
    client = socks(zmq.PAIR, connect=server.endpoint, timeout=5)
    codec = MsgpackCodec()
    client.send(codec.encode(body))
    assert msgpack.unpackb(server.recv()) == body
    server.send(msgpack.packb(body))
    assert codec.decode(client.recv()) == body


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (b"\xc1", "not msgpack: FormatError"),
        (b"\x93\x01", "not msgpack: ValueError: 3 exceeds max_array_len"),
        (b"\x01\x02", "not msgpack: ExtraData"),
        (b"\x81\x80\x01", "not msgpack: ValueError: dict is not allowed for map key"),
    ],
    ids=["reserved-byte", "truncated", "extra-data", "map-key"],
)
def test_msgpack_decode_errors_are_value_errors_that_say_what(frame: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        MsgpackCodec().decode(frame)


def test_a_bad_msgpack_frame_received_in_a_conversation_names_the_codec(socks: Sockets) -> None:
    class Conversation(ProcessTest):
        codec = MsgpackCodec()

    server = socks(zmq.PAIR, bind=("", 0), timeout=5)
    client = socks(zmq.PAIR, connect=server.endpoint, timeout=5)
    server.send(b"\xc1")
    with pytest.raises(MessageError, match=r"is not valid \(not msgpack: FormatError\) for MsgpackCodec\(\)"):
        Conversation().recv(client)


def test_an_unpackable_msgpack_body_is_a_message_error() -> None:
    with pytest.raises(MessageError, match=r"body is not msgpack-serialisable: .*'datetime.*\(body: \{'ts': "):
        MsgpackCodec().encode({"ts": datetime.datetime(2026, 1, 1)})


def test_without_msgpack_the_codec_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # import msgpack now raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install zmqtest[msgpack]")):
        MsgpackCodec()


def test_importing_zmqtest_does_not_import_msgpack() -> None:
    code = (
        "import sys, zmqtest, zmqtest.codecs, zmqtest.runner, zmqtest.transcript\n"
        "zmqtest.JsonCodec, zmqtest.MsgpackCodec, zmqtest.ProcessTest\n"
        "assert 'msgpack' not in sys.modules, 'msgpack imported'\n"
        "zmqtest.MsgpackCodec()\n"
        "assert 'msgpack' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("codec", "says"),
    [
        ("raw", r"TestBad\.codec is 'raw', not a codec: .* e\.g\. RawCodec\(\) \(from zmqtest import RawCodec\)"),
        ("msgpack", r"is 'msgpack', not a codec: .* e\.g\. MsgpackCodec\(\)"),
        (RawCodec, r"TestBad\.codec is <class '.*RawCodec'>, a class, not a codec: make one, RawCodec\(\)"),
        (json, r"is <module 'json' .*not a codec: one is an object with encode\(body\) -> bytes and decode\(frame\)"),
    ],
)
def test_a_class_with_something_else_as_its_codec_fails_where_it_is_defined(codec: object, says: str) -> None:
    # not at the first send, as str.encode's "argument 'encoding' must be str, not bytes"
    given = codec
    with pytest.raises(TypeError, match=says):

        class TestBad(ProcessTest):
            codec = given  # type: ignore[assignment]


def test_a_codec_set_on_the_instance_is_checked_when_the_test_runs(socks: Sockets) -> None:
    test = ProcessTest()
    test.codec = "raw"  # type: ignore[misc]  # as a setup_method might

    def conversation() -> Any:
        yield ("send", socks(zmq.PAIR, bind=("", 0)), [], b"x")

    with pytest.raises(TypeError, match=r"ProcessTest\.codec is 'raw', not a codec: .* RawCodec\(\)"):
        test.run(conversation)
    test.codec = RawCodec()  # type: ignore[misc]
    sent: list[Any] = []

    def fine() -> Any:
        server = socks(zmq.PAIR, bind=("", 0))
        client = socks(zmq.PAIR, connect=server.endpoint)
        yield ("send", client, [], b"x")
        sent.append((yield ("recv", server)))

    test.run(fine)
    assert sent == [[b"x"]]
