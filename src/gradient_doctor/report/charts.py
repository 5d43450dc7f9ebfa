"""SVG charts for the HTML report: log bars, heatmap, lines, ridges and the budget waterfall.

    >>> bars(["fc1", "fc2"], {"step 0": np.array([1e-6, 1e-2])}, caption="‖g‖")
    '<svg ...'

Each chart is a string with one `<svg>`; every mark carries its number in `data-value` (6 significant
digits) and a `<title>` tooltip. NaN (not measured) is left blank; rows are in the order given (layers
first → last, top to bottom).
"""

from __future__ import annotations

import math

import numpy as np

from .svg import (
    BAD_FILL,
    FONT,
    NAN_FILL,
    PALETTE,
    ZERO_FILL,
    Scale,
    colour,
    esc,
    label,
    legend,
    legend_rows,
    linear_range,
    log_range,
    num,
    short,
    svg,
    text,
    x_axis,
    y_axis,
)

WIDTH = 760
_LEFT = 190  # room for layer names
_RIGHT = 20
#: A log axis of bars spans at least this many decades below its largest value: bars within a factor of 2 of each
#: other look alike instead of one full and one nearly empty.
MIN_DECADES = 3
#: Histogram ridges rise at most this many rows high (above 1 they overlap the row above).
RIDGE_OVERLAP = 1.3


def bars(labels: list[str], series: dict[str, np.ndarray], *, caption: str, title: str = "") -> str:
    """Horizontal bars on a log axis, one group per label, one bar per series (e.g. per step)."""
    per_row = len(series)
    bar_height = 7 if per_row > 1 else 11
    row = per_row * bar_height + 6
    top = 10 + (18 if per_row > 1 else 0)
    height = top + row * len(labels) + 40
    low, high = log_range(np.concatenate(list(series.values())))
    scale = Scale(min(low, high / 10**MIN_DECADES), high, _LEFT, WIDTH - _RIGHT, log=True)
    body = x_axis(scale, height - 40, caption, grid_to=top)
    if per_row > 1:
        body += legend([(name, PALETTE[k]) for k, name in enumerate(series)], _LEFT, 14)
    for i, name in enumerate(labels):
        y0 = top + i * row
        body.append(f'<text x="{_LEFT - 6}" y="{y0 + row / 2 + 4:g}" font-size="{FONT}" text-anchor="end">'
                    f"<title>{esc(name)}</title>{esc(short(name))}</text>")
        for k, (series_name, values) in enumerate(series.items()):
            body.append(_bar(scale, name, series_name, float(values[i]), y0 + 3 + k * bar_height, bar_height - 1,
                             PALETTE[k]))
    return svg(WIDTH, height, body, title or caption)


def _bar(scale: Scale, layer: str, series: str, value: float, y: float, height: float, fill: str) -> str:
    attrs = f'class="bar" data-layer="{esc(layer)}" data-series="{esc(series)}" data-value="{num(value)}"'
    tip = f"<title>{esc(layer)} · {esc(series)}: {label(value)}</title>"
    if math.isnan(value):
        return ""
    if math.isinf(value):
        end, fill = scale.end, BAD_FILL
    elif value <= 0:
        return f'<text {attrs} x="{scale.start + 2:g}" y="{y + height:g}" font-size="9" fill="{BAD_FILL}">0{tip}</text>'
    else:
        end = scale(value)
    width = max(end - scale.start, 1.0)
    return f'<rect {attrs} x="{scale.start:g}" y="{y:g}" width="{width:g}" height="{height:g}" fill="{fill}">{tip}</rect>'


