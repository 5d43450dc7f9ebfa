"""The HTML page around the charts: one self-contained document, sections, and finding cards.

    >>> page("gradient-doctor report", [section("findings", "Findings", verdict(diag) + cards(diag.findings))])
    '<!DOCTYPE html>...'

No script, no external resource: a Content-Security-Policy forbids both, so the file works offline and
any injected markup stays inert. All text passes through `esc`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..catalog import CATALOG
from ..diagnose.evidence import EvidenceView, evidence_view
from ..diagnose.layer_names import layer_phrase
from ..diagnose.render import why_text
from .svg import esc

if TYPE_CHECKING:
    from ..diagnose import Diagnosis, Finding

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;
color:#222;background:#fff}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:1.6em}
h3{font-size:1em;margin:1em 0 .3em}p.note{color:#555;font-size:.9em;margin:.3em 0 .6em}
.verdict{font-size:1.1em;font-weight:600;padding:8px 12px;border-radius:6px;display:inline-block}
.verdict.healthy{background:#e6f4ea;color:#1e6b34}.verdict.sick{background:#fdecea;color:#a1261b}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-top:12px}
.card{border:1px solid #ddd;border-left:6px solid #888;border-radius:6px;padding:8px 12px;flex:1 1 320px;max-width:100%}
.card.critical{border-left-color:#c62828}.card.warning{border-left-color:#ef8f00}.card.info{border-left-color:#1f77b4}
.card h3{margin:.1em 0 .4em}.severity{font-size:.75em;text-transform:uppercase;letter-spacing:.05em;padding:1px 6px;
border-radius:4px;color:#fff;background:#888;margin-right:6px}.critical .severity{background:#c62828}
.warning .severity{background:#ef8f00}.info .severity{background:#1f77b4}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;font-size:.85em;margin:.4em 0}
.card dt{color:#666}.card dd{margin:0;overflow-wrap:anywhere}.card ol{margin:.3em 0;padding-left:1.4em;font-size:.9em}
.card .why{color:#555;font-size:.95em}.layers{font-family:ui-monospace,monospace;font-size:.85em;overflow-wrap:anywhere}
figure{margin:8px 0 16px}figcaption{font-size:.9em;color:#444;margin-bottom:4px}
svg.chart{max-width:100%;height:auto;font-family:inherit}svg.chart text{fill:#333}svg.chart .caption{fill:#555}
svg.chart .axis{stroke:#888;stroke-width:1}svg.chart .grid{stroke:#eee;stroke-width:1}
svg.chart .marker{stroke:#d62728;stroke-dasharray:4 3;stroke-width:1.5}
.side{display:flex;flex-wrap:wrap;gap:16px}.side>div{flex:1 1 480px;min-width:0}
table.numbers{border-collapse:collapse;font-size:.85em}table.numbers td,table.numbers th{padding:2px 10px;
border-bottom:1px solid #eee;text-align:right}table.numbers th{text-align:left}
pre.diff{background:#f7f7f7;padding:8px;font-size:.85em;overflow-x:auto}pre.diff .add{color:#1e6b34}
pre.diff .del{color:#a1261b}
.scroll{overflow-x:auto;max-width:100%}.card table.numbers{margin:.4em 0}.card{min-width:0}
.card table.numbers td{white-space:nowrap}pre.diff{white-space:pre-wrap}pre.diff .chg{color:#8a5a00}
"""
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def page(title: str, sections: list[str], subtitle: str = "") -> str:
    """The whole document."""
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>")
    header = f"<header><h1>{esc(title)}</h1>" + (f'<p class="note">{esc(subtitle)}</p>' if subtitle else "") + "</header>"
    return head + header + "".join(sections) + "</body></html>\n"


def section(ident: str, heading: str, body: str, note: str = "") -> str:
    """A `<section id=...>` with a heading, an optional explanatory note, and its content."""
    explained = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<section id="{esc(ident)}"><h2>{esc(heading)}</h2>{explained}{body}</section>'


def figure(chart: str, caption: str, ident: str = "") -> str:
    """A captioned chart; `ident` names it for tests and links (`figure[data-chart=...]`)."""
    return f'<figure data-chart="{esc(ident)}"><figcaption>{esc(caption)}</figcaption>{chart}</figure>'


def note(content: str) -> str:
    return f'<p class="note">{esc(content)}</p>'


def verdict(diagnosis: "Diagnosis") -> str:
    """The one-line verdict: healthy, or how many warning/critical findings."""
    if diagnosis.healthy:
        return '<p class="verdict healthy" data-healthy="true">Healthy: no warning or critical finding</p>'
    problems = sum(f.severity != "info" for f in diagnosis.findings)
    return f'<p class="verdict sick" data-healthy="false">{problems} problem(s) found</p>'


def cards(findings: list["Finding"], kinds: dict[str, str] | None = None) -> str:
    """One card per finding, most severe first (as the Diagnosis orders them); `kinds` maps the model's layers, in
    forward order, to their types (`Diagnosis.layer_kinds`)."""
    if not findings:
        return note("No findings.")
    return '<div class="cards">' + "".join(_card(f, kinds or {}) for f in findings) + "</div>"


def _card(f: "Finding", kinds: dict[str, str]) -> str:
    """Severity and kind, the summary, the layers (forward order, with types), the evidence as tables, and the
    ranked remedies (the first with what it rests on beyond the summary)."""
    view = evidence_view(f, kinds)
    remedies = "".join(f"<li><b>{esc(name)}</b> — {esc(CATALOG.get(name, ''))}"
                       + (f'<br><span class="why">{esc(why)}</span>' if (why := why_text(f, name)) and rank == 0
                          else "")
                       + "</li>" for rank, name in enumerate(f.remedies))
    return (
        f'<article class="card {esc(f.severity)}" data-kind="{esc(f.kind)}" data-severity="{esc(f.severity)}">'
        f'<h3><span class="severity">{esc(f.severity)}</span>{esc(f.kind)} <small>({esc(f.scope)})</small></h3>'
        + (f'<p>{esc(f.summary)}</p>' if f.summary else "")
        + (f'<p class="layers">layers: {esc(layer_phrase(f.layers, kinds, limit=12))}</p>' if f.layers else "")
        + _evidence_tables(view)
        + (f"<p><b>Remedies</b>, best first:</p><ol>{remedies}</ol>" if remedies else "")
        + "</article>"
    )


def _evidence_tables(view: EvidenceView) -> str:
    """The per-layer numbers as a table, then the other facts as a two-column list."""
    out = ""
    if view.rows:
        rows = view.rows + ([[f"… {view.more_rows} more", ""] + [""] * len(view.columns)] if view.more_rows else [])
        out += table(["layer", "type", *view.columns], rows, "evidence")
    if view.facts:
        out += "<dl>" + "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in view.facts) + "</dl>"
    return out


def table(headers: list[str], rows: list[list[str]], ident: str = "") -> str:
    """A small table of numbers (already formatted); cells are escaped; it scrolls sideways on a narrow screen."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    numbers = f'<table class="numbers" data-table="{esc(ident)}"><tr>{head}</tr>{body}</table>'
    return f'<div class="scroll">{numbers}</div>'
