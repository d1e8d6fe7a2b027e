"""Rendering :class:`reports.tables.Table` as Markdown and as LaTeX (booktabs) that fits an article page."""
from __future__ import annotations

import re

from reports.tables import Table

def md_escape(s: str) -> str:
    """Text as Markdown shows it, never as markup that does something: table bars, raw HTML, and link or image
    syntax: a ``]`` followed by ``(`` or ``[`` gets that bracket escaped, so a model or speaker named
    ``![t](http://...)`` or ``[x](javascript:...)`` stays text, while a CI like ``[0.0, 20.0]`` stays as it is."""
    return (str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")
            .replace("](", "]\\(").replace("][", "]\\["))


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

#: an article's text width (pt); glyph widths (pt) of \small text and of the \scriptsize CI; a column's padding
TEXT_WIDTH_PT = 345.0
CHAR_PT, SMALL_CHAR_PT, COL_PAD_PT = 4.6, 3.6, 8.0
#: a header longer than this (characters) is set on several lines; row names get what width is left, at least this
LINE_CHARS = 16
#: the most text lines of body rows in one float (a longer table continues in another, its header repeated)
MAX_LINES = 40
_CI = re.compile(r"^(\S+) (\[[^\]]*\])(.*)$")


def tex_escape(s: str) -> str:
    """LaTeX-safe text for pdflatex's default fonts: special characters escaped, a few symbols as math,
    accented Latin letters kept, any other non-ASCII character replaced by '?'."""
    return "".join(_TEX.get(ch, ch if ord(ch) < 128 or ch in _LATIN else "?") for ch in str(s))


def _lines(text: str, chars: int = LINE_CHARS) -> list[str]:
    """A long header or name broken after ``→`` and ``, `` and then at spaces, into lines of ``chars``."""
    import textwrap

    text = str(text)
    if len(text) <= chars:
        return [text]
    out: list[str] = []
    for part in re.split(r"(?<= →) |(?<=,) ", text):
        out += textwrap.wrap(part, chars, break_long_words=False, break_on_hyphens=False) or [""]
    return out


def _tex_cell(text: str, head: bool = False, chars: int = LINE_CHARS) -> tuple[str, float]:
    r"""A cell's LaTeX and its estimated width (pt). ``EER [lo, hi]`` keeps its interval on the same line in
    \scriptsize (a stacked cell would sit above its row's baseline); a long header or row name becomes a
    one-column tabular, bottom-aligned in the header and top-aligned in the body, so its first line sits on
    the row's baseline."""
    m = _CI.match(str(text))
    if m:
        main, ci = m.group(1) + m.group(3), m.group(2)
        return (rf"{tex_escape(main)} {{\scriptsize {tex_escape(ci)}}}",
                len(main) * CHAR_PT + 3 + len(ci) * SMALL_CHAR_PT)
    parts = _lines(text, chars)
    if len(parts) > 1:
        pos, align = ("b", "c") if head else ("t", "l")
        return (rf"\begin{{tabular}}[{pos}]{{@{{}}{align}@{{}}}}" + r"\\".join(tex_escape(p) for p in parts)
                + r"\end{tabular}", max(len(p) for p in parts) * CHAR_PT)
    return tex_escape(text), len(str(text)) * CHAR_PT


def _even_split(items: list[int], fits) -> list[list[int]]:
    """The fewest runs of consecutive ``items``, of sizes differing by at most one, each of which ``fits``; one item a
    run when even that does not fit."""
    n = len(items)
    for k in range(1, n + 1):
        size, extra = divmod(n, k)
        groups, start = [], 0
        for g in range(k):
            stop = start + size + (g < extra)
            groups.append(items[start:stop])
            start = stop
        if all(fits(g) for g in groups):
            return groups
    return [[i] for i in items]


def _parts(widths: list[float], limit: float = TEXT_WIDTH_PT) -> list[list[int]]:
    """Column indices of each part of a table split to fit ``limit``, column 0 repeated in every part: the
    fewest parts, with the columns shared out evenly (never a last part of one stray column)."""
    first = widths[0] + COL_PAD_PT
    rest = [w + COL_PAD_PT for w in widths[1:]]
    groups = _even_split(list(range(1, len(rest) + 1)), lambda g: first + sum(rest[j - 1] for j in g) <= limit)
    return [[0] + g for g in groups] or [[0]]


def transposed(t: Table) -> Table:
    """``t`` with rows and columns swapped: its columns (after the first) become the rows."""
    cols = [t.transpose_corner] + [r[0][0] for r in t.rows]
    rows = [[(c, c)] + [r[j] if j < len(r) else ("–", None) for r in t.rows] for j, c in enumerate(t.columns)
            if j > 0]
    return Table(t.title, cols, rows, caption=t.caption, key=t.key, notes=list(t.notes))


def _layout(t: Table) -> tuple[list[tuple[str, float]], list[list[tuple[str, float]]], list[list[int]]]:
    """Header and body cells (LaTeX, width) and the column parts; row names take the width the other
    columns leave (between LINE_CHARS and 40 characters a line)."""
    head = [_tex_cell(c, head=True) for c in t.columns]
    body = [[_tex_cell(c[0]) for c in r[1:]] for r in t.rows]
    others = sum(max([head[j][1]] + [r[j - 1][1] for r in body if j - 1 < len(r)]) + COL_PAD_PT
                 for j in range(1, len(t.columns)))
    chars = int(min(max((TEXT_WIDTH_PT - others - COL_PAD_PT) / CHAR_PT, LINE_CHARS), 40))
    body = [[_tex_cell(r[0][0], chars=chars)] + b for r, b in zip(t.rows, body)]
    widths = [max([head[j][1]] + [r[j][1] for r in body if j < len(r)]) for j in range(len(t.columns))]
    return head, body, _parts(widths)


def _row_parts(body: list[list[tuple[str, float]]], limit: int = MAX_LINES) -> list[list[int]]:
    """Row indices of each float of a long table: the fewest, of even size, each at most ``limit`` lines."""
    lines = [max([c[0].count(r"\\") + 1 for c in r] or [1]) for r in body]
    return _even_split(list(range(len(body))), lambda g: sum(lines[i] for i in g) <= limit) or [[]]


def to_latex(t: Table) -> str:
    """A booktabs table that fits an article's text width. Cells ``EER [lo, hi]`` keep the interval on their
    line in a smaller font. A table marked ``prefer_transposed`` (rows = models, columns = levels) is set with
    the levels as rows when that needs no more parts; any table is transposed when that needs fewer. A table
    still too wide is split into parts by columns, shared out evenly (the first column repeated)."""
    plans = [(t, _layout(t))]
    if len(t.rows) and all(len(r) == len(t.columns) for r in t.rows):
        tt = transposed(t)
        plans.append((tt, _layout(tt)))
        n0, n1 = len(plans[0][1][2]), len(plans[1][1][2])
        if n1 < n0 or (t.prefer_transposed and n1 <= n0):
            plans.reverse()
    t, (head, body, col_parts) = plans[0]
    parts = [(cols, rows) for cols in col_parts for rows in _row_parts(body)]
    out = []
    for k, (cols, rows) in enumerate(parts):
        spec = "l" + "r" * (len(cols) - 1)
        out += [r"\begin{table}[htbp]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
                rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                " & ".join(head[j][0] for j in cols) + r" \\", r"\midrule"]
        out += [" & ".join(body[i][j][0] for j in cols if j < len(body[i])) + r" \\" for i in rows]
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
