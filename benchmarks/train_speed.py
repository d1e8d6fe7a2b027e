"""Training throughput of AASIST / AASIST-L on this machine: bench train's step against the official clovaai step,
side by side in one process, and the share of time the trainer waits for augmented audio.

    python benchmarks/train_speed.py --official /tmp/clovaai [--model aasist-l] [--batch 24] [--rounds 3]
        [--augment realworld --workers 1]

Every round times, back to back: one training step of the official release (``models/AASIST.py`` of a checkout,
its config; Adam, weighted cross-entropy [0.1, 0.9], ``main.py``'s ``train_epoch`` body) and one step of
``bench train``'s :class:`bench.train.step.Stepper` with the same recipe (forward + backward + Adam step, batch
``--batch`` of 64600-sample clips). Both start from the official weights; ratios are taken round by round, so a
change in the machine's load moves both sides. Make the checkout without committing any of it:
``mkdir /tmp/clovaai && git --git-dir=MIRROR archive HEAD models config | tar -x -C /tmp/clovaai``.

With ``--augment SUITE``, it also runs ``--steps`` real training steps through the trainer's own loader (demo set,
``--workers`` processes preparing the next batches) and reports the share of the wall time spent waiting for a
batch. Prints a table; ``--json`` writes the figures.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BENCH_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))
sys.path.insert(0, str(ROOT))


def _official(folder: Path, model: str):
    spec = importlib.util.spec_from_file_location("clovaai_aasist", folder / "models" / "AASIST.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    conf = json.loads((folder / "config" / ("AASIST-L.conf" if model == "aasist-l" else "AASIST.conf")).read_text())
    net = mod.Model(conf["model_config"])
    from foundation.weights import read_state_dict, resolve
    from models import CARDS

    net.load_state_dict(read_state_dict(resolve(CARDS.get(model))))
    return net


def _official_step(net, opt, x, y, weight):
    net.train()
    _, out = net(x, Freq_aug=False)
    loss = torch.nn.functional.cross_entropy(out, y, weight=weight)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, help="a checkout of clovaai/aasist (models/, config/)")
    ap.add_argument("--model", default="aasist-l", choices=["aasist", "aasist-l"])
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--augment", help="also measure the wait for augmented audio with this suite")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.manual_seed(0)
    from bench.train.dist import Dist
    from bench.train.recipes import get_recipe, optimizer_for
    from bench.train.step import Stepper
    from models import load_detector

    recipe = get_recipe(a.model).replace(batch_size=a.batch)
    det = load_detector(a.model, fast_inference=False).detector
    opt = optimizer_for(recipe, det.parameters())
    stepper = Stepper(det, recipe, opt, "cpu", "fp32", Dist())
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.3, 0.3, (a.batch, 64600)).astype(np.float32))
    y = torch.tensor([i % 2 for i in range(a.batch)])
    rows = []
    official = _official(a.official, a.model) if a.official else None
    if official is not None:
        o_opt = torch.optim.Adam(official.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4)
        weight = torch.tensor([0.1, 0.9])
    for r in range(a.rounds):
        row = {"round": r + 1}
        if official is not None:
            t = time.perf_counter()
            _official_step(official, o_opt, x, y, weight)
            row["official_s"] = time.perf_counter() - t
        det.train()
        t = time.perf_counter()
        stepper.step(x, y, first=True, last=True)
        row["bench_s"] = time.perf_counter() - t
        if official is not None:
            row["ratio"] = row["official_s"] / row["bench_s"]
        rows.append(row)
        print(" ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    out = {"model": a.model, "batch": a.batch, "threads": torch.get_num_threads(), "rounds": rows,
           "bench_examples_per_s": a.batch / float(np.median([r["bench_s"] for r in rows]))}
    if official is not None:
        out["official_examples_per_s"] = a.batch / float(np.median([r["official_s"] for r in rows]))
        out["median_ratio"] = float(np.median([r["ratio"] for r in rows]))
    if a.augment:
        out["wait"] = _wait_share(a)
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


def _wait_share(a) -> dict:
    """Trains ``--steps`` steps of the real loop on the demo set and times how long each batch took to arrive."""
    import tempfile

    from bench.train import trainer
    from bench.train.config import TrainConfig

    waits, steps = [], []
    orig = trainer._loader

    def timed(ds, start, workers):
        it = iter(orig(ds, start, workers))
        while True:
            t = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            waits.append(time.perf_counter() - t)
            t = time.perf_counter()
            yield item
            steps.append(time.perf_counter() - t)

    trainer._loader = timed
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(model=a.model, data="demo", out=d, limit=a.batch * a.steps + 24, epochs=1,
                          batch_size=a.batch, augment=a.augment, workers=a.workers, device="cpu")
        t = time.perf_counter()
        trainer.train(cfg, progress=False)
        wall = time.perf_counter() - t
    trainer._loader = orig
    first = waits[0] if waits else 0.0   # the first batch has nothing to overlap with
    return {"suite": a.augment, "workers": a.workers, "batches": len(waits), "first_batch_s": first,
            "waiting_s": sum(waits[1:]), "training_s": sum(steps),
            "wait_share_after_first": sum(waits[1:]) / max(sum(waits[1:]) + sum(steps), 1e-9), "wall_s": wall}


if __name__ == "__main__":
    main()
