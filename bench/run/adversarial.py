"""Attack conditions inside a run: crafting adversarial audio, and the tables that summarise attacks.

Crafting (:func:`attack_batch`): each utterance is brought to the crafting detector's input form (the
official fixed-length crop) and attacked towards the other class. Every utterance has its own
generator from (seed, utterance id, condition), so its adversarial audio does not depend on which
other utterances share its batch.

* White box (no ``source``): the scorer crafts against each scored model in turn.
* Transfer (``source: MODEL``): the scorer crafts once per unit on the source model and every model
  of the run scores the same audio (family ``ATTACK<-MODEL``).
* Through a perturbation (``through: {family, severity}``): the attack sees
  ``detector(perturb(x))`` (see attacks/_through.py; the EOT draws come from
  ``rng_for(seed, utt, key + "#eot")``), and the audio that gets scored is the adversarial crop passed
  through the perturbation once more with the condition's own ``rng_for(seed, utt, key)``: what a
  detector hears after the codec or room (family ``ATTACK|FAMILY@SEVERITY``).

Black-box attacks (attacks/_blackbox.py: ``square-linf``, ``hsja``) report the queries each utterance
cost; the scorer stores them (``queries`` in scores.csv, the median in results.csv). A universal attack
(``universal-filter``) is learned once per source model and condition on the training half of the
utterances (bench/suites/universal.py, :func:`learn_universal`) and applied unchanged to the held-out half,
the only utterances scored under it; its rows record the queries the learning cost.

The achieved SNR of each perturbation (``attacks._budget.achieved_snr_db``, adversarial crop against
the clean crop, before any ``through`` pass) is logged per batch (median); it is not stored.

Tables: :func:`transfer_matrix` (EER by source x target from results.csv rows) and
:func:`attack_summary` (success rates against each model's clean EER threshold).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from foundation.seeding import rng_for, torch_generator_for

log = logging.getLogger(__name__)

def _contexts(utt_ids: Sequence[str]) -> list:
    from bench.run.prepare import worker_context

    ctx = worker_context()
    return [ctx.perturbation_context(u) for u in utt_ids]


def _starts(utt_ids: Sequence[str], labels: Sequence[str], seed: int, key: str, nb_samp: int) -> list:
    """Starting points of decision-based attacks: for each spoof, another bona fide clip of the data set (the
    run's pool, chosen by ``rng_for(seed, utt, key + "#start")``) in the detector's input form; None for bona
    fide utterances (their attack starts from noise) or when the set has no other bona fide clip."""
    from bench.scoring.windows import fix_length
    from bench.run.prepare import worker_context

    ctx, out = worker_context(), []
    for u, lab in zip(utt_ids, labels):
        clip = None
        if lab == "spoof" and any(b != u for b, _ in ctx.bonafide):
            wav = ctx.bonafide_pool(rng_for(seed, u, key + "#start"), 1, exclude=u)[0]
            clip = torch.tensor(fix_length(np.asarray(wav, np.float32), nb_samp))   # a copy: the cache is read-only
        out.append(clip)
    return out


def craft(detector, cond, wavs: Sequence[np.ndarray], labels: Sequence[str], utt_ids: Sequence[str],
          seed: int, batch_size: int, device: str, universal: tuple[np.ndarray, int] | None = None
          ) -> tuple[list[np.ndarray], np.ndarray, list[int | None]]:
    """The audio to score for an attack condition, each utterance's achieved SNR (dB), and the queries a
    black-box attack spent on it (None for the others). ``universal``: a learned ``(filter, queries)`` that
    a universal attack applies unchanged (:func:`learn_universal`)."""
    from attacks import _budget
    from attacks._through import Through
    from bench.scoring.windows import fix_length

    attack = cond.build()
    pert = cond.build_through()
    eot = int((cond.through or {}).get("eot", 1))
    key = cond.key()
    gen_device = device if str(device).startswith("cuda") else "cpu"
    sr = int(getattr(detector, "sample_rate", 16000))
    out: list[np.ndarray] = []
    snrs: list[float] = []
    queries: list[int | None] = []
    for i in range(0, len(wavs), max(1, batch_size)):
        ids = list(utt_ids[i:i + batch_size])
        x = torch.from_numpy(np.stack([fix_length(np.asarray(w, np.float32), detector.nb_samp)
                                       for w in wavs[i:i + batch_size]])).to(device)
        y = torch.tensor([1 if lab == "bonafide" else 0 for lab in labels[i:i + batch_size]], device=device)
        gens = [torch_generator_for(seed, u, key, gen_device) for u in ids]
        target = detector
        if pert is not None:
            target = Through(detector, pert, [rng_for(seed, u, key + "#eot") for u in ids], eot=eot,
                             contexts=_contexts(ids))
        if universal is not None and getattr(attack, "universal", False):
            adv = attack.apply(universal[0], x, y)
            queries.extend([int(universal[1])] * len(ids))
        elif hasattr(attack, "craft"):   # black box: the adversarial audio and the queries it cost
            starts = _starts(ids, labels[i:i + batch_size], seed, key, detector.nb_samp) \
                if getattr(attack, "uses_starts", False) else None
            adv, q = attack.craft(target, x, y, gens if len(gens) > 1 else gens[0], starts=starts)
            queries.extend(int(v) for v in q.tolist())
        else:
            adv = attack(target, x, y, gens if len(gens) > 1 else gens[0])
            queries.extend([None] * len(ids))
        snrs.extend(_budget.achieved_snr_db(x, adv).cpu().numpy().tolist())
        rows = [a.detach().float().cpu().numpy() for a in adv]
        if pert is not None:  # what the detector hears: the adversarial audio after the perturbation
            rows = [pert(r, sr, rng_for(seed, u, key), c) for r, u, c in zip(rows, ids, _contexts(ids))]
            bad = [u for u, r in zip(ids, rows) if not np.all(np.isfinite(r))]
            if bad:
                raise ValueError(f"through {pert.family}: non-finite samples for {', '.join(bad)}")
        out.extend(rows)
    snr = np.asarray(snrs, dtype=np.float64)
    if len(snr):
        finite = snr[np.isfinite(snr)]
        log.info("%s@%d: %d utterances, median achieved SNR %.2f dB", cond.family, cond.severity, len(snr),
                 float(np.median(finite)) if len(finite) else float("nan"))
    return out, snr, queries


def attack_batch(detector, cond, wavs: Sequence[np.ndarray], labels: Sequence[str], utt_ids: Sequence[str],
                 seed: int, batch_size: int, device: str, universal: tuple[np.ndarray, int] | None = None,
                 with_queries: bool = False):
    """The audio to score for an attack condition (see :func:`craft`, which also returns the SNRs);
    with ``with_queries``, ``(audio, queries per utterance)``."""
    out, _snr, queries = craft(detector, cond, wavs, labels, utt_ids, seed, batch_size, device, universal)
    return (out, queries) if with_queries else out


# ------------------------------------------------------------------------------------ universal
# which conditions are universal and how the utterances split: bench/suites/universal.py (no torch there)
def learn_universal(detector, cond, utt_ids: Sequence[str], wavs: Sequence[np.ndarray], labels: Sequence[str],
                    seed: int, device: str) -> tuple[np.ndarray, int]:
    """Learns a universal attack's filter on the training clips against ``detector``: ``(filter, queries)``.
    Its randomness comes from (seed, "#universal", the condition without its source), so every process learns
    the same filter, and the same recipe draws the same stream against any model (a local model and the
    same model behind ``bench serve`` learn the same filter)."""
    import json

    from bench.scoring.windows import fix_length

    attack = cond.build()
    if not utt_ids:
        log.warning("%s@%d: no training clips; the filter stays the identity", cond.family, cond.severity)
        return attack.identity().numpy(), 0
    x = torch.from_numpy(np.stack([fix_length(np.asarray(w, np.float32), detector.nb_samp) for w in wavs])).to(device)
    y = torch.tensor([1 if lab == "bonafide" else 0 for lab in labels], device=device)
    recipe = json.dumps({k: v for k, v in cond.spec.items() if k != "source"}, sort_keys=True, default=str)
    gen = torch_generator_for(seed, "#universal", recipe, device if str(device).startswith("cuda") else "cpu")
    h, q = attack.learn(detector, x, y, gen)
    log.info("%s@%d: learned on %d training clips with %d queries each", cond.family, cond.severity,
             min(int((y == 0).sum()), getattr(attack, "train_clips", len(y))), q)
    return h, q


# ------------------------------------------------------------------------------------------ tables
def _attack_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of attack conditions, with the condition columns (``adv_attack``, ``source``, ``through``)."""
    missing = [c for c in ("kind", "adv_attack", "source", "through") if c not in results.columns]
    if missing:
        raise ValueError(f"these results lack the condition column(s) {', '.join(missing)} (written by bench "
                         "before they existed); give the same `bench run` command again to rewrite the tables "
                         "from the store (nothing is rescored), or read them with reports.load.load_run")
    rows = results[results["kind"] == "attack"].copy()
    for c in ("adv_attack", "source", "through"):
        rows[c] = rows[c].fillna("").astype(str)
    return rows


def transfer_matrix(results: pd.DataFrame, attack: str | None = None, severity: int | None = None,
                    through: str | None = None, value: str = "eer") -> pd.DataFrame:
    """Rows: the source model an attack was crafted on; columns: the target model that scored it;
    cells: ``value`` (EER by default) from results.csv rows of transfer conditions (``ATTACK<-SOURCE``).

    ``attack``/``severity``/``through`` (``"mp3@3"``; ``""`` for none) pick one attack setting; they may
    be left out when the results hold only one. A white-box condition without ``source`` is not a row (its
    diagonal is a transfer condition whose source is the scoring model).
    """
    rows = _attack_rows(results)
    rows = rows[rows["source"] != ""]
    if attack is not None:
        rows = rows[rows["adv_attack"] == attack]
    if severity is not None:
        rows = rows[rows["severity"].astype(int) == int(severity)]
    if through is not None:
        rows = rows[rows["through"] == through]
    settings = sorted({(a, int(s), t) for a, s, t in zip(rows["adv_attack"], rows["severity"], rows["through"])})
    if not settings:
        raise ValueError("no transfer conditions (ATTACK<-SOURCE) in these results for the chosen attack/severity; "
                         "add e.g. {attack: pgd-linf, severities: [5], source: aasist-l} to the suite")
    if len(settings) > 1:
        opts = ", ".join(f"attack={a} severity={s}" + (f" through={t}" if t else "") for a, s, t in settings)
        raise ValueError(f"the results hold several transfer settings ({opts}); choose one with attack=, "
                         "severity= (and through=)")
    models = list(dict.fromkeys(results["model"]))
    m = rows.pivot_table(index="source", columns="model", values=value, aggfunc="first")
    m = m.reindex(columns=[c for c in models if c in m.columns])
    m.index.name, m.columns.name = "source", "target"
    return m


def attack_summary(scores: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Attack success rates per model x attack family x severity.

    Success is judged against the model's clean EER threshold (``eer_threshold`` of its ``clean``
    row in results; accepted as bona fide iff ``score >= threshold``, as in :func:`bench.metrics.eer`):
    a spoof utterance succeeds when its attacked score is ``>= threshold`` (evasion, spoof -> bona fide);
    a bona fide one when it is ``< threshold`` (bona fide -> spoof). Rates are over every attacked
    utterance of that class (NaN when there is none). Columns: model, family, severity, attack, source,
    through, threshold, n_spoof, n_bonafide, success_spoof_to_bonafide, success_bonafide_to_spoof,
    success (both classes together).
    """
    cols = ["model", "family", "severity", "attack", "source", "through", "threshold", "n_spoof", "n_bonafide",
            "success_spoof_to_bonafide", "success_bonafide_to_spoof", "success"]
    clean = results[results["family"] == "clean"].set_index("model")["eer_threshold"]
    attacked = _attack_rows(results)[["model", "family", "severity", "adv_attack", "source", "through"]]
    out = []
    for model, family, severity, adv, source, through in attacked.drop_duplicates().itertuples(index=False):
        if model not in clean.index:
            raise ValueError(f"attack_summary: no clean row for model {model!r} in results; its clean EER "
                             "threshold is what success is measured against")
        thr = float(clean.loc[model])
        g = scores[(scores["model"] == model) & (scores["family"] == family)
                   & (scores["severity"].astype(int) == int(severity))]
        s = g.loc[g["label"] == "spoof", "score"].to_numpy(float)
        b = g.loc[g["label"] == "bonafide", "score"].to_numpy(float)
        s_ok, b_ok = int(np.sum(s >= thr)), int(np.sum(b < thr))
        n = len(s) + len(b)
        out.append({"model": model, "family": family, "severity": int(severity), "attack": adv,
                    "source": source or None, "through": through or None,
                    "threshold": thr, "n_spoof": len(s), "n_bonafide": len(b),
                    "success_spoof_to_bonafide": s_ok / len(s) if len(s) else float("nan"),
                    "success_bonafide_to_spoof": b_ok / len(b) if len(b) else float("nan"),
                    "success": (s_ok + b_ok) / n if n else float("nan")})
    return pd.DataFrame(out, columns=cols)
