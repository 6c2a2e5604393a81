"""Body codecs: the JSON wire format (checked against pyzmq on real sockets), its errors, and the raw codec."""

from __future__ import annotations

import datetime
import json
from typing import TYPE_CHECKING, Any

import pytest
import zmq

from zmqtest import JsonCodec, MessageError, RawCodec, ZmqTestError

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
