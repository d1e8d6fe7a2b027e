"""One self-contained HTML page: inline CSS, a small inline script that sorts tables by a click on a
header, PNG plots as base64 data URIs. No external file and no network (a Content-Security-Policy
forbids any). Every string that comes from a run (file, model, family names, parameters) is escaped.
"""
from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any

from reports.tables import Table

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1900px;
padding:0 1.2em 3em;color:#1d1d1f;line-height:1.45}
p,dl.prov{max-width:75em}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em;margin:1.3em 0 .3em}
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.6em 1em;border-radius:6px;font-weight:600}
.note{color:#555;font-size:.92em}.warn{color:#8a4b00}
table.sortable{border-collapse:collapse;margin:.4em 0 .3em;font-size:.88em;font-variant-numeric:tabular-nums}
table.sortable th,table.sortable td{border:1px solid #d0d0d0;padding:.25em .55em;text-align:right;white-space:nowrap}
table.sortable th:first-child,table.sortable td:first-child{text-align:left}
table.sortable th{background:#f2f4f7;cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2";font-size:.75em}
table.sortable th[aria-sort=descending]::after{content:" \\25BC";font-size:.75em}
table.sortable tbody tr:nth-child(even){background:#fafafa}
td.sig{font-weight:700;color:#a40000}td.better{font-weight:700;color:#00640a}
.caption{font-size:.85em;color:#555;max-width:1100px}
figure{margin:.6em 0 1.2em;max-width:100%}figure img{max-width:100%;height:auto;border:1px solid #eee}
.figs{display:flex;flex-wrap:wrap;gap:0 1.5em;align-items:flex-start}
figcaption{font-size:.85em;color:#555}
nav{font-size:.9em}nav a{margin-right:.8em}
dl.prov{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;font-size:.9em}
dl.prov dt{font-weight:600}dl.prov dd{margin:0;word-break:break-all}
.scroll{overflow-x:auto}
body.wrap table.sortable td{white-space:normal;min-width:5.5em}
"""

# Sorting: a click on a header sorts the body rows by that column's data-v values (numbers when every
# non-empty value parses, else text; empty cells last); a second click reverses.
JS = """
(function(){
  function val(td){var v=td.getAttribute('data-v');return v===null?td.textContent:v;}
  function sortBy(th){
    var table=th.closest('table'),tbody=table.tBodies[0];if(!tbody)return;
    var idx=Array.prototype.indexOf.call(th.parentNode.children,th);
    var dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
    var rows=Array.prototype.slice.call(tbody.rows);
    var vals=rows.map(function(r){return r.cells[idx]?val(r.cells[idx]):'';});
    var numeric=vals.every(function(v){return v===''||isFinite(Number(v));});
    var keyed=rows.map(function(r,i){return {r:r,v:vals[i],i:i};});
    keyed.sort(function(a,b){
      if(a.v===''&&b.v==='')return a.i-b.i;if(a.v==='')return 1;if(b.v==='')return -1;
      var c=numeric?Number(a.v)-Number(b.v):String(a.v).localeCompare(String(b.v));
      if(c===0)c=a.i-b.i;else if(dir==='descending')c=-c;return c;});
    keyed.forEach(function(k){tbody.appendChild(k.r);});
    Array.prototype.forEach.call(th.parentNode.children,function(h){h.removeAttribute('aria-sort');});
    th.setAttribute('aria-sort',dir);
  }
  document.addEventListener('click',function(e){
    var th=e.target.closest?e.target.closest('table.sortable th'):null;if(th)sortBy(th);});
})();
"""

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def table_html(t: Table, cell_classes: dict[tuple[int, int], str] | None = None) -> str:
    """A sortable table; cell_classes maps (row, column) to a CSS class (e.g. sig)."""
    cell_classes = cell_classes or {}
    ident = f' id="{esc("t-" + t.key)}"' if t.key else ""
    out = [f"<h3{ident}>{esc(t.title)}</h3>" if t.title else "",
           f'<div class="scroll"><table class="sortable" data-key="{esc(t.key)}"><thead><tr>']
    out += [f'<th scope="col">{esc(c)}</th>' for c in t.columns]
    out.append("</tr></thead><tbody>")
    for i, row in enumerate(t.rows):
        cells = []
        for j, (text, v) in enumerate(row):
            dv = "" if v is None else (repr(float(v)) if isinstance(v, (int, float)) else str(v))
            cls = cell_classes.get((i, j))
            cells.append(f'<td data-v="{esc(dv)}"' + (f' class="{esc(cls)}"' if cls else "") + f">{esc(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if t.caption:
        out.append(f'<p class="caption">{esc(t.caption)}</p>')
    out += [f'<p class="note">{esc(n)}</p>' for n in t.notes]
    return "\n".join(o for o in out if o)


def img_html(png: bytes, alt: str, caption: str = "", width: int | None = None) -> str:
    """A figure; ``width`` (CSS px) shows the PNG at the size its fonts were chosen for, at most the page's."""
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    size = f' width="{int(width)}"' if width else ""
    style = f' style="width:{int(width)}px"' if width else ""
    return f'<figure{style}><img alt="{esc(alt)}"{size} src="data:image/png;base64,{b64}">{cap}</figure>'


@dataclass
class Page:
    """Sections of escaped content; render() gives the whole document."""

    title: str
    banner: str = ""
    wrap: bool = False          # let table cells wrap (wide comparison tables fit the window)
    _parts: list[str] = field(default_factory=list)
    _nav: list[tuple[str, str]] = field(default_factory=list)

    def section(self, heading: str) -> None:
        sid = f"sec-{len(self._nav) + 1}"
        self._nav.append((sid, heading))
        self._parts.append(f'<h2 id="{sid}">{esc(heading)}</h2>')

    def heading(self, text: str) -> None:
        self._parts.append(f"<h3>{esc(text)}</h3>")

    def para(self, text: str, cls: str = "") -> None:
        self._parts.append(f'<p class="{esc(cls)}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>")

    def table(self, t: Table, cell_classes: dict[tuple[int, int], str] | None = None) -> None:
        self._parts.append(table_html(t, cell_classes))

    def figure(self, png: bytes, alt: str, caption: str = "", width: int | None = None) -> None:
        """Figures added one after another flow side by side where the window is wide enough."""
        self._parts.append(FIG + img_html(png, alt, caption, width))

    def definitions(self, items: list[tuple[str, Any]]) -> None:
        body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
        self._parts.append(f'<dl class="prov">{body}</dl>')

    def render(self) -> str:
        nav = " ".join(f'<a href="#{sid}">{esc(h)}</a>' for sid, h in self._nav)
        banner = f'<p class="banner" id="banner">{esc(self.banner)}</p>' if self.banner else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"<title>{esc(self.title)}</title><style>{CSS}</style></head>"
                + ('<body class="wrap">' if self.wrap else "<body>")
                + f"<h1>{esc(self.title)}</h1>{banner}<nav>{nav}</nav>\n"
                + "\n".join(_grouped(self._parts))
                + f"\n<script>{JS}</script></body></html>\n")


FIG = "\x00fig\x00"     # marks a figure among the page's parts (never in escaped text)


def _grouped(parts: list[str]) -> list[str]:
    """The parts with each run of consecutive figures wrapped in one flex row (div.figs)."""
    out: list[str] = []
    run: list[str] = []
    for p in parts + [""]:
        if p.startswith(FIG):
            run.append(p[len(FIG):])
            continue
        if run:
            out.append('<div class="figs">' + "\n".join(run) + "</div>")
            run = []
        if p:
            out.append(p)
    return out
