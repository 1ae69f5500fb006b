"""``hubfit scan --html``: one self-contained page (no external assets) for people who would rather look.

The page has a table (one row per model, sortable by any column, filterable by text and status) and a chart
of parameters against memory per precision: one point per (model, precision), log-log axes, coloured by the
smallest GPU set that holds the model at that precision when the reports carry fit figures (one device, several
in one node, several nodes: the fit row's own layout), by a memory band otherwise. Everything is rendered here
from the stored reports (via :func:`hubfit.scan.table.summarize`), numbers by :mod:`hubfit.units`; the
embedded script only sorts, filters and toggles. All text from the Hub is HTML-escaped.
"""

from __future__ import annotations

import html
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from hubfit.fit.planner import FitRow
from hubfit.scan.table import (
    RowSource,
    RowSummary,
    bytes_text,
    count_text,
    fit_label,
    has_fits,
    precisions_of,
    summarize,
)
from hubfit.units import gb, human_count

__all__ = ["PageInfo", "gpu_class", "memory_band", "write_html"]

# Colour-blind-safe palette (Okabe-Ito, then Tol's muted set), in class order from smallest to largest.
_PALETTE = (
    "#009E73",
    "#56B4E9",
    "#0072B2",
    "#E69F00",
    "#CC79A7",
    "#D55E00",
    "#882255",
    "#44AA99",
    "#999933",
    "#332288",
)
_NO_FIT_COLOUR = "#555555"

#: Memory bands (upper bound in bytes, label) used to colour points when the reports carry no fit figures.
#: The bounds are the common card sizes (16, 24, 48, 80, 192 GB).
_BANDS = (
    (16 * 10**9, "up to 16 GB"),
    (24 * 10**9, "16-24 GB"),
    (48 * 10**9, "24-48 GB"),
    (80 * 10**9, "48-80 GB"),
    (192 * 10**9, "80-192 GB"),
)


@dataclass(frozen=True)
class PageInfo:
    """What the page header says about the scan; ``endpoint`` is the Hub the model links point to."""

    title: str
    author: str
    generated_at: float
    hubfit_version: str
    settings: str = ""
    counts: dict[str, int] | None = None
    endpoint: str = "https://huggingface.co"


def gpu_class(fit: FitRow | None) -> tuple[tuple[int, int], str]:
    """The colour class of a fit: a single GPU by name; several GPUs in one node; several nodes; none.

    "One node" is what the fit row's layout says: one pipeline stage (``pp == 1``); more stages are more nodes,
    whatever the device count. Returns ``(sort key, label)``; classes sort from the smallest to the largest
    hardware.
    """
    if fit is None:
        return (3, 0), "no listed GPU set holds it"
    if fit.count == 1:
        return (0, fit.fit.gpu_memory_bytes), f"1x {fit.fit.gpu}"
    if (fit.detail.pp or 1) == 1:
        return (1, 0), "several GPUs in one node"
    return (2, 0), "several nodes (pipeline stages)"


