"""P1: one request/reply round trip through ProcessTest vs raw pyzmq vs the article's retry loop.

The process under test is pingpong's PongProc, started by a ProcessManager, so it is
*watched* (every mimic wait races its death) exactly as under the ``zmq_process_factory``
fixture. All variants talk to the same process, one REQ socket each, one message in flight:

- ``processtest``: ``yield ("send", sock, [], body)`` + ``reply = yield ("recv", sock)`` in a
  generator driven by ``ProcessTest.run``; ``sock`` is a TestSocket (timeout 1 s); the
  transcript records, as under pytest by default (setting ``transcript="failed"``: every
  test records, a failed one shows it). This is the row with the target;
- ``processtest, transcript off``: the same with ``transcript="never"`` and nothing recording;
- ``processtest, no process watched``: the same, transcript on, run outside the
  ProcessManager's watch (a TestSocket then waits with libzmq's RCVTIMEO alone);
- ``testsocket``: no generator: ``sock.send_multipart`` / ``sock.recv_multipart`` on the watched
  TestSocket with the raw variant's framing, transcript on (what the socket layer costs);
- ``raw``: a plain blocking pyzmq REQ socket (RCVTIMEO/SNDTIMEO 10 s, set once) with the same framing:
  ``send_multipart([json.dumps(body).encode()])`` + ``json.loads(recv_multipart()[-1])``;
- ``article``: the seed article's wrapper, kept here as the baseline: a NOBLOCK try, then
  a 10 ms sleep, up to 100 tries, for the send and for the receive.

Each round runs every variant once, in rotating order: a block of round trips (fewer for
the article, whose round trip is ~10 ms); the ratio is the median over rounds of the
variant's block median / raw's block median.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import zmq
from bench_common import Result, Row, ratio_fields, rotated, round_ratios, scaled

TARGET = 1.10
TRIES = 100
TRY_PAUSE = 0.01
RAW_DEADLINE_MS = 10_000


class ArticleTimeout(Exception):
    pass


def article_send(sock: zmq.Socket[Any], frames: list[bytes]) -> None:
    """The article's send: NOBLOCK, and on EAGAIN sleep 10 ms and try again, 100 times."""
    for _ in range(TRIES):
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            return
        except zmq.Again:
            time.sleep(TRY_PAUSE)  # sleep-ok: this *is* the article's wrapper, measured as the baseline
    raise ArticleTimeout("send")


def article_recv(sock: zmq.Socket[Any]) -> list[bytes]:
    """The article's receive: NOBLOCK, and on EAGAIN sleep 10 ms and try again, 100 times."""
    for _ in range(TRIES):
        try:
            return sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            time.sleep(TRY_PAUSE)  # sleep-ok: this *is* the article's wrapper, measured as the baseline
    raise ArticleTimeout("recv")


