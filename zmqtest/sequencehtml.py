"""A transcript as a sequence diagram in HTML and SVG, self-contained (no script, no external file).

pytest-html's report shows it for a failing test (the plugin attaches it as an html extra);
:func:`page` makes a page of its own, and ``python -m zmqtest diagram FILE.jsonl [OUT.html]``
one from a transcript file (:mod:`zmqtest.transcriptfile`).

The layout is the text diagram's: a time column, one lifeline per participant (the test,
each mimic socket, each process under test), one row per event. A message a mimic sent is
an arrow from its lifeline to the right, one it received an arrow back to it; the peer is
whoever the socket is connected to (the transcript records what the mimic saw). What a tap
saw one peer send another is an arrow between their lifelines. Each text is cut to the row;
hovering over it shows it whole.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from html import escape

from zmqtest.transcriptfile import Event, Recorded, load

__all__ = ["page", "render"]

ROW = 20
"""Pixels per event."""
LANE = 120
"""Pixels between two lifelines."""
TIME = 84
"""Pixels of the time column."""
TOP = 52
"""Pixels above the first event: the participants' labels."""
TEXT_CHARS = 120
"""Characters of an event's text shown on its row (the whole text is its tooltip)."""
CHAR = 7.3
"""Pixels per character of the monospace text (for the diagram's width)."""

STYLE = """
.zmqtest-transcript { font: 13px/1.4 system-ui, sans-serif; color: #1b1f23; margin: 8px 0; }
.zmqtest-transcript h4 { margin: 0 0 4px; font-size: 14px; }
.zmqtest-transcript .zt-meta { margin: 0 0 6px; color: #57606a; }
.zmqtest-transcript .zt-outcome { color: #b42318; font-weight: 600; }
.zmqtest-transcript table.zt-who { border-collapse: collapse; margin: 0 0 6px; }
.zmqtest-transcript table.zt-who td { padding: 0 12px 0 0; vertical-align: top; }
.zmqtest-transcript .zt-scroll { overflow-x: auto; border: 1px solid #d0d7de; background: #fff; }
.zmqtest-transcript svg text { font: 12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.zmqtest-transcript svg .zt-label { font-weight: 600; }
.zmqtest-transcript svg .zt-time { fill: #57606a; }
.zmqtest-transcript svg .zt-life { stroke: #8c959f; stroke-dasharray: 3 3; }
.zmqtest-transcript svg .zt-send { stroke: #0969da; fill: #0969da; }
.zmqtest-transcript svg .zt-recv { stroke: #1a7f37; fill: #1a7f37; }
.zmqtest-transcript svg .zt-skipped { stroke: #8c959f; fill: #8c959f; }
.zmqtest-transcript svg .zt-error { stroke: #cf222e; fill: #cf222e; }
.zmqtest-transcript svg .zt-note { stroke: #8250df; fill: #8250df; }
.zmqtest-transcript svg .zt-wire { stroke: #bc4c00; fill: #bc4c00; }
.zmqtest-transcript svg .zt-phase { stroke: #57606a; stroke-dasharray: 6 4; }
.zmqtest-transcript svg text.zt-send, .zmqtest-transcript svg text.zt-recv, .zmqtest-transcript svg text.zt-note,
.zmqtest-transcript svg text.zt-skipped, .zmqtest-transcript svg text.zt-error,
.zmqtest-transcript svg text.zt-wire { stroke: none; }
.zmqtest-transcript svg text.zt-send, .zmqtest-transcript svg text.zt-recv { fill: #1b1f23; }
"""


def render(recorded: Recorded) -> str:
    """The diagram as an HTML fragment (a ``<div class="zmqtest-transcript">`` with its own style)."""
    lanes = {participant.id: TIME + 24 + index * LANE for index, participant in enumerate(recorded.participants)}
    right = max(lanes.values()) + 36
    text_x = right + 10
    rows = len(recorded.events) + (1 if recorded.outcome else 0)
    height = TOP + rows * ROW + 16
    longest = max([len(_cut(event.text, TEXT_CHARS)) + 10 for event in recorded.events] + [len(recorded.outcome or "")])
    width = int(text_x + CHAR * min(longest, TEXT_CHARS) + 20)
    bottom = height - 8
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="zt-diagram" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="sequence diagram of the test\'s messages">',
        f'<text class="zt-time" x="{TIME}" y="{TOP - 24}" text-anchor="end">ms</text>',
    ]
    for participant in recorded.participants:
        x = lanes[participant.id]
        parts.append(
            f'<text class="zt-label" x="{x}" y="{TOP - 24}" text-anchor="middle">'
            f"<title>{escape(participant.description)}</title>{escape(_cut(participant.id, 15))}</text>"
        )
        parts.append(f'<line class="zt-life" x1="{x}" y1="{TOP - 16}" x2="{x}" y2="{bottom}"/>')
    for row, event in enumerate(recorded.events):
        y = TOP + row * ROW
        to_x = lanes.get(event.to) if event.to is not None else None
        parts.extend(_event(event, lanes.get(event.who, lanes["test"]), y, right, text_x, width, to_x=to_x))
    if recorded.outcome:
        y = TOP + len(recorded.events) * ROW
        failed = Event(recorded.events[-1].at if recorded.events else 0.0, "test", "error", recorded.outcome)
        parts.extend(_event(failed, lanes["test"], y, right, text_x, width, timed=False))
    parts.append("</svg>")
    return "\n".join(
        [
            '<div class="zmqtest-transcript">',
            f"<style>{STYLE}</style>",
            f"<h4>zmqtest transcript{': ' + escape(recorded.test) if recorded.test else ''}</h4>",
            _meta(recorded),
            _participants(recorded),
            '<div class="zt-scroll">',
            *parts,
            "</div>",
            "</div>",
        ]
    )