def memory_band(total_bytes: int) -> tuple[tuple[int, int], str]:
    """The colour class of a memory figure when no fit figures exist: ``(sort key, label)``."""
    for i, (bound, label) in enumerate(_BANDS):
        if total_bytes <= bound:
            return (0, i), label
    return (0, len(_BANDS)), f"over {_BANDS[-1][0] // 10**9} GB"


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}
.meta{color:#555;margin-bottom:1em}
.controls{display:flex;gap:1em;flex-wrap:wrap;align-items:center;margin:.8em 0}
.controls input[type=search]{width:22em;padding:.3em}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f4f4f4;cursor:pointer;user-select:none;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"}
th.sorted-desc::after{content:" \\25BC"}
td.l,th.l{text-align:left}
tr.error td{color:#a00}
tr.pending td{color:#777}
td.err{white-space:normal;text-align:left;max-width:40em}
.legend span{display:inline-block;margin-right:1.2em}
.legend i{display:inline-block;width:.8em;height:.8em;border-radius:50%;margin-right:.3em;vertical-align:middle}
svg text{font:11px system-ui,sans-serif;fill:#444}
svg .grid{stroke:#eee}
svg circle{stroke:#fff;stroke-width:.5;opacity:.85}
svg circle.hidden{display:none}
"""

_JS = r"""
(function(){
  var table=document.getElementById('models'),body=table.tBodies[0];
  var heads=table.tHead.rows[0].cells,q=document.getElementById('q'),st=document.getElementById('status');
  var prec=document.getElementById('precision'),shown=document.getElementById('shown');
  function val(td,num){var v=td.getAttribute('data-v');if(num){return v===null||v===''?NaN:parseFloat(v);}
    return (v===null?td.textContent:v).toLowerCase();}
  Array.prototype.forEach.call(heads,function(th,i){th.addEventListener('click',function(){
    var num=th.getAttribute('data-type')==='num',asc=!th.classList.contains('sorted-asc');
    Array.prototype.forEach.call(heads,function(h){h.classList.remove('sorted-asc','sorted-desc');});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=val(a.cells[i],num),y=val(b.cells[i],num);
      if(num){if(isNaN(x)&&isNaN(y))return 0;if(isNaN(x))return 1;if(isNaN(y))return -1;return asc?x-y:y-x;}
      return asc?(x<y?-1:x>y?1:0):(x<y?1:x>y?-1:0);});
    rows.forEach(function(r){body.appendChild(r);});});});
  function apply(){var text=q.value.toLowerCase(),s=st.value,p=prec.value,visible={},n=0;
    Array.prototype.forEach.call(body.rows,function(r){
      var ok=(!text||r.textContent.toLowerCase().indexOf(text)>=0)&&(s==='all'||r.getAttribute('data-status')===s);
      r.style.display=ok?'':'none';if(ok){visible[r.getAttribute('data-repo')]=1;n++;}});
    shown.textContent=n;
    Array.prototype.forEach.call(document.querySelectorAll('#chart circle'),function(c){
      var ok=visible[c.getAttribute('data-repo')]&&(p==='all'||c.getAttribute('data-precision')===p);
      c.classList.toggle('hidden',!ok);});}
  q.addEventListener('input',apply);st.addEventListener('change',apply);prec.addEventListener('change',apply);
  // A link can carry a view: #q=llama&status=ok&precision=int4&sort=parameters&dir=desc
  var h={};location.hash.replace(/^#/,'').split('&').forEach(function(kv){var i=kv.indexOf('=');
    if(i>0){h[decodeURIComponent(kv.slice(0,i))]=decodeURIComponent(kv.slice(i+1).replace(/\+/g,' '));}});
  if(h.q){q.value=h.q;}if(h.status){st.value=h.status;}if(h.precision){prec.value=h.precision;}
  if(h.sort){Array.prototype.forEach.call(heads,function(th){if(th.textContent===h.sort){th.click();
    if(h.dir==='desc'){th.click();}}});}
  apply();
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


#: The chart's series when a report carries no memory estimates: the checkpoint's bytes as stored.
STORED = "weights as stored"


def _points(s: RowSummary) -> dict[str, int]:
    """The (precision -> bytes) points of one model: its memory estimates, else its stored weight bytes."""
    if s.memory:
        return {p: b for p, b in s.memory.items() if b > 0}
    return {STORED: s.weights_bytes} if s.weights_bytes else {}


def _tick_count(n: int) -> str:
    """An axis tick (a power of ten) as :func:`hubfit.units.human_count` writes it, without the zero decimals."""
    return re.sub(r"\.0+(?=[KMBT]?$)", "", human_count(n))


def _log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _chart(rows: RowSource, precisions: list[str], fits: bool) -> Iterator[str]:
    """The scatter plot as inline SVG, streamed: one pass for the extents and classes, one for the points."""
    xs_lo = ys_lo = math.inf
    xs_hi = ys_hi = 0.0
    classes: dict[str, tuple[int, int]] = {}
    for row in rows():
        s = summarize(row)
        points = _points(s)
        if not s.parameters or not points:
            continue
        xs_lo, xs_hi = min(xs_lo, s.parameters), max(xs_hi, s.parameters)
        for precision, total in points.items():
            ys_lo, ys_hi = min(ys_lo, total), max(ys_hi, total)
            key, label = gpu_class(s.fits.get(precision)) if fits else memory_band(total)
            classes.setdefault(label, key)
    if xs_hi == 0 or ys_hi == 0:
        yield '<p id="chart-empty">No analysed model has both a parameter count and a size.</p>'
        return
    ordered = sorted(classes, key=lambda label: classes[label])
    colour = {}
    for i, label in enumerate(ordered):
        colour[label] = _NO_FIT_COLOUR if classes[label][0] == 3 else _PALETTE[i % len(_PALETTE)]
    x_ticks, y_ticks = _log_ticks(xs_lo, xs_hi), _log_ticks(ys_lo, ys_hi)
    x0, y0 = math.log10(x_ticks[0]), math.log10(y_ticks[0])
    x1, y1 = max(math.log10(x_ticks[-1]), x0 + 1), max(math.log10(y_ticks[-1]), y0 + 1)
    width, height, left, right, top, bottom = 860, 420, 70, 20, 15, 45

    def px(v: float) -> float:
        return left + (math.log10(v) - x0) / (x1 - x0) * (width - left - right)

    def py(v: float) -> float:
        return height - bottom - (math.log10(v) - y0) / (y1 - y0) * (height - top - bottom)

    title = "smallest GPU set that holds it" if fits else "memory band (the reports carry no fit figures)"
    yield '<div class="legend" id="legend"><b>Colour: ' + _e(title) + "</b><br>"
    for label in ordered:
        yield f'<span><i style="background:{colour[label]}"></i>{_e(label)}</span>'
    yield "</div>"
    yield (
        f'<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="parameters against memory">'
    )
    for t in x_ticks:
        x = px(t)
        yield f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - bottom}"/>'
        yield f'<text x="{x:.1f}" y="{height - bottom + 15}" text-anchor="middle">{_tick_count(int(t))}</text>'
    for t in y_ticks:
        y = py(t)
        yield f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
        label = f"{t / 1e9:g} GB"
        yield f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(label)}</text>'
    yield (
        f'<text x="{(left + width - right) / 2}" y="{height - 8}" text-anchor="middle">parameters (log)</text>'
        f'<text transform="translate(14,{(top + height - bottom) / 2}) rotate(-90)" text-anchor="middle">'
        f"{'memory per precision' if precisions else 'weights as stored'}, GB = 10^9 bytes (log)</text>"
    )
    for row in rows():
        s = summarize(row)
        points = _points(s)
        if not s.parameters:
            continue
        for precision, total in points.items():
            fit = s.fits.get(precision)
            label = gpu_class(fit)[1] if fits else memory_band(total)[1]
            tip = f"{s.repo_id} - {precision}: {gb(total)}, {human_count(s.parameters)} parameters"
            if fits:
                tip += f" - {fit_label(fit) if fit else 'does not fit the listed GPUs'}"
            yield (
                f'<circle cx="{px(s.parameters):.1f}" cy="{py(total):.1f}" r="4" fill="{colour[label]}" '
                f'data-repo="{_e(s.repo_id)}" data-precision="{_e(precision)}"><title>{_e(tip)}</title></circle>'
            )
    yield "</svg>"


def _table(rows: RowSource, precisions: list[str], fits: bool, endpoint: str) -> Iterator[str]:
    cols = [
        ("model", "l", "text"),
        ("sha", "l", "text"),
        ("parameters", "", "num"),
        ("active", "", "num"),
        ("weights", "", "num"),
        ("quantization", "l", "text"),
    ]
    cols += [(f"memory {p}", "", "num") for p in precisions]
    if fits:
        cols += [(f"fits {p}", "l", "num") for p in precisions]
    cols.append(("error", "l", "text"))
    yield '<table id="models"><thead><tr>'
    for name, cls, kind in cols:
        yield f'<th class="{cls}" data-type="{kind}">{_e(name)}</th>'
    yield "</tr></thead><tbody>"
    for row in rows():
        s = summarize(row)
        cells = [
            f'<td class="l"><a href="{_e(endpoint)}/{_e(s.repo_id)}">{_e(s.repo_id)}</a></td>',
            f'<td class="l" data-v="{_e(s.sha)}"><code>{_e(s.sha[:10])}</code></td>',
            f'<td data-v="{_e(s.parameters if s.parameters is not None else "")}">{count_text(s.parameters)}</td>',
            f'<td data-v="{_e(s.active if s.active is not None else "")}">{count_text(s.active)}</td>',
            f'<td data-v="{_e(s.weights_bytes if s.weights_bytes is not None else "")}">'
            f"{bytes_text(s.weights_bytes)}</td>",
            f'<td class="l">{_e(s.quantization or "-")}</td>',
        ]
        for p in precisions:
            total = s.memory.get(p)
            cells.append(f'<td data-v="{"" if total is None else total}">{bytes_text(total)}</td>')
        if fits:
            for p in precisions:
                fit = s.fits.get(p)
                key = "" if fit is None else fit.count * 10**15 + fit.fit.gpu_memory_bytes
                cells.append(f'<td class="l" data-v="{key}">{_e(fit_label(fit)) if fit else "-"}</td>')
        error = f"{s.error_type}: {s.error}" if s.error else ""
        cells.append(f'<td class="l err">{_e(error)}</td>')
        yield (
            f'<tr class="{_e(s.status)}" data-status="{_e(s.status)}" data-repo="{_e(s.repo_id)}">'
            + "".join(cells)
            + "</tr>"
        )
    yield "</tbody></table>"


def write_html(rows: RowSource, info: PageInfo, out: IO[str]) -> None:
    """Write the page to ``out``; ``rows`` is called once per pass over the scan (four passes, streamed)."""
    precisions = precisions_of(rows())
    fits = has_fits(rows())
    series = precisions or [STORED]
    counts = info.counts or {}
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(info.generated_at))
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(info.title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{_e(info.title)}</h1>\n"
        f'<div class="meta">{_e(counts.get("listed", 0))} models of {_e(info.author)}: '
        f"{_e(counts.get('ok', 0))} analysed, {_e(counts.get('error', 0))} failed"
        + (f", {_e(counts['pending'])} not analysed yet" if counts.get("pending") else "")
        + f". Generated {_e(stamp)} by hubfit {_e(info.hubfit_version)}"
        + (f"; {_e(info.settings)}" if info.settings else "")
        + ". Memory in GB (10<sup>9</sup> bytes), from config.json and safetensors headers only.</div>\n"
    )
    out.write(
        '<div class="controls"><label>Filter <input type="search" id="q" placeholder="model, quantization, '
        'error..."></label><label>Status <select id="status"><option value="all">all</option>'
        '<option value="ok">analysed</option><option value="error">failed</option>'
        '<option value="pending">not analysed</option></select></label>'
        '<label>Chart precision <select id="precision"><option value="all">all</option>'
    )
    for p in series:
        out.write(f'<option value="{_e(p)}">{_e(p)}</option>')
    out.write('</select></label><span><b id="shown">0</b> shown</span></div>\n')
    for chunk in _chart(rows, precisions, fits):
        out.write(chunk)
    out.write("\n")
    for chunk in _table(rows, precisions, fits, info.endpoint.rstrip("/")):
        out.write(chunk + "\n")
    out.write(f"<script>{_JS}</script>\n</body></html>\n")
