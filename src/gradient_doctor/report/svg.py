"""Small SVG building blocks: escaping, number formats, scales, colour maps and axes, as strings.

    >>> scale = Scale(1e-6, 1e-1, 0, 400, log=True)
    >>> scale(1e-3)
    240.0
    >>> colour(0.5)   # viridis, 0 = dark violet, 1 = yellow
    '#21918c'

Everything a chart draws goes through `esc` (text and attribute values alike), so layer names such as
``<script>`` stay text. Output is deterministic: fixed formats, no ids from counters or clocks.
"""

from __future__ import annotations

import html
import math

import numpy as np

FONT = 11  # px, the chart text size (the page's CSS sets the family)
# viridis, sampled at 9 evenly spaced points (matplotlib's table): perceptually uniform, readable in grey
_VIRIDIS = ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962", "#addc30", "#fde725")
#: categorical colours for a few series (first, middle, last step; early, late; before, after)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
NAN_FILL = "#eeeeee"  # not measured
BAD_FILL = "#d62728"  # inf / NaN gradients
ZERO_FILL = "#f7b6d2"  # exactly zero on a log colour scale: not merely low


def esc(value: object) -> str:
    """HTML/SVG-escaped text, quotes included: `esc('<b a="1">')` is '&lt;b a=&quot;1&quot;&gt;'."""
    return html.escape(str(value), quote=True)


def num(value: float) -> str:
    """A number for a data attribute: 6 significant digits, 'nan', 'inf' or '-inf' (`float()` reads it back)."""
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def label(value: float, spec: str = ".3g") -> str:
    """A number for people: `label(0.000123)` is '0.000123', `label(float('nan'))` is '—'."""
    value = float(value)
    return "—" if math.isnan(value) else format(value, spec)


