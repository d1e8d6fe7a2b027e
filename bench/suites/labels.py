"""Human labels and plot axes of severity levels, derived from a level's parameters by their names.

A level is labelled by the parameters a reader cares about, each formatted with its unit:
``bitrate: 16000`` -> ``16 kb/s``, ``snr_db: 10`` -> ``10 dB SNR``, ``rt60: 0.6`` -> ``RT60 0.6 s``,
and an attack's budget ``snr_db: 40`` -> ``ε = 40 dB SNR``. Nothing here knows a family by name: a new
family whose levels carry ``bitrate`` or ``snr_db`` is labelled (and plotted in kb/s or dB) for free.
Across a ladder only the parameters that change are shown (G.711's constant 64 kb/s is left out of
its input-level ladder); a lone level shows all of them. A chain's label joins its steps' with ``→``.

:func:`level_labels` labels a ladder; :func:`family_axis` gives the physical x axis a plot of the
ladder should use (the first parameter of :data:`UNITS` that changes and is numeric at every level).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["Unit", "UNITS", "level_labels", "level_label", "family_axis", "Axis"]


def _g(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class Unit:
    """How one parameter is shown: ``fmt`` for labels, ``title`` for an axis (values x ``factor``)."""

    fmt: Callable[[float], str]
    title: str
    factor: float = 1.0
    log: bool = False            # log axis when the values span a factor of 3 or more
    harsher: str = "up"          # "down": smaller values are harsher (the axis is drawn reversed)
    attack_fmt: Callable[[float], str] | None = None   # the label of an attack's budget
    attack_title: str = ""
    neutral: float | None = None  # a value that says nothing on its own (1 pass): shown only when it changes


def _rate(v: float) -> str:
    return f"{v / 1000:g} kHz" if v >= 100 else f"×{v:g}"


#: parameter name -> unit, in the order a label lists them (the first that changes is the x axis)
UNITS: dict[str, Unit] = {
    "bitrate": Unit(lambda v: f"{v / 1000:g} kb/s", "bitrate (kb/s)", 1e-3, log=True, harsher="down"),
    "bandwidth_kbps": Unit(lambda v: f"{v:g} kb/s", "bitrate (kb/s)", log=True, harsher="down"),
    "kbps": Unit(lambda v: f"{v:g} kb/s", "bitrate (kb/s)", log=True, harsher="down"),
    "first_bitrate": Unit(lambda v: f"{v / 1000:g} kb/s", "bitrate (kb/s)", 1e-3, log=True, harsher="down"),
    "second_bitrate": Unit(lambda v: f"{v / 1000:g} kb/s", "bitrate (kb/s)", 1e-3, log=True, harsher="down"),
    "snr_db": Unit(lambda v: f"{v:g} dB SNR", "SNR (dB)", harsher="down",
                   attack_fmt=lambda v: f"ε = {v:g} dB SNR",
                   attack_title="attack budget ε: SNR of the perturbation (dB)"),
    "eps": Unit(lambda v: f"ε = {v:g}", "ε (waveform amplitude)", log=True,
                attack_title="attack budget ε (waveform amplitude)"),
    "rt60": Unit(lambda v: f"RT60 {v:g} s", "RT60 (s)"),
    "loss_rate": Unit(lambda v: f"{100 * v:g}% loss", "packets lost (%)", 100.0),
    "threshold": Unit(lambda v: f"clip at {v:g}", "clipping threshold (full scale)", harsher="down"),
    "bits": Unit(lambda v: f"{v:g} bit", "bits per sample", harsher="down"),
    "mulaw_bits": Unit(lambda v: f"μ-law {v:g} bit" if v else "no μ-law", "μ-law bits", harsher="down"),
    "input_level_dbov": Unit(lambda v: f"{v:g} dBov", "input level (dBov)", harsher="down"),
    "gain_db": Unit(lambda v: f"{v:+g} dB gain", "gain (dB)", harsher="down", neutral=0),
    "semitones": Unit(lambda v: f"±{v:g} semitones", "pitch shift (semitones)"),
    "rate": Unit(_rate, "rate"),
    "passes": Unit(lambda v: f"{v:g} pass" + ("" if v == 1 else "es"), "passes", neutral=1),
    "talkers": Unit(lambda v: f"{v:g} talker" + ("" if v == 1 else "s"), "talkers"),
    "band": Unit(str, "band"),                      # low_hz/high_hz, joined below
    "codec": Unit(str, "codec"),
    # black-box attacks: the query budget beside the SNR budget (after snr_db, so the axis stays the SNR)
    "queries": Unit(lambda v: f"{v:g} queries", "queries per utterance", log=True),
}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pieces(params: Mapping[str, Any], kind: str) -> dict[str, str]:
    """parameter name -> formatted text, for the parameters of :data:`UNITS` this level has."""
    p = dict(params)
    lo, hi = _num(p.get("low_hz")), _num(p.get("high_hz"))
    if lo is not None and hi is not None:
        p["band"] = f"{lo:g}–{hi:g} Hz"
    out: dict[str, str] = {}
    for key, unit in UNITS.items():
        v = p.get(key)
        if v is None:
            continue
        x = _num(v)
        if key in ("band", "codec") or x is None:
            if isinstance(v, str) and v:
                out[key] = v
            continue
        fmt = unit.attack_fmt if kind == "attack" and unit.attack_fmt else unit.fmt
        if kind == "attack" and key == "eps" and _num(p.get("snr_db")) is not None:
            continue   # an attack with an SNR budget has no fixed eps
        out[key] = fmt(x)
    return out


def _join(texts: list[str]) -> str:
    return ", ".join(dict.fromkeys(t for t in texts if t))


def _fallback(params: Mapping[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k}={params[k]}" for k in keys if k in params and not isinstance(params[k], (dict, list)))


def _steps(params: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    st = params.get("steps")
    if isinstance(st, list) and st and all(isinstance(s, Mapping) for s in st):
        return st
    return None


def level_labels(levels: Mapping[int, Mapping[str, Any]], kind: str = "perturbation") -> dict[int, str]:
    """severity -> a human label for one ladder (the levels of one family in one run).

    Shows the parameters of :data:`UNITS` that change across the ladder (all of them for a lone level,
    or when none changes); a chain (``params.steps``) joins its steps' labels with `` → ``.
    """
    levels = {int(s): (p if isinstance(p, Mapping) else {}) for s, p in levels.items()}
    chains = {s: _steps(p) for s, p in levels.items()}
    if levels and all(chains.values()):
        n = max(len(c) for c in chains.values())
        per_step = []
        for i in range(n):
            sub = {s: (c[i].get("params", {}) if i < len(c) else {}) for s, c in chains.items()}
            per_step.append(level_labels(sub, "attack" if any("attack" in c[i] for c in chains.values()
                                                              if i < len(c)) else kind))
        return {s: " → ".join(lab[s] for lab in per_step if lab.get(s)) or f"s{s}" for s in levels}
    pieces = {s: _pieces(p, kind) for s, p in levels.items()}
    keys = list(dict.fromkeys(k for pc in pieces.values() for k in pc))
    varying = [k for k in keys if len({pieces[s].get(k) for s in levels}) > 1]
    plain = [k for k in keys if UNITS[k].neutral is None
             or any(_num(p.get(k)) != UNITS[k].neutral for p in levels.values())]
    show = varying or plain or keys
    out = {}
    for s, p in levels.items():
        text = _join([pieces[s][k] for k in show if k in pieces[s]])
        if not text:   # no parameter with a known unit: the changing ones, as name=value
            raw = [k for k in dict.fromkeys(k for q in levels.values() for k in q)
                   if len({repr(q.get(k)) for q in levels.values()}) > 1] or list(p)
            text = _fallback(p, raw)
        out[s] = text or f"s{s}"
    return out


def level_label(params: Mapping[str, Any], kind: str = "perturbation") -> str:
    """The label of one level on its own (every parameter with a known unit)."""
    return level_labels({1: params}, kind)[1]


@dataclass(frozen=True)
class Axis:
    """A physical x axis for a ladder: ``values`` (severity -> value in axis units)."""

    key: str
    title: str
    values: dict[int, float]
    log: bool
    reversed: bool          # smaller values are harsher: drawn right to left so harsher is to the right


def family_axis(levels: Mapping[int, Mapping[str, Any]], kind: str = "perturbation") -> Axis | None:
    """The first parameter of :data:`UNITS` that is numeric at every level and takes distinct values at
    each; None when there is none (chains, categorical ladders): plot by severity then."""
    levels = {int(s): p for s, p in levels.items() if int(s) != 0 and isinstance(p, Mapping)}
    if not levels or any(_steps(p) for p in levels.values()):
        return None
    for key, unit in UNITS.items():
        vals = {s: _num(p.get(key)) for s, p in levels.items()}
        if any(v is None for v in vals.values()) or key in ("band", "codec"):
            continue
        if len(set(vals.values())) != len(vals) or (len(vals) == 1 and len(levels) > 1):
            continue
        if key == "rate" and not all(v >= 100 for v in vals.values()):
            unit = Unit(_g, "time-stretch rate", harsher="down")
        elif key == "rate":
            unit = Unit(_rate, "sample rate (kHz)", 1e-3, harsher="down")
        xs = {s: v * unit.factor for s, v in vals.items()}
        pos = [v for v in xs.values() if v > 0]
        log = unit.log and len(pos) == len(xs) and len(xs) > 1 and max(pos) / min(pos) >= 3
        title = unit.attack_title if kind == "attack" and unit.attack_title else unit.title
        return Axis(key, title, xs, log, unit.harsher == "down")
    return None