def page(recorded: Recorded) -> str:
    """The diagram as a whole HTML page."""
    title = escape(f"zmqtest transcript: {recorded.test or 'a test'}")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body>\n{render(recorded)}\n</body>\n</html>\n"
    )


def _meta(recorded: Recorded) -> str:
    count = sum(event.kind != "phase" for event in recorded.events)
    codec = f"bodies decoded with {escape(recorded.codec)}" if recorded.codec else "bodies shown as JSON where JSON"
    outcome = f' <span class="zt-outcome">{escape(recorded.outcome)}</span>' if recorded.outcome else ""
    return f'<p class="zt-meta">{count} events (times in ms since the test began); {codec}.{outcome}</p>'


def _participants(recorded: Recorded) -> str:
    rows = "".join(
        f"<tr><td><b>{escape(p.id)}</b></td><td>{escape(p.role)}</td><td>{escape(p.description)}</td></tr>"
        for p in recorded.participants[1:]
    )
    return f'<table class="zt-who">{rows}</table>' if rows else ""


def _event(
    event: Event, x: int, y: int, right: int, text_x: int, width: int, *, timed: bool = True, to_x: int | None = None
) -> list[str]:
    kinds = ("send", "recv", "skipped", "error", "note", "phase") + (("wire",) if to_x is not None else ())
    kind = event.kind if event.kind in kinds else "note"
    time = f'<text class="zt-time" x="{TIME}" y="{y + 4}" text-anchor="end">{event.at * 1000:.3f}</text>'
    if kind == "phase":
        return [
            f'<line class="zt-phase" x1="{TIME + 8}" y1="{y}" x2="{width - 8}" y2="{y}"/>',
            f'<text x="{text_x}" y="{y - 3}" class="zt-time">{escape(event.text)}</text>',
        ]
    text = f"(skipped) {event.text}" if kind == "skipped" else event.text
    label = (
        f'<text class="zt-{kind} zt-text" x="{text_x}" y="{y + 4}" data-kind="{kind}" data-who="{escape(event.who)}">'
        f"<title>{escape(text)}</title>{escape(_cut(text, TEXT_CHARS))}</text>"
    )
    shapes: list[str]
    if kind == "send":  # from the mimic to its peer, on the right
        shapes = [
            f'<circle class="zt-send" cx="{x}" cy="{y}" r="3"/>',
            f'<line class="zt-send" x1="{x}" y1="{y}" x2="{right}" y2="{y}"/>',
            _head(right, y, +1, "zt-send"),
        ]
    elif kind in ("recv", "skipped"):  # from the peer back to the mimic
        shapes = [
            f'<line class="zt-{kind}" x1="{right}" y1="{y}" x2="{x + 1}" y2="{y}"/>',
            _head(x, y, -1, f"zt-{kind}"),
        ]
    elif kind == "error":
        shapes = [
            f'<path class="zt-error" d="M{x - 4},{y - 4} L{x + 4},{y + 4} M{x - 4},{y + 4} L{x + 4},{y - 4}" '
            'stroke-width="2"/>',
            f'<line class="zt-error" x1="{x + 6}" y1="{y}" x2="{right}" y2="{y}"/>',
        ]
    elif kind == "wire" and to_x is not None:  # seen by a tap: from one peer's lifeline to the other's
        shapes = [
            f'<circle class="zt-wire" cx="{x}" cy="{y}" r="3"/>',
            f'<line class="zt-wire" x1="{x}" y1="{y}" x2="{to_x - 5 if to_x > x else to_x + 5}" y2="{y}"/>',
            _head(to_x, y, +1 if to_x > x else -1, "zt-wire"),
        ]
    else:
        shapes = [f'<circle class="zt-note" cx="{x}" cy="{y}" r="4"/>']
    return [*([time] if timed else []), *shapes, label]


def _head(x: int, y: int, direction: int, css: str) -> str:
    """An arrow's head at ``(x, y)`` pointing right (``direction`` 1) or left (-1)."""
    back = x - 7 * direction
    return f'<polygon class="{css}" points="{x},{y} {back},{y - 4} {back},{y + 4}"/>'


def _cut(text: str, limit: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m zmqtest.sequencehtml FILE.jsonl [OUT.html]``: the page of a transcript file (default: stdout)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 2):
        print("usage: python -m zmqtest.sequencehtml TRANSCRIPT.jsonl [OUT.html]", file=sys.stderr)
        return 2
    html = page(load(args[0]))
    if len(args) == 2:
        with open(args[1], "w", encoding="utf-8") as out:
            out.write(html)
    else:
        sys.stdout.write(html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