def colour(fraction: float) -> str:
    """The viridis colour at `fraction` in [0, 1] (clipped), linearly interpolated between the 9 stops."""
    position = min(max(float(fraction), 0.0), 1.0) * (len(_VIRIDIS) - 1)
    low = min(int(position), len(_VIRIDIS) - 2)
    weight = position - low
    a, b = _rgb(_VIRIDIS[low]), _rgb(_VIRIDIS[low + 1])
    return "#" + "".join(f"{round(x + (y - x) * weight):02x}" for x, y in zip(a, b))


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class Scale:
    """Maps data values in [lo, hi] to pixels in [start, end]; `log=True` maps log10 of the value (> 0)."""

    def __init__(self, lo: float, hi: float, start: float, end: float, *, log: bool = False):
        self.log = log
        self.lo, self.hi = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
        if not self.hi > self.lo:
            self.lo, self.hi = self.lo - 0.5, self.hi + 0.5
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        """The pixel of `value`, clamped to the range; values ≤ 0 on a log scale go to `start`."""
        if self.log:
            value = math.log10(value) if value > 0 else -math.inf
        fraction = min(max((value - self.lo) / (self.hi - self.lo), 0.0), 1.0)
        return round(self.start + fraction * (self.end - self.start), 2)

    def fraction(self, value: float) -> float:
        """Where `value` lies between lo (0) and hi (1), unclamped."""
        if self.log:
            value = math.log10(value) if value > 0 else -math.inf
        return (value - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[tuple[float, str]]:
        """(value, text) pairs: whole decades on a log scale (at most 8), round numbers on a linear one."""
        if self.log:
            first, last = math.ceil(self.lo - 1e-9), math.floor(self.hi + 1e-9)
            stride = max(1, math.ceil((last - first + 1) / 8))
            return [(10.0**e, f"1e{e}") for e in range(first, last + 1, stride)]
        step = _nice_step((self.hi - self.lo) / 5)
        first = math.ceil(self.lo / step - 1e-9)
        values = [k * step for k in range(first, math.floor(self.hi / step + 1e-9) + 1)]
        return [(v, f"{v:.4g}") for v in values]


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def log_range(values: np.ndarray) -> tuple[float, float]:
    """Whole powers of ten around the finite positive `values`, the smallest strictly below their minimum (so the
    smallest bar or colour is not drawn as nothing): `log_range(np.array([2e-3, 4e-3]))` is (1e-3, 1e-2);
    (0.1, 1) if there are none. Whole decades also give the axis at least two tick labels."""
    positive = values[np.isfinite(values) & (values > 0)]
    if positive.size == 0:
        return 0.1, 1.0
    low = math.ceil(math.log10(float(positive.min())) - 1e-9) - 1
    high = max(math.ceil(math.log10(float(positive.max())) - 1e-9), low + 1)
    return 10.0**low, 10.0**high


def linear_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite `values`, widened when they are all equal; (0, 1) if none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    return (low - 0.5, high + 0.5) if high <= low else (low, high)


def svg(width: float, height: float, body: list[str], title: str) -> str:
    """The root element: a fixed-size, scalable drawing with an accessible name."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width:g} {height:g}" '
        f'width="{width:g}" height="{height:g}" role="img" aria-label="{esc(title)}">'
        + "".join(body) + "</svg>"
    )


def text(x: float, y: float, content: object, *, anchor: str = "start", cls: str = "", size: int = FONT) -> str:
    """A text element; `content` is escaped."""
    extra = f' class="{cls}"' if cls else ""
    return f'<text x="{x:g}" y="{y:g}" font-size="{size}" text-anchor="{anchor}"{extra}>{esc(content)}</text>'


def short(name: str, width: int = 28) -> str:
    """`name` cut to `width` characters with a middle ellipsis (the full name goes in a <title>)."""
    if len(name) <= width:
        return name or "(model)"
    keep = (width - 1) // 2
    return name[:keep] + "…" + name[-(width - 1 - keep) :]


def x_axis(scale: Scale, y: float, caption: str, *, grid_to: float | None = None) -> list[str]:
    """Ticks and labels below a horizontal axis at height `y`; with `grid_to`, light grid lines up to it."""
    out = [f'<line x1="{scale.start:g}" y1="{y:g}" x2="{scale.end:g}" y2="{y:g}" class="axis"/>']
    for value, tick in scale.ticks():
        x = scale(value)
        if grid_to is not None:
            out.append(f'<line x1="{x:g}" y1="{grid_to:g}" x2="{x:g}" y2="{y:g}" class="grid"/>')
        out.append(f'<line x1="{x:g}" y1="{y:g}" x2="{x:g}" y2="{y + 4:g}" class="axis"/>')
        out.append(text(x, y + 15, tick, anchor="middle"))
    out.append(text((scale.start + scale.end) / 2, y + 30, caption, anchor="middle", cls="caption"))
    return out


def y_axis(scale: Scale, x: float, caption: str, *, grid_to: float | None = None) -> list[str]:
    """Ticks and labels left of a vertical axis at `x`; with `grid_to`, light grid lines across to it."""
    out = [f'<line x1="{x:g}" y1="{scale.start:g}" x2="{x:g}" y2="{scale.end:g}" class="axis"/>']
    for value, tick in scale.ticks():
        y = scale(value)
        if grid_to is not None:
            out.append(f'<line x1="{x:g}" y1="{y:g}" x2="{grid_to:g}" y2="{y:g}" class="grid"/>')
        out.append(f'<line x1="{x - 4:g}" y1="{y:g}" x2="{x:g}" y2="{y:g}" class="axis"/>')
        out.append(text(x - 6, y + 4, tick, anchor="end"))
    middle = (scale.start + scale.end) / 2
    out.append(
        f'<text x="12" y="{middle:g}" font-size="{FONT}" text-anchor="middle" class="caption" '
        f'transform="rotate(-90 12 {middle:g})">{esc(caption)}</text>'
    )
    return out


def legend(entries: list[tuple[str, str]], x: float, y: float, right: float = math.inf) -> list[str]:
    """Colour swatches with names, from (x, y), in rows that wrap at `right` (each next row 14 below)."""
    return legend_rows(entries, x, y, right)[0]


def legend_rows(entries: list[tuple[str, str]], x: float, y: float, right: float = math.inf) -> tuple[list[str], int]:
    """`legend`'s elements and the number of rows they take."""
    out, left, rows = [], x, 1
    for name, fill in entries:
        step = 24 + 6.5 * len(name)
        if x > left and x + step > right:
            x, y, rows = left, y + 14, rows + 1
        out.append(f'<rect x="{x:g}" y="{y - 9:g}" width="10" height="10" fill="{fill}"/>')
        out.append(text(x + 14, y, name))
        x += step
    return out, rows
