"""Small inline SVG charts for the report page (no script, no CDN: the page opens anywhere, offline).
Hand-written: a plotting library would bring a browser bundle or matplotlib for two chart kinds."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

COLOURS = ("#2f6fbd", "#d9822b", "#3a9a5b", "#b03a48")
WIDTH = 640


def _text(x: float, y: float, text: str, anchor: str = "start", size: int = 12) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}">{escape(text)}</text>'


def bars(items: Sequence[tuple[str, float | None, str]], *, label: str) -> str:
    """Horizontal bars of rates in [0, 1]: (name, rate or None, note shown after the bar)."""
    row, left, right = 22, 190, 120
    span = WIDTH - left - right
    height = row * len(items) + 30
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">'
    ]
    for i, (name, rate, note) in enumerate(items):
        y = 10 + i * row
        parts.append(_text(left - 8, y + 14, name, "end"))
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{span}" height="{row - 8}" fill="#eee"/>')
        if rate is not None:
            colour = COLOURS[2] if rate >= 0.999 else (COLOURS[1] if rate >= 0.9 else COLOURS[3])
            parts.append(
                f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(1.0, span * rate):.1f}" '
                f'height="{row - 8}" fill="{colour}"><title>{escape(name)}: {rate:.1%}</title></rect>'
            )
        parts.append(_text(left + span + 6, y + 14, note))
    axis_y = 10 + len(items) * row + 12
    for tick in (0, 0.5, 1):
        parts.append(_text(left + span * tick, axis_y, f"{tick:.0%}", "middle", 10))
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    low: float,
    high: float,
    bins: int,
    label: str,
    unit: str,
) -> str:
    """Overlaid histograms of several series on one axis (counts per bin); values outside
    [low, high] are counted in the first or last bin."""
    height, left, bottom, top = 220, 50, 40, 28
    span_x, span_y = WIDTH - left - 20, height - bottom - top
    width = (high - low) / bins or 1.0
    counts = []
    for _, values in series:
        c = [0] * bins
        for v in values:
            c[min(bins - 1, max(0, int((v - low) / width)))] += 1
        counts.append(c)
    peak = max((max(c) for c in counts if c), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">',
        f'<line x1="{left}" y1="{top + span_y}" x2="{left + span_x}" y2="{top + span_y}" stroke="#888"/>',
    ]
    bar_w = span_x / bins / max(1, len(series))
    for s, ((name, _), c) in enumerate(zip(series, counts, strict=True)):
        colour = COLOURS[s % len(COLOURS)]
        for b, n in enumerate(c):
            if n:
                h = span_y * n / peak
                x = left + b * span_x / bins + s * bar_w
                parts.append(
                    f'<rect class="bar" x="{x:.1f}" y="{top + span_y - h:.1f}" width="{max(1.0, bar_w - 1):.1f}" '
                    f'height="{h:.1f}" fill="{colour}" fill-opacity="0.85"><title>{escape(name)}: {n} in '
                    f"{low + b * width:.3g}-{low + (b + 1) * width:.3g} {escape(unit)}</title></rect>"
                )
        parts.append(f'<rect x="{left + 10 + s * 150}" y="6" width="12" height="12" fill="{colour}"/>')
        parts.append(_text(left + 26 + s * 150, 16, f"{name} ({len(series[s][1])})"))
    for i in range(5):
        value = low + (high - low) * i / 4
        parts.append(_text(left + span_x * i / 4, top + span_y + 16, f"{value:.3g}", "middle", 10))
    parts.append(_text(left + span_x / 2, height - 6, unit, "middle", 11))
    parts.append(_text(left - 6, top + 8, str(peak), "end", 10))
    parts.append("</svg>")
    return "".join(parts)