def heatmap(labels: list[str], columns: list[str], matrix: np.ndarray, *, caption: str, log: bool = True,
            title: str = "") -> str:
    """Rows × columns of coloured cells (viridis; log colour scale by default) with a colour legend below.

    `columns` names each column (e.g. 'steps 0–49'); `matrix` is rows × columns; NaN cells stay pale grey,
    ±inf cells red, and on a log scale zero (and below) gets its own pink, not the lowest colour."""
    cell_h = 12 if len(labels) <= 40 else 7
    cell_w = (WIDTH - _LEFT - _RIGHT) / max(len(columns), 1)
    top, grid_h = 8, cell_h * len(labels)
    height = top + grid_h + 90
    scale = Scale(*(log_range(matrix) if log else linear_range(matrix)), 0, 1, log=log)
    body = []
    for i, name in enumerate(labels):
        y = top + i * cell_h
        body.append(f'<text x="{_LEFT - 6}" y="{y + cell_h - 2:g}" font-size="{min(FONT, cell_h)}" '
                    f'text-anchor="end"><title>{esc(name)}</title>{esc(short(name))}</text>')
        for j, column in enumerate(columns):
            value = float(matrix[i, j])
            if math.isnan(value):
                fill = NAN_FILL
            elif math.isinf(value):
                fill = BAD_FILL
            else:
                fill = colour(scale.fraction(value)) if value > 0 or not log else ZERO_FILL
            body.append(
                f'<rect class="cell" data-layer="{esc(name)}" data-column="{j}" data-value="{num(value)}" '
                f'x="{_LEFT + j * cell_w:.2f}" y="{y:g}" width="{cell_w + 0.3:.2f}" height="{cell_h:g}" '
                f'fill="{fill}"><title>{esc(name)} · {esc(column)}: {label(value)}</title></rect>'
            )
    axis_y = top + grid_h + 2
    body.append(text(_LEFT, axis_y + 12, columns[0] if columns else "", cls="caption"))
    body.append(text(WIDTH - _RIGHT, axis_y + 12, columns[-1] if columns else "", anchor="end", cls="caption"))
    body += _colour_legend(scale, axis_y + 24, caption, zero=log and bool((matrix <= 0).any()))
    return svg(WIDTH, height, body, title or caption)


def _colour_legend(scale: Scale, y: float, caption: str, *, zero: bool = False) -> list[str]:
    """A strip of 40 colour steps over the value range, with its ticks, then swatches for "not measured",
    non-finite and (with `zero`) zero below it: the heatmap's key."""
    left, width, steps = _LEFT, 300, 40
    out = [f'<rect x="{left + k * width / steps:.2f}" y="{y:g}" width="{width / steps + 0.3:.2f}" height="10" '
           f'fill="{colour(k / (steps - 1))}"/>' for k in range(steps)]
    key = Scale(10**scale.lo if scale.log else scale.lo, 10**scale.hi if scale.log else scale.hi, left, left + width,
                log=scale.log)
    for value, tick in key.ticks():
        out.append(text(key(value), y + 22, tick, anchor="middle"))
    out.append(text(left + width + 12, y + 9, caption, cls="caption"))
    swatches = [("not measured", NAN_FILL), ("inf/NaN", BAD_FILL)] + ([("0", ZERO_FILL)] if zero else [])
    return out + legend(swatches, left, y + 42)


