"""The Overview's chart: runs per minute by status over the last hour, as server-rendered SVG (no I/O).

Stacked bars, one per minute, a band per status; colours come from the stylesheet (`chart-<status>` classes),
so the SVG holds no style and no script. Every label is escaped."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 26
# The order the bands stack in, from the bottom; any other status goes on top, by name.
STATUS_ORDER = (
    "SUCCESS",
    "FAILURE",
    "TIMED_OUT",
    "CANCELED",
    "ABORTED",
    "INVALID_PAYLOAD",
    "UNRESOLVED_AUTH",
    "EXECUTING",
    "WAITING_TO_CONTINUE",
    "WAITING_TO_EXECUTE",
    "QUEUED",
)


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per minute (the minute's start, UTC) and status, over `minutes` minutes ending with `end`'s."""

    end: datetime
    counts: Mapping[datetime, Mapping[str, int]]
    minutes: int = 60

    def slots(self) -> list[datetime]:
        last = self.end.replace(second=0, microsecond=0)
        return [last - timedelta(minutes=self.minutes - 1 - i) for i in range(self.minutes)]

    def statuses(self) -> list[str]:
        present = {status for by_status in self.counts.values() for status, n in by_status.items() if n > 0}
        known = [status for status in STATUS_ORDER if status in present]
        return known + sorted(present - set(STATUS_ORDER))

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for minute in self.slots():
            for status, n in self.counts.get(minute, {}).items():
                totals[status] = totals.get(status, 0) + n
        return {status: totals[status] for status in self.statuses() if status in totals}


def nice_ceiling(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value` (and at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def runs_chart(series: Series) -> Markup:
    """The chart as an <svg> element, ready to put in a page."""
    slots = series.slots()
    statuses = series.statuses()
    peak = max((sum(series.counts.get(minute, {}).values()) for minute in slots), default=0)
    top = nice_ceiling(peak)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bar = plot_width / len(slots)
    total = sum(series.totals().values())
    label = f"Runs per minute by status over the last {series.minutes} minutes: {total} runs"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(label)}</title>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_height * (1 - fraction)
        value = top * fraction
        text = f"{value:g}"
        parts.append(f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="chart-axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(text)}</text>')
    for i, minute in enumerate(slots):
        x = LEFT + i * bar
        by_status = series.counts.get(minute, {})
        y = TOP + plot_height
        for status in statuses:
            n = by_status.get(status, 0)
            if n <= 0:
                continue
            height = plot_height * n / top
            y -= height
            parts.append(
                f'<rect class="chart-bar chart-{_css_name(status)}" x="{x + 0.5:.1f}" y="{y:.1f}" '
                f'width="{max(bar - 1, 0.5):.1f}" height="{height:.1f}">'
                f"<title>{escape(f'{minute:%H:%M} UTC: {n} {status}')}</title></rect>"
            )
        if i % 10 == 0 or i == len(slots) - 1:
            parts.append(
                f'<text class="chart-axis" x="{x + bar / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
                f"{escape(f'{minute:%H:%M}')}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _css_name(status: str) -> str:
    """The stylesheet's class of a status; one the service does not know is drawn as `other`."""
    return status.lower() if status in STATUS_ORDER else "other"
