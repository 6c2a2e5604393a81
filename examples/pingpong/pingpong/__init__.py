"""pingpong: the seed article's PongProc, made real.

- :mod:`pingpong.pong`: the server. ``PongProc`` (a ``multiprocessing.Process``)
  answers ``["ping", n]`` with ``["pong", n]`` on a REP socket until it gets
  ``["plzdiekthxbye", null]``, SIGINT or SIGTERM.
- :mod:`pingpong.ping`: the client. ``ping()``, ``send_kill()``.
- ``python -m pingpong``: serve, ping, kill, or a demo of all three.

It exists to show how zmqtest tests an application at three levels: unit, process
and system (see README.md). The names stay in their modules (``pingpong.ping`` is
the client module; a re-exported ``ping`` function would shadow it).
"""

__version__ = "1.0.0"