def lines(series: dict[str, tuple[np.ndarray, np.ndarray]], *, x_caption: str, y_caption: str, log_y: bool = False,
          y_range: tuple[float, float] | None = None, markers: list[tuple[float, str]] = (),
          colours: list[str] | None = None, title: str = "") -> str:
    """Line chart of (x, y) series; NaN points are skipped (the line joins the measured ones).
    `y_range`: fixed y limits (e.g. (0, 1) for fractions). `markers`: vertical lines at x with a label (e.g. the
    memory horizon). With more than 8 series, `colours` (one per series) should encode their order, and the
    legend names every line, in as many rows as it needs."""
    finite = [(x[np.isfinite(y)], y[np.isfinite(y)]) for x, y in series.values()]
    if log_y:
        finite = [(x[y > 0], y[y > 0]) for x, y in finite]
    all_x = np.concatenate([x for x, _ in finite] + [np.array([m for m, _ in markers], dtype=float)])
    all_y = np.concatenate([y for _, y in finite])
    colours = colours or [PALETTE[k % len(PALETTE)] for k in range(len(series))]
    names = list(series)
    key, rows = legend_rows(list(zip(names, colours)), 60, 14, WIDTH - _RIGHT)
    top = 28 + 14 * (rows - 1)
    bottom = top + 172
    xs = Scale(*linear_range(all_x.astype(float)), 60, WIDTH - _RIGHT)
    ys = Scale(*(y_range or (log_range(all_y) if log_y else linear_range(all_y))), bottom, top, log=log_y)
    body = x_axis(xs, bottom, x_caption) + y_axis(ys, 60, y_caption, grid_to=WIDTH - _RIGHT)
    for (name, (x, y)), fill in zip(zip(names, finite), colours):
        points = " ".join(f"{xs(a):g},{ys(b):g}" for a, b in zip(x, y))
        tip = f"<title>{esc(name)}</title>"
        if len(x) == 1:
            body.append(f'<circle class="line" data-series="{esc(name)}" cx="{xs(x[0]):g}" cy="{ys(y[0]):g}" r="2.5" '
                        f'fill="{fill}">{tip}</circle>')
        elif len(x):
            body.append(f'<polyline class="line" data-series="{esc(name)}" points="{points}" fill="none" '
                        f'stroke="{fill}" stroke-width="1.5">{tip}</polyline>')
    for at, name in markers:
        body.append(f'<line class="marker" x1="{xs(at):g}" y1="{top:g}" x2="{xs(at):g}" y2="{bottom:g}"/>')
        right_half = xs(at) > (xs.start + xs.end) / 2
        body.append(text(xs(at) + (-4 if right_half else 4), top + 10, name, anchor="end" if right_half else "start"))
    return svg(WIDTH, bottom + 40, body + key, title or y_caption)


def ridges(labels: list[str], edges: np.ndarray, counts: dict[str, np.ndarray], *, caption: str,
           title: str = "") -> str:
    """One ridge per label (top to bottom): a histogram over `edges` (log10 values) per series, each
    `counts[series]` being labels × bins, drawn as filled outlines scaled to the row's tallest bin."""
    row, overlap = (18 if len(labels) <= 40 else 10), RIDGE_OVERLAP
    top = 30
    height = top + row * len(labels) + 45
    scale = Scale(float(edges[0]), float(edges[-1]), _LEFT, WIDTH - _RIGHT)
    centres = (edges[:-1] + edges[1:]) / 2
    body = x_axis(scale, height - 40, caption, grid_to=top)
    body += [f'<line x1="{_LEFT}" y1="{top + (i + 1) * row:g}" x2="{WIDTH - _RIGHT}" y2="{top + (i + 1) * row:g}" '
             f'class="grid"/>' for i in range(len(labels))]  # each ridge's baseline, light: the outlines stand out
    body += legend([(name, PALETTE[k]) for k, name in enumerate(counts)], _LEFT, 14)
    for i, name in enumerate(labels):
        base = top + (i + 1) * row
        body.append(f'<text x="{_LEFT - 6}" y="{base:g}" font-size="{min(FONT, row)}" text-anchor="end">'
                    f"<title>{esc(name)}</title>{esc(short(name))}</text>")
        tallest = max(float(c[i].max()) for c in counts.values())
        for k, (series, c) in enumerate(counts.items()):
            if tallest == 0 or c[i].sum() == 0:
                continue
            heights = c[i] / tallest * row * overlap
            points = [f"{scale(float(edges[0])):g},{base:g}"]
            points += [f"{scale(float(x)):g},{base - h:.2f}" for x, h in zip(centres, heights)]
            points.append(f"{scale(float(edges[-1])):g},{base:g}")
            filled = np.flatnonzero(c[i] > 0)  # stroked over the filled bins only, never along the baseline
            outline = " ".join(points[1 + int(filled[0]): 2 + int(filled[-1])])
            body.append(
                f'<polygon class="ridge" data-layer="{esc(name)}" data-series="{esc(series)}" '
                f'data-count="{round(c[i].sum())}" points="{" ".join(points)}" fill="{PALETTE[k]}" fill-opacity="0.1" '
                f'stroke="none"><title>{esc(name)} · {esc(series)}: {round(c[i].sum())} entries</title></polygon>'
                f'<polyline points="{outline}" fill="none" stroke="{PALETTE[k]}" stroke-width="1.4"/>'
            )
    return svg(WIDTH, height, body, title or caption)


