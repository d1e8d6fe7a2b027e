"""Attack conditions inside a run: white-box attacks against each detector, then scoring.

Each utterance is brought to the detector's input form (the official fixed-length crop) and
attacked towards the other class; the adversarial crop is what gets scored. Every utterance has
its own generator from (seed, utterance id, condition), so its adversarial audio does not depend on
which other utterances share its batch.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from bench.seeding import torch_generator_for

log = logging.getLogger(__name__)


def attack_batch(detector, cond, wavs: Sequence[np.ndarray], labels: Sequence[str], utt_ids: Sequence[str],
                 seed: int, batch_size: int, device: str) -> list[np.ndarray]:
    from bench.policy import fix_length

    attack = cond.build()
    key = cond.key()
    gen_device = device if str(device).startswith("cuda") else "cpu"
    out: list[np.ndarray] = []
    for i in range(0, len(wavs), max(1, batch_size)):
        x = torch.from_numpy(np.stack([fix_length(np.asarray(w, np.float32), detector.nb_samp)
                                       for w in wavs[i:i + batch_size]])).to(device)
        y = torch.tensor([1 if lab == "bonafide" else 0 for lab in labels[i:i + batch_size]], device=device)
        gens = [torch_generator_for(seed, u, key, gen_device) for u in utt_ids[i:i + batch_size]]
        adv = attack(detector, x, y, gens if len(gens) > 1 else gens[0])
        out.extend(a.detach().float().cpu().numpy() for a in adv)
    return out
