"""Deployed operating points: a threshold chosen on the clean condition, and the error rates it gives elsewhere.

Rule: a score ``>= threshold`` is accepted as bona fide (higher = more bona fide). FAR is the share of spoofs
accepted (``spoof >= t``), FRR the share of bona fide rejected (``bona < t``). (The official DET curve of
:mod:`bench.metrics` rejects ``score <= t``; the two differ only for a score exactly at the threshold.)

:func:`threshold_at` picks ``t`` among the observed scores, so that a score at ``t`` (a tie) is accepted:

* ``far=a``: the lowest ``t`` with ``FAR(t) <= a``, i.e. the lowest FRR that keeps FAR at or below ``a``.
  Spoofs tied at one score are accepted or rejected together, so the FAR reached may be below ``a``.
  ``t`` is the lowest observed score (either class) above the highest rejected spoof.
* ``frr=r``: the highest ``t`` with ``FRR(t) <= r`` (the lowest FAR under that constraint): the lowest
  accepted bona fide score.
* ``eer=True``: the ``t`` minimising ``|FRR - FAR|`` (the lowest such ``t`` on a tie), as the official
  EER does over its cuts; without tied scores it accepts exactly the trials that :func:`bench.metrics.eer`'s
  threshold accepts.

``a * n`` is taken as ``floor(a * n + 1e-9)`` errors, so ``far=0.01`` over 100 spoofs allows exactly one.
When nothing may be accepted, ``t`` is the next float above the highest score.

:func:`rates_at` gives FAR and FRR at a fixed threshold with percentile bootstrap intervals: the spoofs and
the bona fide utterances are resampled separately, with replacement, by a numpy ``Generator``; the number of
errors in a resample of n utterances with k errors is drawn as Binomial(n, k/n), which is that resampling's
exact distribution, at O(1) per resample. The threshold is not re-estimated (it is the deployed one).

:class:`OperatingPoint` is the user's choice of that threshold (``bench run --operating-point``): ``far=1%``,
``frr=0.05``, ``eer``, ``threshold=T`` (a fixed score) or ``bayes`` (the Bayes decision of a calibration, given
as a score threshold by the caller).
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

BONAFIDE, SPOOF = "bonafide", "spoof"


def _scores(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: no scores")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: {int(np.sum(~np.isfinite(a)))} of {a.size} scores are NaN or infinite")
    return a


def _allowed(rate: float, n: int, name: str) -> int:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {rate}")
    return int(np.floor(rate * n + 1e-9))


def far_frr(bona, spoof, threshold: float) -> tuple[float, float]:
    """``(FAR, FRR)`` at ``threshold``: ``mean(spoof >= t)``, ``mean(bona < t)``."""
    b, s = _scores(bona, "bona"), _scores(spoof, "spoof")
    return float(np.mean(s >= threshold)), float(np.mean(b < threshold))


def threshold_at(bona, spoof, far: float | None = None, frr: float | None = None, eer: bool = False) -> float:
    """The clean threshold for a target FAR, a target FRR, or the EER (exactly one of them; see the module)."""
    b, s = _scores(bona, "bona"), _scores(spoof, "spoof")
    if (far is not None) + (frr is not None) + bool(eer) != 1:
        raise ValueError("give exactly one of far=, frr= or eer=True")
    allsc = np.unique(np.concatenate([b, s]))
    above_all = float(np.nextafter(allsc[-1], np.inf))
    if far is not None:
        m = _allowed(far, s.size, "far")
        sd = np.sort(s)[::-1]                                   # descending
        if m >= s.size:
            return float(allsc[0])                              # accept everything
        rejected = sd[m]                                        # the (m+1)-th highest spoof must be rejected
        higher = allsc[allsc > rejected]
        return float(higher[0]) if higher.size else above_all
    if frr is not None:
        m = _allowed(frr, b.size, "frr")
        return float(np.sort(b)[m]) if m < b.size else above_all
    cand = np.append(allsc, above_all)
    bs, ss = np.sort(b), np.sort(s)
    frr_c = np.searchsorted(bs, cand, side="left") / b.size
    far_c = (s.size - np.searchsorted(ss, cand, side="left")) / s.size   # the official arithmetic, bit for bit
    return float(cand[int(np.argmin(np.abs(frr_c - far_c)))])


OP_FORMS = "far=1%, far=0.01, frr=5%, eer, threshold=T or bayes"


def _rate(text: str, spec: str) -> float:
    t = text.strip()
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ValueError(f"operating point {spec!r}: {t!r} is not a number; expected one of {OP_FORMS}") from None
    if not 0.0 <= v <= 1.0 or not np.isfinite(v):
        raise ValueError(f"operating point {spec!r}: the rate must be a fraction in [0, 1] or a percentage in "
                         f"[0%, 100%] (far=0.01 or far=1%), got {t!r}")
    return v


@dataclass(frozen=True)
class OperatingPoint:
    """How the deployed threshold is chosen: ``kind`` far | frr | eer | threshold | bayes, ``value`` the target
    rate (a fraction) or the fixed threshold."""

    kind: str
    value: float | None = None

    @classmethod
    def parse(cls, spec: "str | OperatingPoint") -> "OperatingPoint":
        if isinstance(spec, OperatingPoint):
            return spec
        text = str(spec).strip().lower()
        m = re.fullmatch(r"(far|frr|threshold)\s*=\s*(.+)", text)
        if text in ("eer", "bayes"):
            return cls(text)
        if m is None:
            raise ValueError(f"operating point {spec!r}: expected one of {OP_FORMS}")
        if m.group(1) == "threshold":
            try:
                t = float(m.group(2))
            except ValueError:
                raise ValueError(f"operating point {spec!r}: threshold=T needs a number, e.g. threshold=-1.5") \
                    from None
            if not np.isfinite(t):
                raise ValueError(f"operating point {spec!r}: the threshold must be finite")
            return cls("threshold", t)
        return cls(m.group(1), _rate(m.group(2), str(spec)))

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}={self.value:g}"

    def threshold(self, bona, spoof, bayes: float | None = None) -> float:
        """The threshold on the clean scores (``bayes``: the caller's score threshold of the Bayes decision)."""
        if self.kind == "threshold":
            return float(self.value)
        if self.kind == "bayes":
            if bayes is None or not np.isfinite(bayes):
                raise ValueError("operating point bayes needs the Bayes threshold of a calibration "
                                 "(--calibration FILE for the model, or a fuse: model)")
            return float(bayes)
        if self.kind == "eer":
            return threshold_at(bona, spoof, eer=True)
        return threshold_at(bona, spoof, **{self.kind: self.value})


def _rate_ci(errors: int, n: int, n_boot: int, alpha: float, rng: np.random.Generator) -> tuple[float, float]:
    draws = rng.binomial(n, errors / n, size=n_boot) / n
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def rates_at(bona, spoof, threshold: float, n_boot: int = 1000, alpha: float = 0.05, rng=0) -> dict:
    """FAR and FRR at a fixed threshold with ``1 - alpha`` bootstrap intervals (``rng``: Generator or seed).

    Either class may be empty (its rate and interval are NaN). ``n_boot=0``: no intervals (NaN)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if int(n_boot) < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    gen = _generator(rng)
    out = {}
    for arr, name, key, err in ((spoof, "spoof", "far", lambda a: a >= threshold),
                                (bona, "bona", "frr", lambda a: a < threshold)):
        a = np.asarray(arr, dtype=np.float64).ravel()
        n = a.size
        k = int(np.sum(err(_scores(a, name)))) if n else 0
        rate = k / n if n else float("nan")
        lo = hi = float("nan")
        if n and n_boot:
            lo, hi = _rate_ci(k, n, int(n_boot), alpha, gen)
        out.update({key: rate, f"{key}_ci_low": lo, f"{key}_ci_high": hi})
    out.update(n_bonafide=int(np.size(bona)), n_spoof=int(np.size(spoof)), threshold=float(threshold))
    return out


def operating_points(scores: pd.DataFrame, far: float | None = None, frr: float | None = None,
                     eer: bool = False, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Per model, the threshold from its clean condition (family ``clean``, severity 0) and, per model x family
    x severity, FAR and FRR at it with bootstrap intervals. Each condition draws from its own generator,
    ``default_rng([seed, crc32(model), crc32(family), severity])``, so a row does not depend on the others.
    Non-finite scores are left out (as in results.csv)."""
    need = {"model", "family", "severity", "label", "score"}
    if missing := sorted(need - set(scores.columns)):
        raise ValueError(f"scores table lacks the column(s) {missing}")
    df = scores[np.isfinite(pd.to_numeric(scores["score"], errors="coerce").to_numpy(dtype=np.float64))]
    rows = []
    for model, sub in df.groupby("model", sort=False):
        clean = sub[(sub["family"] == "clean") & (sub["severity"].astype(int) == 0)]
        cb = clean.loc[clean["label"] == BONAFIDE, "score"].to_numpy(dtype=np.float64)
        cs = clean.loc[clean["label"] == SPOOF, "score"].to_numpy(dtype=np.float64)
        if not (cb.size and cs.size):
            raise ValueError(f"model {model!r}: the clean condition (family 'clean', severity 0) needs bona fide "
                             f"and spoof scores to set a threshold; it has {cb.size} and {cs.size}")
        thr = threshold_at(cb, cs, far=far, frr=frr, eer=eer)
        for (family, severity), cond in sub.groupby(["family", "severity"], sort=False):
            gen = np.random.default_rng([int(seed), zlib.crc32(str(model).encode()),
                                         zlib.crc32(str(family).encode()), int(severity)])
            lab = cond["label"].to_numpy()
            sc = cond["score"].to_numpy(dtype=np.float64)
            r = rates_at(sc[lab == BONAFIDE], sc[lab == SPOOF], thr, n_boot=n_boot, alpha=alpha, rng=gen)
            rows.append({"model": model, "family": family, "severity": int(severity), **r})
    cols = ["model", "family", "severity", "threshold", "n_bonafide", "n_spoof", "far", "far_ci_low",
            "far_ci_high", "frr", "frr_ci_low", "frr_ci_high"]
    return pd.DataFrame(rows, columns=cols)