def waterfall_steps(labels: list[str], gains: np.ndarray, remainder: float,
                    total: float) -> tuple[list[tuple[str, float, str]], list[float], list[float]]:
    """The waterfall's rows (name, gain, kind), where each bar starts and where it ends."""
    rows = list(zip(labels, gains.astype(float), ["layer"] * len(labels)))
    rows += [("not attributed (skips, ops)", remainder, "remainder"), ("end to end", total, "total")]
    starts, running = [], 0.0
    for _, gain, kind in rows:
        starts.append(0.0 if kind == "total" else running)
        if kind != "total" and math.isfinite(gain):
            running += gain
    ends = [s + g if math.isfinite(g) else s for s, (_, g, _) in zip(starts, rows)]
    return rows, starts, ends


def waterfall_range(labels: list[str], gains: np.ndarray, remainder: float, total: float) -> tuple[float, float]:
    """The x range `waterfall` draws these numbers on: give the union of two to draw them on one scale."""
    _, starts, ends = waterfall_steps(labels, gains, remainder, total)
    return linear_range(np.array(starts + ends + [0.0]))


def waterfall(labels: list[str], gains: np.ndarray, *, remainder: float, total: float, caption: str,
              title: str = "", x_range: tuple[float, float] | None = None) -> str:
    """The gradient budget: each layer's log10 gain as a step from the running sum (red: orders lost, green:
    orders gained), then what no layer accounts for (`remainder`), then the end-to-end `total` from 0. `x_range`
    fixes the axis (before/after charts on one scale)."""
    rows, starts, ends = waterfall_steps(labels, gains, remainder, total)
    row, top = 14, 10
    height = top + row * len(rows) + 40
    scale = Scale(*(x_range or waterfall_range(labels, gains, remainder, total)), _LEFT, WIDTH - _RIGHT)
    body = x_axis(scale, height - 40, caption, grid_to=top)
    body.append(f'<line x1="{scale(0):g}" y1="{top:g}" x2="{scale(0):g}" y2="{height - 40:g}" class="axis"/>')
    for i, ((name, gain, kind), start, end) in enumerate(zip(rows, starts, ends)):
        y = top + i * row
        body.append(f'<text x="{_LEFT - 6}" y="{y + row - 3:g}" font-size="{FONT}" text-anchor="end">'
                    f"<title>{esc(name)}</title>{esc(short(name))}</text>")
        attrs = f'class="step" data-layer="{esc(name)}" data-kind="{kind}" data-value="{num(gain)}"'
        tip = f"<title>{esc(name)}: {label(gain, '+.3g')} orders of magnitude</title>"
        if not math.isfinite(gain):
            body.append(f'<text {attrs} x="{scale(start) + 3:g}" y="{y + row - 3:g}" font-size="9">{label(gain)}{tip}</text>')
            continue
        fill = "#555555" if kind == "total" else ("#2ca02c" if gain >= 0 else BAD_FILL)
        x0, x1 = sorted((scale(start), scale(end)))
        body.append(f'<rect {attrs} x="{x0:g}" y="{y + 2:g}" width="{max(x1 - x0, 1.0):g}" height="{row - 4}" '
                    f'fill="{fill}">{tip}</rect>')
    return svg(WIDTH, height, body, title or caption)
