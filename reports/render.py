"""Rendering :class:`reports.tables.Table` as Markdown and as LaTeX (booktabs) that fits an article page."""
from __future__ import annotations

import re

from reports.tables import Table

def md_escape(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def to_markdown(t: Table) -> str:
    lines = [f"### {md_escape(t.title)}", ""]
    lines.append("| " + " | ".join(md_escape(c) for c in t.columns) + " |")
    lines.append("|" + "|".join([" --- "] + [" ---: "] * (len(t.columns) - 1)) + "|")
    for r in t.rows:
        lines.append("| " + " | ".join(md_escape(c[0]) for c in r) + " |")
    if t.caption:
        lines += ["", md_escape(t.caption)]
    for n in t.notes:
        lines += ["", md_escape(n)]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"$\backslash$", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\~{}", "^": r"\^{}", "–": "--", "|": r"$|$",
        "<": r"$<$", ">": r"$>$", "→": r"$\rightarrow$", "←": r"$\leftarrow$",
        "ε": r"$\varepsilon$", "μ": r"$\mu$", "±": r"$\pm$", "×": r"$\times$", "Δ": r"$\Delta$",
        "…": r"\dots{}", "•": r"$\bullet$", "·": r"$\cdot$", "≥": r"$\geq$", "≤": r"$\leq$"}
#: accented letters pdflatex composes in its default fonts; any other non-ASCII character becomes '?'
_LATIN = set("ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝàáâãäåçèéêëìíîïñòóôõöùúûüýÿ")

#: an article's text width (pt) and rough glyph widths of the table fonts (\small, \scriptsize), padding per column
TEXT_WIDTH_PT = 345.0
CHAR_PT, SMALL_CHAR_PT, COL_PAD_PT = 5.0, 3.8, 10.0
_CI = re.compile(r"^(\S+) (\[[^\]]*\])(.*)$")


def tex_escape(s: str) -> str:
    """LaTeX-safe text for pdflatex's default fonts: special characters escaped, a few symbols as math,
    accented Latin letters kept, any other non-ASCII character replaced by '?'."""
    return "".join(_TEX.get(ch, ch if ord(ch) < 128 or ch in _LATIN else "?") for ch in str(s))


def _tex_cell(text: str) -> tuple[str, float]:
    r"""A cell's LaTeX and its estimated width (pt): ``EER [lo, hi]`` stacks the interval below in
    \scriptsize; long headers break at ``→`` and ``, ``."""
    m = _CI.match(str(text))
    if m:
        main, ci = m.group(1) + m.group(3), m.group(2)
        return (rf"\shortstack[r]{{{tex_escape(main)}\\\scriptsize {tex_escape(ci)}}}",
                max(len(main) * CHAR_PT, len(ci) * SMALL_CHAR_PT))
    parts = re.split(r"(?<= →) |(?<=,) ", str(text)) if len(str(text)) > 16 else [str(text)]
    if len(parts) > 1:
        return (r"\shortstack{" + r"\\".join(tex_escape(p) for p in parts) + "}",
                max(len(p) for p in parts) * CHAR_PT)
    return tex_escape(text), len(str(text)) * CHAR_PT


def _chunks(widths: list[float], limit: float = TEXT_WIDTH_PT) -> list[list[int]]:
    """Column indices of each part of a table split to fit ``limit`` (column 0 repeated in every part)."""
    first = widths[0] + COL_PAD_PT
    parts, cur, used = [], [], first
    for j in range(1, len(widths)):
        w = widths[j] + COL_PAD_PT
        if cur and used + w > limit:
            parts.append(cur)
            cur, used = [], first
        cur.append(j)
        used += w
    parts.append(cur)
    return [[0] + p for p in parts if p] or [[0]]


def to_latex(t: Table) -> str:
    """A booktabs table that fits an article's text width: EER cells stack their CI; a table still
    too wide is split into parts by columns (the first column repeated)."""
    head = [_tex_cell(c) for c in t.columns]
    body = [[_tex_cell(c[0]) for c in r] for r in t.rows]
    widths = [max([head[j][1]] + [r[j][1] for r in body if j < len(r)]) for j in range(len(t.columns))]
    parts = _chunks(widths)
    out = []
    for k, cols in enumerate(parts):
        spec = "l" + "r" * (len(cols) - 1)
        out += [r"\begin{table}[htbp]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
                rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                " & ".join(head[j][0] for j in cols) + r" \\", r"\midrule"]
        out += [" & ".join(r[j][0] for j in cols if j < len(r)) + r" \\" for r in body]
        part = f" (part {k + 1} of {len(parts)})" if len(parts) > 1 else ""
        out += [r"\bottomrule", r"\end{tabular}",
                rf"\caption{{{tex_escape(t.title + part)}" + (f". {tex_escape(t.caption)}" if t.caption and
                                                               k == len(parts) - 1 else "") + "}"]
        if t.key:
            out.append(rf"\label{{tab:{_tex_key(t.key)}{'-' + str(k + 1) if len(parts) > 1 else ''}}}")
        out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def _tex_key(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9:.-]+", "-", key)


def latex_figure(path: str, caption: str) -> str:
    """A figure environment including ``path`` (a PDF beside the .tex) at the text width."""
    return "\n".join([r"\begin{figure}[htbp]", r"\centering",
                      rf"\includegraphics[width=\textwidth,height=0.8\textheight,keepaspectratio]{{{path}}}",
                      rf"\caption{{{tex_escape(caption)}}}", r"\end{figure}"]) + "\n"


def latex_document(tables: list[Table], title: str, figures: list[tuple[str, str]] = ()) -> str:
    """The whole article: every table, then the figures (``(pdf path, caption)``), each on its own float."""
    head = [r"% generated by `bench report`: pdflatex report.tex (needs booktabs and graphicx)",
            r"\documentclass{article}", r"\usepackage[utf8]{inputenc}", r"\usepackage{booktabs}",
            r"\usepackage{graphicx}",
            r"\setcounter{topnumber}{4}\setcounter{totalnumber}{6}\renewcommand{\topfraction}{.9}"
            r"\renewcommand{\textfraction}{.05}\renewcommand{\floatpagefraction}{.8}",
            r"\begin{document}", rf"\section*{{{tex_escape(title)}}}"]
    body = [to_latex(t) for t in tables] + [r"\clearpage"] * bool(figures) + [latex_figure(p, c) for p, c in figures]
    return "\n".join(head) + "\n" + "\n".join(body) + r"\end{document}" + "\n"
