"""Resource folders for the families that read files, written by the tests that need them: a noise recording
(background-noise) and impulse responses whose T20 spans 0.1..2.5 s (exponential decays after a direct
spike), so that every level's band of the rir family holds one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
T60S = (0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5)


def write_resource_folders(root: Path, seed: int = 0) -> dict[str, str]:
    """Writes ``noise/`` and ``rir/`` under ``root``; returns the resources mapping a Context takes."""
    rng = np.random.default_rng(seed)
    (root / "noise").mkdir(parents=True)
    sf.write(root / "noise" / "hum.wav", (0.1 * rng.standard_normal(3 * SR)).astype(np.float32), SR)
    (root / "rir").mkdir()
    for t60 in T60S:
        t = np.arange(int(1.2 * t60 * SR)) / SR
        tail = rng.standard_normal(t.size) * 10 ** (-3 * t / t60)
        h = np.concatenate([np.zeros(64), [1.0], tail / np.sqrt(np.sum(tail ** 2))])
        sf.write(root / "rir" / f"t{t60}.wav", (0.9 * h / np.max(np.abs(h))).astype(np.float32), SR,
                 subtype="FLOAT")
    return {"noise_dir": str(root / "noise"), "rir_dir": str(root / "rir")}
