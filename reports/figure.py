"""Figure styles and the plumbing every plot shares: a new Figure in a style, saving it, checking its layout.

A :class:`Style` fixes the widest a figure may be and its font sizes, so that text keeps its size when the
figure is shown: ``screen`` (the HTML page: 96 px per inch, text 10 pt = 13 px) and ``paper`` (a PDF that fits
one column of a two-column article, 8.5 cm wide, with no text below 6 pt). A plot function decorated with
:func:`styled` takes ``style=`` (a Style or its name), runs under that style's matplotlib rcParams and
remembers the style on the Figure, so :func:`save_figure` renders it the same way later.

:func:`layout_problems` lists what a reader would see as broken: text outside the figure, an annotation
outside its axes, tick labels that overlap, text too small at a printed width.
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

#: one column of a two-column article (IEEE, Interspeech): 8.5 cm
COLUMN_IN = 8.5 / 2.54
_UNIT_SPACE = re.compile(r"(?<![\w.])([-+]?\d+(?:\.\d+)?) (?=[A-Za-z%μ])")     # a number, then its unit
#: the smallest text a printed figure may carry (pt)
MIN_PRINTED_PT = 6.0


@dataclass(frozen=True)
class Style:
    """Sizes of one medium. ``width``: the widest figure (inches); ``text``: axis labels, ticks, legends
    (pt); ``small``: cell values and dense tick labels; ``dpi``: the PNG's resolution; ``display``: CSS px
    per inch of figure on the HTML page (96 shows the figure at its printed size)."""

    name: str
    width: float
    text: float
    small: float
    title: float
    dpi: float
    display: float

    def rc(self) -> dict[str, Any]:
        return {"font.size": self.text, "axes.titlesize": self.title, "axes.labelsize": self.text,
                "xtick.labelsize": self.text, "ytick.labelsize": self.text, "legend.fontsize": self.small,
                "legend.title_fontsize": self.text, "figure.titlesize": self.title,
                "lines.linewidth": 1.5 if self.name == "screen" else 1.0,
                "lines.markersize": 6.0 if self.name == "screen" else 3.5,
                "axes.linewidth": 0.8 if self.name == "screen" else 0.6,
                "svg.fonttype": "none", "pdf.fonttype": 42, "legend.loc": "upper right"}

    def wrap(self, text: str, width_in: float, size: float | None = None) -> str:
        """``text`` broken at spaces into lines no wider than ``width_in`` inches at ``size`` pt (measured in the
        font matplotlib will use); a number stays with its unit, and a chain's steps (``a → b``) start new lines
        first; a word wider than the line is broken after ``_ - + /`` (or anywhere, failing those)."""
        size = size or self.text
        limit = width_in * 72
        text = str(text)
        if " → " in text and text_width(text, size) > limit:
            return " →\n".join(self.wrap(p, max(width_in - text_width(" →", size) / 72, 0.1), size)
                                for p in text.split(" → "))
        words = [piece for w in _UNIT_SPACE.sub("\\1\u00a0", text).split(" ") for piece in _split_word(w, limit, size)]
        lines: list[str] = []
        for w in words:
            if lines and text_width(f"{lines[-1]} {w}", size) <= limit:
                lines[-1] = f"{lines[-1]} {w}"
            else:
                lines.append(w)
        return "\n".join(lines).replace("\u00a0", " ")


def legend_columns(labels, style: Style, width_in: float, most: int) -> int:
    """How many columns a legend of ``labels`` (at style.small) can have within ``width_in``: at most ``most``."""
    widest = max((text_width(str(lab), style.small) for lab in labels), default=0.0) / 72 + 0.45
    return max(1, min(most, len(labels), int(width_in * 0.95 // widest)))


def _split_word(word: str, limit: float, size: float) -> list[str]:
    """A word wider than ``limit`` pt cut into pieces that fit, preferably after ``_ - + /``."""
    if text_width(word, size) <= limit or len(word) < 2:
        return [word]
    out, cur = [], ""
    for ch in word:
        if cur and text_width(cur + ch, size) > limit:
            cut = max(cur.rfind(c) for c in "_-+/") + 1
            if 0 < cut < len(cur):
                out.append(cur[:cut])
                cur = cur[cut:]
            else:
                out.append(cur)
                cur = ""
        cur += ch
    return out + [cur] if cur else out


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float) -> float:
    """Width (pt) of one line of ``text`` at ``size`` pt in matplotlib's default sans-serif font."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    w, _h, _d = TextToPath().get_text_width_height_descent(text, FontProperties(size=size), ismath=False)
    return float(w)


SCREEN = Style("screen", width=13.0, text=10.0, small=9.0, title=11.5, dpi=96, display=96)
PAPER = Style("paper", width=COLUMN_IN, text=7.0, small=6.0, title=8.0, dpi=300, display=192)
STYLES = {s.name: s for s in (SCREEN, PAPER)}


def get_style(style: Style | str | None) -> Style:
    if style is None:
        return SCREEN
    if isinstance(style, Style):
        return style
    if style not in STYLES:
        raise ValueError(f"style {style!r}: choose {' or '.join(STYLES)}")
    return STYLES[style]