def run(scale: float = 1.0) -> Result:
    from pingpong.pong import PongProc

    from zmqtest.contexts import SocketFactory, TestContext, terminate_context
    from zmqtest.endpoints import EndpointFactory
    from zmqtest.processes import ProcessManager
    from zmqtest.runner import Conversation, ProcessTest
    from zmqtest.settings import Settings, using
    from zmqtest.transcript import recording

    rounds_count = scaled(20, scale, 2)
    block = scaled(1000, scale, 50)
    article_block = scaled(10, scale, 3)
    warmup = scaled(300, scale, 20)
    clock = time.perf_counter

    def conversation(sock: Any, count: int, times: list[float]) -> Conversation:
        for number in range(count):
            began = clock()
            yield ("send", sock, [], ["ping", number])
            reply = yield ("recv", sock)
            times.append(clock() - began)
            if reply != [["pong", number]]:
                raise AssertionError(f"ProcessTest round trip {number}: got {reply!r}")

    def framed_block(send: Callable[..., Any], recv: Callable[[], list[bytes]], count: int, times: list[float]) -> None:
        for number in range(count):
            began = clock()
            send([json.dumps(["ping", number]).encode()])
            reply = json.loads(recv()[-1])
            times.append(clock() - began)
            if reply != ["pong", number]:
                raise AssertionError(f"round trip {number}: got {reply!r}")

    @contextlib.contextmanager
    def transcript_on() -> Iterator[None]:
        """What the pytest plugin does around each test with the default setting."""
        with using(settings), recording():
            yield

    settings = Settings(transcript="failed")
    test = ProcessTest()
    rounds: list[dict[str, list[float]]] = []
    with using(settings), EndpointFactory() as endpoints:
        endpoint = endpoints.tcp()
        context = TestContext()
        try:
            with SocketFactory(context) as sockets, ProcessManager(settings=settings) as procs:
                mimics = {name: sockets(zmq.REQ, connect=endpoint, name=name) for name in ("a", "b", "c", "d")}
                procs.start(PongProc(endpoint), ready=mimics["a"])
                raw = context.socket(zmq.REQ)
                raw.setsockopt(zmq.LINGER, 0)
                raw.setsockopt(zmq.RCVTIMEO, RAW_DEADLINE_MS)  # set once: no cost per call, and never a hang
                raw.setsockopt(zmq.SNDTIMEO, RAW_DEADLINE_MS)
                raw.connect(endpoint)
                article = context.socket(zmq.REQ)
                article.setsockopt(zmq.LINGER, 0)
                article.connect(endpoint)
                unwatched = contextvars.Context()  # a context where nothing is watched (and nothing set at all)

                def processtest(count: int, times: list[float]) -> None:
                    with transcript_on():
                        test.run(conversation, mimics["a"], count, times)

                def transcript_off(count: int, times: list[float]) -> None:
                    with using(settings.replace(transcript="never")):
                        test.run(conversation, mimics["b"], count, times)

                def not_watched(count: int, times: list[float]) -> None:
                    def body() -> None:
                        with transcript_on():
                            test.run(conversation, mimics["c"], count, times)

                    unwatched.run(body)

                def testsocket(count: int, times: list[float]) -> None:
                    with transcript_on():
                        framed_block(mimics["d"].send_multipart, mimics["d"].recv_multipart, count, times)

                variants: dict[str, Callable[[int, list[float]], None]] = {
                    "processtest": processtest,
                    "transcript off": transcript_off,
                    "not watched": not_watched,
                    "testsocket": testsocket,
                    "raw": lambda count, times: framed_block(raw.send_multipart, raw.recv_multipart, count, times),
                    "article": lambda count, times: framed_block(
                        lambda frames: article_send(article, frames), lambda: article_recv(article), count, times
                    ),
                }
                for name, variant in variants.items():  # warm up: connections made, code paths hot
                    variant(article_block if name == "article" else warmup, [])
                names = list(variants)
                for index in range(rounds_count):
                    samples: dict[str, list[float]] = {}
                    for name in rotated(names, index):
                        times: list[float] = []
                        variants[name](article_block if name == "article" else block, times)
                        samples[name] = [seconds * 1e6 for seconds in times]
                    rounds.append(samples)
                raw.close(linger=0)
                article.close(linger=0)
        finally:
            terminate_context(context)

    def pooled(name: str) -> list[float]:
        return [value for samples in rounds for value in samples[name]]

    labels = {
        "processtest": "ProcessTest `yield send` + `yield recv`, watched PongProc, transcript on",
        "transcript off": "the same, transcript off (`transcript=never`)",
        "not watched": "the same, no process watched (transcript on)",
        "testsocket": "TestSocket `send_multipart`/`recv_multipart`, no generator (watched, transcript on)",
        "raw": "raw blocking pyzmq, same framing (reference)",
        "article": "article wrapper: NOBLOCK + sleep 10 ms, 100 tries",
    }
    short = {"processtest": "ProcessTest", "not watched": "not watched", "testsocket": "TestSocket only"}
    rows = []
    for name, label in labels.items():
        ratios = round_ratios(rounds, name, "raw") if name != "raw" else []
        row = Row("P1", label, "us", pooled(name), reference="raw", key=short.get(name, name), **ratio_fields(ratios))
        if name == "processtest":
            row.target = f"≤ {TARGET:.2f}x raw"
            row.met = row.ratio is not None and row.ratio <= TARGET
        rows.append(row)
    notes = [
        f"{rounds_count} interleaved rounds of {block} round trips per variant ({article_block} for the article's "
        f"wrapper) after {warmup} warm-up; one PongProc (forkserver) serves every socket (one REQ socket per variant) "
        f"over tcp://127.0.0.1; raw median {statistics.median(pooled('raw')):.1f} us.",
        'Transcript on = `Settings(transcript="failed")` with `zmqtest.transcript.recording()` in force, as the '
        "plugin runs each test by default.",
    ]
    return Result("P1", "Round trip: ProcessTest vs raw pyzmq vs the article's wrapper", rows, notes)
