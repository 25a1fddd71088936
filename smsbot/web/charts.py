"""Small charts drawn by the server as inline SVG.

No JavaScript and no external library: a nurse's locked-down browser, a phone on a poor
connection and a screen reader all get the same picture. Colours come from the page's CSS
(classes ``tone-*``), so contrast is decided in one place. Every chart carries a text
alternative (``aria-label`` and ``<title>`` per mark); the templates also print the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from smsbot.models import CheckIn
from smsbot.vocabulary import LEVELS, OUTCOMES

WIDTH = 560
LABEL_WIDTH = 110  # room for the row labels on the left
PAD = 16


@dataclass(frozen=True)
class Bar:
    """One bar: a label, a count and a tone (CSS class suffix, e.g. a triage level)."""

    label: str
    value: int
    tone: str


@dataclass(frozen=True)
class Answer:
    """One answered check-in: when, and what the parent said."""

    at: datetime
    outcome: str  # better | same | worse


def answers_of(checkins: Iterable[CheckIn]) -> list[Answer]:
    """The better/same/worse answers among ``checkins``, for the chart."""
    return [
        Answer(c.answered_at, c.outcome)
        for c in checkins
        if c.answered_at is not None and c.outcome in OUTCOMES
    ]


def _svg(height: int, label: str, body: str, css_class: str) -> Markup:
    return Markup(
        f'<svg class="chart {css_class}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def bar_chart(bars: Sequence[Bar], *, label: str) -> Markup:
    """Horizontal bars (they keep their labels readable on a narrow phone screen)."""
    row = 30
    height = PAD * 2 + row * max(len(bars), 1)
    longest = max((bar.value for bar in bars), default=0) or 1
    track = WIDTH - LABEL_WIDTH - PAD - 48  # leave room for the number after the bar
    parts = []
    for index, bar in enumerate(bars):
        y = PAD + index * row
        length = max(round(track * bar.value / longest), 2)  # a zero still shows as a sliver
        text = f"{bar.label}: {bar.value}"
        parts.append(
            f'<g class="tone-{escape(bar.tone)}"><title>{escape(text)}</title>'
            f'<text class="chart-label" x="{LABEL_WIDTH - 8}" y="{y + 19}" text-anchor="end">'
            f"{escape(bar.label)}</text>"
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y + 4}" width="{length}" height="{row - 8}" rx="3"/>'
            f'<text class="chart-value" x="{LABEL_WIDTH + length + 6}" y="{y + 19}">{bar.value}</text>'
            "</g>"
        )
    return _svg(height, label, "".join(parts), "bar-chart")


def answers_chart(answers: Sequence[Answer], *, label: str) -> Markup:
    """Check-in answers over time: one dot per answer on a better/same/worse scale, joined by a line.

    Drawn top to bottom in OUTCOMES order, "better" up and "worse" down, as a nurse reads a
    trend.
    """
    return trend_chart([(a.at, a.outcome) for a in answers], OUTCOMES, label=label, css_class="answers-chart")


def levels_chart(points: Sequence[tuple[datetime, str]], *, label: str) -> Markup:
    """Triage levels of a family's texts over time, the most severe at the top."""
    return trend_chart(points, tuple(reversed(LEVELS)), label=label, css_class="levels-chart")


def trend_chart(
    points: Sequence[tuple[datetime, str]], scale: Sequence[str], *, label: str, css_class: str
) -> Markup:
    """(time, value) points on a scale of named rows, in time order, joined by a line.

    The x axis is real time, so a gap between points shows as a gap.
    """
    row = 36
    height = PAD * 2 + row * (len(scale) - 1) + 24  # 24: the date labels underneath
    left, right = LABEL_WIDTH, WIDTH - PAD
    points = sorted((p for p in points if p[1] in scale), key=lambda p: p[0])
    parts = [
        f'<line class="grid" x1="{left}" x2="{right}" y1="{PAD + i * row}" y2="{PAD + i * row}"/>'
        f'<text class="chart-label" x="{left - 8}" y="{PAD + i * row + 5}" text-anchor="end">'
        f"{escape(name.capitalize())}</text>"
        for i, name in enumerate(scale)
    ]
    if points:
        start, span = points[0][0], (points[-1][0] - points[0][0]).total_seconds()

        def x_of(at: datetime) -> float:
            if span == 0:
                return (left + right) / 2
            return round(left + (right - left) * (at - start).total_seconds() / span, 1)

        coords = [(x_of(at), PAD + list(scale).index(value) * row) for at, value in points]
        parts.append(
            '<polyline class="trend" fill="none" points="' + " ".join(f"{x},{y}" for x, y in coords) + '"/>'
        )
        parts.extend(
            f'<circle class="dot tone-{escape(value)}" cx="{x}" cy="{y}" r="6">'
            f"<title>{at:%d %b %H:%M}: {escape(value)}</title></circle>"
            for (at, value), (x, y) in zip(points, coords, strict=True)
        )
        axis = f'class="chart-axis" y="{height - 6}"'
        parts.append(f'<text {axis} x="{left}">{points[0][0]:%d %b}</text>')
        if span:
            parts.append(f'<text {axis} x="{right}" text-anchor="end">{points[-1][0]:%d %b}</text>')
    return _svg(height, label, "".join(parts), css_class)