def styled(fn: Callable) -> Callable:
    """Runs a plot function under its ``style=`` keyword's rcParams and tags the Figure it returns."""
    @functools.wraps(fn)
    def wrapper(*args, style: Style | str | None = None, **kw):
        import matplotlib

        st = get_style(style)
        with matplotlib.rc_context(st.rc()):
            fig = fn(*args, style=st, **kw)
            if fig is not None:
                fig.bench_style = st
                fig.draw_without_rendering()     # ticks made now take this style's sizes
        return fig
    return wrapper


def new_figure(w: float, h: float, style: Style):
    """A Figure (Agg canvas, constrained layout) no wider than the style allows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(w, style.width), h), dpi=style.dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def safe_label(s: object) -> str:
    """A text matplotlib shows literally: no mathtext ($), and not hidden from legends (leading _)."""
    s = str(s).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


def style_of(fig) -> Style:
    return getattr(fig, "bench_style", SCREEN)


def png_bytes(fig) -> bytes:
    return render(fig, "png")


def render(fig, fmt: str) -> bytes:
    import matplotlib

    st = style_of(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context(st.rc()):
        fig.savefig(buf, format=fmt, dpi=st.dpi if fmt == "png" else None)
    return buf.getvalue()


def save_figure(fig, base) -> dict[str, bytes]:
    """Writes ``base``.png (for the HTML page), .svg (text kept as text) and .pdf; returns their bytes."""
    base = Path(base)
    out = {}
    for ext in ("png", "svg", "pdf"):
        out[ext] = render(fig, ext)
        tmp = base.with_name(base.name + f".{ext}.tmp")
        tmp.write_bytes(out[ext])
        tmp.replace(base.with_name(base.name + f".{ext}"))
    return out


def display_width(fig) -> int:
    """CSS pixels the HTML page shows the figure's PNG at (its printed size, zoomed by the style)."""
    return int(round(fig.get_figwidth() * style_of(fig).display))


# ---------------------------------------------------------------- layout check
def _texts(fig):
    """(artist, kind, axes, axis name) of every visible, non-empty text of the figure; kind is tick,
    annotation (an ``ax.text``) or text."""
    from matplotlib.text import Text

    ticks = {}
    for ax in fig.axes:
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            all_ticks = axis.get_major_ticks() + axis.get_minor_ticks()
            drawn = {id(t) for t in axis._update_ticks()}     # those inside the view (matplotlib >= 3.1)
            for tick in all_ticks:
                for lab in (tick.label1, tick.label2):
                    ticks[id(lab)] = name if id(tick) in drawn else ""
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or ticks.get(id(t)) == "":
            continue
        ax = t.axes
        kind = "tick" if ticks.get(id(t)) else ("annotation" if ax is not None and t in ax.texts else "text")
        out.append((t, kind, ax, ticks.get(id(t), "")))
    return out


def layout_problems(fig, printed_width_in: float | None = None, min_pt: float = MIN_PRINTED_PT,
                    tolerance_pt: float = 1.0) -> list[str]:
    """What is wrong with a drawn figure's text, as readable lines (empty when nothing is):

    * any text (title, label, tick, legend) reaching outside the figure;
    * an annotation (``ax.text``) reaching outside its axes;
    * two tick labels of one axis overlapping;
    * with ``printed_width_in``: text smaller than ``min_pt`` once the figure is scaled to that width.

    ``tolerance_pt`` forgives a glyph's descender touching an edge.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    r = fig.canvas.get_renderer()
    fb = fig.bbox
    tolerance_px = tolerance_pt * fig.dpi / 72
    out = []
    scale = printed_width_in / fig.get_figwidth() if printed_width_in else None
    seen_ticks: dict[tuple[int, str], list] = {}
    for t, kind, ax, axis in _texts(fig):
        bb = t.get_window_extent(r)
        name = f"{kind} {t.get_text()!r}"
        if (bb.x0 < fb.x0 - tolerance_px or bb.y0 < fb.y0 - tolerance_px or bb.x1 > fb.x1 + tolerance_px
                or bb.y1 > fb.y1 + tolerance_px):
            out.append(f"{name} reaches outside the figure")
        if kind == "annotation":
            ab = ax.get_window_extent(r)
            if (bb.x0 < ab.x0 - tolerance_px or bb.x1 > ab.x1 + tolerance_px or bb.y0 < ab.y0 - tolerance_px
                    or bb.y1 > ab.y1 + tolerance_px):
                out.append(f"{name} reaches outside its axes")
        if kind == "tick":
            seen_ticks.setdefault((id(ax), axis), []).append((t, bb))
        if scale is not None and t.get_fontsize() * scale < min_pt - 0.05:
            out.append(f"{name} is {t.get_fontsize() * scale:.1f} pt at {printed_width_in * 2.54:.1f} cm wide "
                       f"(under {min_pt:g} pt)")
    for items in seen_ticks.values():
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                a, b = items[i][1], items[j][1]
                if a.width and b.width and a.overlaps(b) and _overlap_px(a, b) > tolerance_px:
                    out.append(f"tick labels {items[i][0].get_text()!r} and {items[j][0].get_text()!r} overlap")
    return out


def _overlap_px(a, b) -> float:
    return min(min(a.x1, b.x1) - max(a.x0, b.x0), min(a.y1, b.y1) - max(a.y0, b.y0))
