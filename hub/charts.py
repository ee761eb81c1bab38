"""Inline SVG charts for ``hub report``: no scripts, no network, every text escaped.

Each chart is an ``<svg>`` with a ``viewBox`` and ``width="100%"``, so it scales to the
page (a phone included). Every drawn datum is an element of class ``mark`` and the
``<svg>`` says how many it drew (``data-marks``), so a browser test can check that what
was meant to be drawn was drawn. A chart with nothing to show is a note instead, never
an empty frame.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

#: Default colour of a single-series bar.
BLUE = "#3b6ea8"
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


def esc(value: object) -> str:
    """Text for HTML or SVG, attributes included."""
    return html.escape(str(value), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}".replace(",", "\u202f")
    return f"{value:,.1f}".replace(",", "\u202f")


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str = BLUE
    #: Text after the value (a share, a unit).
    note: str = ""
    #: Outline a light bar (white on white).
    outline: bool = False


def empty(message: str) -> str:
    return f'<p class="empty">{esc(message)}</p>'


def _svg(width: int, height: int, body: list[str], marks: int, label: str) -> str:
    # drawn at most 1.25 times its own size: a small grid does not blow up on a wide screen
    return (
        f'<svg class="chart" role="img" aria-label="{esc(label)}" data-marks="{marks}" width="100%" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" '
        f'style="{_FONT};max-width:{width * 1.25:.0f}px">'
        + "".join(body) + "</svg>"
    )


def bar_chart(label: str, bars: Sequence[Bar], *, width: int = 360, empty_message: str = "nothing yet") -> str:
    """Horizontal bars, the label above each bar (readable on a narrow screen)."""
    if not bars or all(bar.value <= 0 for bar in bars):
        return empty(empty_message)
    top = max(bar.value for bar in bars)
    texts = [_num(bar.value) + (f" {bar.note}" if bar.note else "") for bar in bars]
    room = width - 10 - 6.6 * max(len(text) for text in texts)  # the longest bar keeps its value in view
    row = 38
    body: list[str] = []
    for i, bar in enumerate(bars):
        y = i * row
        length = max(2.0, room * bar.value / top) if bar.value > 0 else 0.0
        body.append(f'<text x="0" y="{y + 13}" font-size="13" fill="#222">{esc(_short(bar.label, 46))}</text>')
        if length:
            stroke = ' stroke="#888" stroke-width="1"' if bar.outline else ""
            body.append(
                f'<rect class="mark" x="0" y="{y + 18}" width="{length:.1f}" height="14" rx="2" '
                f'fill="{esc(bar.color)}"{stroke} data-value="{bar.value:g}"><title>{esc(bar.label)}: '
                f"{esc(_num(bar.value))}</title></rect>"
            )
        body.append(f'<text x="{length + 6:.1f}" y="{y + 30}" font-size="12" fill="#444">{esc(texts[i])}</text>')
    marks = sum(1 for bar in bars if bar.value > 0)
    return _svg(width, len(bars) * row, body, marks, label)


def stacked_bar_chart(
    label: str, rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[tuple[str, str]], *,
    width: int = 360, empty_message: str = "nothing yet",
) -> str:
    """One horizontal bar per row, split into the series (name, colour); a legend on top."""
    if not rows or all(sum(values) <= 0 for _, values in rows):
        return empty(empty_message)
    top = max(sum(values) for _, values in rows)
    room = width - 70
    body: list[str] = []
    x = 0.0
    for name, color in series:  # legend
        body.append(f'<rect x="{x:.0f}" y="2" width="12" height="12" fill="{esc(color)}"/>')
        body.append(f'<text x="{x + 16:.0f}" y="12" font-size="12" fill="#222">{esc(_short(name, 32))}</text>')
        x += 24 + 6.8 * min(len(name), 32)
    marks = 0
    row = 38
    for i, (name, values) in enumerate(rows):
        y = 26 + i * row
        body.append(f'<text x="0" y="{y + 13}" font-size="13" fill="#222">{esc(_short(name, 46))}</text>')
        start = 0.0
        for (part, color), value in zip(series, values, strict=True):
            if value <= 0:
                continue
            length = max(2.0, room * value / top)
            body.append(
                f'<rect class="mark" x="{start:.1f}" y="{y + 18}" width="{length:.1f}" height="14" '
                f'fill="{esc(color)}" data-value="{value:g}"><title>{esc(name)}, {esc(part)}: '
                f"{esc(_num(value))}</title></rect>"
            )
            start += length
            marks += 1
        body.append(f'<text x="{start + 6:.1f}" y="{y + 30}" font-size="12" fill="#444">'
                    f"{esc(_num(sum(values)))}</text>")
    return _svg(width, 26 + len(rows) * row, body, marks, label)


def heatmap(
    label: str, row_labels: Sequence[str], column_labels: Sequence[str], values: Sequence[Sequence[float]], *,
    color: str = BLUE, row_title: str = "", column_title: str = "", cell: int = 0,
    empty_message: str = "nothing yet",
) -> str:
    """A grid of counts: each cell's opacity follows its value; the count is written in it."""
    if not row_labels or not column_labels or all(v <= 0 for line in values for v in line):
        return empty(empty_message)
    left = 10 + 7 * min(max(len(r) for r in row_labels), 16)
    cell = cell or max(34, min(64, (356 - left) // max(1, len(column_labels))))
    top_pad = 34 + (14 if column_title else 0)
    width = left + cell * len(column_labels) + 4
    height = top_pad + cell * len(row_labels) + (18 if row_title else 4)
    peak = max(v for line in values for v in line) or 1
    body: list[str] = []
    if column_title:
        body.append(f'<text x="{left}" y="12" font-size="12" fill="#555">{esc(column_title)}</text>')
    for j, name in enumerate(column_labels):
        x = left + j * cell + cell / 2
        body.append(f'<text x="{x:.0f}" y="{top_pad - 8}" font-size="11" text-anchor="middle" fill="#222">'
                    f"{esc(_short(name, max(3, cell // 7)))}<title>{esc(name)}</title></text>")
    marks = 0
    for i, name in enumerate(row_labels):
        y = top_pad + i * cell
        body.append(f'<text x="{left - 6}" y="{y + cell / 2 + 4:.0f}" font-size="12" text-anchor="end" '
                    f'fill="#222">{esc(_short(name, 16))}<title>{esc(name)}</title></text>')
        for j, _ in enumerate(column_labels):
            value = values[i][j]
            opacity = 0.08 + 0.92 * value / peak if value > 0 else 0.03
            ink = "#fff" if value / peak > 0.55 else "#222"
            x = left + j * cell
            body.append(
                f'<rect class="mark" x="{x + 1}" y="{y + 1}" width="{cell - 2}" height="{cell - 2}" rx="3" '
                f'fill="{esc(color)}" fill-opacity="{opacity:.2f}" data-value="{value:g}"><title>'
                f"{esc(name)} × {esc(column_labels[j])}: {esc(_num(value))}</title></rect>"
            )
            body.append(f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" font-size="12" '
                        f'text-anchor="middle" fill="{ink}">{esc(_num(value))}</text>')
            marks += 1
    if row_title:
        body.append(f'<text x="0" y="{height - 4}" font-size="12" fill="#555">{esc(row_title)}</text>')
    return _svg(width, height, body, marks, label)


def line_chart(
    label: str, x_labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[float]]], *,
    width: int = 360, height: int = 200, empty_message: str = "nothing yet",
) -> str:
    """Lines over time: one per series (name, colour, a value per x label), a legend on top."""
    if not x_labels or all(v <= 0 for _, _, values in series for v in values):
        return empty(empty_message)
    left, right, top, bottom = 44, 10, 28, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(v for _, _, values in series for v in values) or 1
    n = len(x_labels)

    def px(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def py(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    body: list[str] = []
    for k in range(5):  # grid and scale
        v = peak * k / 4
        y = py(v)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">'
                    f"{esc(_num(round(v)))}</text>")
    step = max(1, (n + 5) // 6)
    for i in range(0, n, step):
        body.append(f'<text x="{px(i):.1f}" y="{height - 10}" font-size="11" text-anchor="middle" fill="#555">'
                    f"{esc(x_labels[i])}</text>")
    x = left
    marks = 0
    for name, color, values in series:
        body.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{esc(color)}"/>')
        body.append(f'<text x="{x + 16}" y="14" font-size="12" fill="#222">{esc(_short(name, 16))}</text>')
        x += 30 + 7 * min(len(name), 16)
        if all(v <= 0 for v in values):
            continue
        points = " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in enumerate(values))
        if n == 1:  # one point in time: a short level stroke, so the mark has a size
            points = f"{px(0) - 8:.1f},{py(values[0]):.1f} {px(0) + 8:.1f},{py(values[0]):.1f}"
        body.append(f'<polyline class="mark" points="{points}" fill="none" stroke="{esc(color)}" '
                    f'stroke-width="2.5" stroke-linejoin="round" data-series="{esc(name)}"><title>{esc(name)}'
                    f"</title></polyline>")
        marks += 1
    return _svg(width, height, body, marks, label)


__all__ = ["BLUE", "Bar", "bar_chart", "empty", "esc", "heatmap", "line_chart", "stacked_bar_chart"]
