"""Strict mode: what a test left unread on its mimic sockets, said once the test is over.

With the setting ``strict`` (see :mod:`zmqtest.settings`), the plugin fails a test whose
mimic sockets still hold messages the test never received: a reply it did not check,
an event it did not expect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zmqtest.rendering import show_message
from zmqtest.transcript import kept

if TYPE_CHECKING:
    from zmqtest.codecs import Codec
    from zmqtest.sockets import TestSocket

__all__ = ["COUNTED_UNREAD", "SHOWN_UNREAD", "unread"]

SHOWN_UNREAD = 5
"""How many unread messages strict mode lists per socket."""
COUNTED_UNREAD = 1000
"""Strict mode counts unread messages up to this many per socket (and then says "or more")."""


def unread(sockets: Iterable[TestSocket], *, codec: Codec | None = None) -> str | None:
    """Read what is left on ``sockets`` without waiting; ``None`` if nothing, else a report listing the messages.

    The messages are consumed (this runs once the test is over). Closed sockets and
    sockets that cannot receive are skipped, and so are the (un)subscriptions a mimic
    XPUB receives: the process sent them to the socket, not to the test.
    """
    import zmq  # here: the plugin imports this module in every run

    problems = []
    for sock in sorted(sockets, key=lambda sock: sock.describe()):
        if sock.closed:
            continue
        try:
            if not zmq.zmq_poll([(sock, zmq.POLLIN)], 0):  # not sock.poll(): an asyncio mimic's returns a future
                continue
        except zmq.ZMQError:  # its context was terminated
            continue
        shown: list[tuple[Any, ...]] = []
        count = 0
        xpub = sock.type == zmq.XPUB
        while count < COUNTED_UNREAD:
            try:  # zmq.Socket's own recv: not the mimic's, which would put what is drained here in the transcript
                frames = [zmq.Socket.recv(sock, zmq.NOBLOCK)]
                while sock.getsockopt(zmq.RCVMORE):
                    frames.append(zmq.Socket.recv(sock, zmq.NOBLOCK))
            except zmq.ZMQError:
                break
            if xpub and len(frames) == 1 and frames[0][:1] in (b"\x00", b"\x01"):
                continue  # a subscription or unsubscription
            count += 1
            if len(shown) < SHOWN_UNREAD:
                shown.append(kept(frames))
        if not count:
            continue
        capped = count >= COUNTED_UNREAD
        counted = f"{count} or more unread messages" if capped else f"{count} unread message{'s' * (count > 1)}"
        lines = [f"  {sock.describe()}: {counted}"]
        lines += [f"    {show_message(frames, codec, 200)}" for frames in shown]
        if count > len(shown):
            lines.append(f"    ... and {count - len(shown)} more" + (" (counting stopped there)" if capped else ""))
        problems.append("\n".join(lines))
    if not problems:
        return None
    sockets_left = "1 mimic socket still holds" if len(problems) == 1 else f"{len(problems)} mimic sockets still hold"
    return (
        f"zmqtest strict mode: {sockets_left} unread messages at the end of the test "
        "(receive them, or turn strict mode off for this test with @pytest.mark.zmqtest(strict=False)):\n"
        + "\n".join(problems)
    )
