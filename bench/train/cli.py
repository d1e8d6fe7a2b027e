"""`bench train`: its options and handler (the loop is bench/train/trainer.py)."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Trains or fine-tunes a detector with the benchmark's own perturbations and attacks, selects the epoch with the
lowest dev EER, and leaves a folder that every other command loads as a model (--model DIR).

Starting weights: --checkpoint, else the card's published weights (aasist, aasist-l), else a random
initialisation (said in the log). The recipe (optimiser, learning rate and schedule, batch, epochs, loss, crop,
RawBoost) is the architecture's official one (`--recipe` to choose another); --lr, --batch-size, --epochs and
--rawboost override it, and train.json records the resolved recipe with the file each number was read from.

DIR receives: best.safetensors (lowest dev EER), last.safetensors, metrics.csv (epoch, train_loss, dev_eer, lr,
seconds, ...), train.json (provenance), training_curve.png/.svg, problems.csv (training files that could not be
used: skipped, never fatal) and state.pt (the resumable step checkpoint). Interrupted (even by kill -9), the same
command resumes and ends with the weights an uninterrupted training gives.
"""

EPILOG = """\
examples:
  bench train --model aasist-l --data manifest.csv --out runs/train-l --augment realworld --epochs 5
  bench train --model rawnet2 --data asvspoof2019-la:/data/LA --dev dev.csv --out runs/rawnet2 --rawboost 5
  bench train --model aasist --data demo --out runs/adv --adversarial pgd-linf@1 --limit 32 --epochs 1
  bench train --model raw-pc-darts --search --search-epochs 30 --data manifest.csv --out runs/darts
then:
  bench run --suite compression --model runs/train-l      (the trained detector)
  bench check RUN_TRAINED --baseline RUN_BASE --max-eer-increase 0.01
"""


def add_parser(sub) -> None:
    s = sub.add_parser("train", help="train or fine-tune a detector with augmentation and adversarial training",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTION,
                       epilog=EPILOG)
    s.add_argument("--model", required=True, help="card name (aasist, aasist-l, rawnet2, ssl-aasist, ...), "
                   "package.module:Class, hf:FOLDER, or a training folder to train further")
    s.add_argument("--checkpoint", help="starting weights (default: the card's published ones, if any)")
    s.add_argument("--from-scratch", action="store_true", help="start from a random initialisation drawn from "
                   "--seed, even where published weights exist")
    s.add_argument("--data", required=True, help="training data: any data spec (demo, a manifest, a corpus)")
    s.add_argument("--dev", help="dev data for model selection (default: a seeded split of --data, by speaker "
                   "when it names speakers, recorded in train.json)")
    s.add_argument("--dev-share", type=float, default=0.2, help="share of --data held out without --dev (0.2)")
    s.add_argument("--out", required=True, help="the training folder (created; the same command resumes it)")
    s.add_argument("--limit", type=int, help="use a stratified, seeded subset of N training clips")
    s.add_argument("--epochs", type=int, help="epochs (default: the recipe's)")
    s.add_argument("--seed", type=int, default=0, help="data order, augmentation, crops, dropout (default 0)")
    s.add_argument("--recipe", help="aasist, aasist-l, ssl-aasist, rawnet2, hf, darts (default: the model's)")
    s.add_argument("--batch-size", type=int, help="examples per step (default: the recipe's)")
    s.add_argument("--lr", type=float, help="learning rate (default: the recipe's)")
    s.add_argument("--augment", metavar="SUITE", help="augment each example with one condition of this suite "
                   "(e.g. realworld, compression, noise, reverb): the same calibrated ladders as bench run")
    s.add_argument("--augment-prob", type=float, default=0.8, help="probability an example is augmented (0.8)")
    s.add_argument("--rawboost", type=int, metavar="ALGO", help="RawBoost algorithm 1..8 (0: off; default: the "
                   "recipe's, 5 for ssl-aasist)")
    s.add_argument("--adversarial", metavar="ATTACK[@SEVERITY]", help="adversarial training with a white-box "
                   "attack of `bench run`'s ladders (fgsm, pgd-linf, pgd-l2, apgd, cw; severity 3 by default)")
    s.add_argument("--adversarial-prob", type=float, default=0.5, help="share of batches replaced by the attack")
    s.add_argument("--patience", type=int, help="stop after N epochs without a better dev EER (default: never)")
    s.add_argument("--checkpoint-every", type=int, default=50, help="optimiser steps between step checkpoints")
    s.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default)")
    s.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast (default fp32)")
    s.add_argument("--workers", type=int, default=0, help="processes preparing the next batches (default 0)")
    g = s.add_argument_group("architecture search (the DARTS family: raw-pc-darts, light-darts)")
    g.add_argument("--search", action="store_true", help="PC-DARTS search first (Raw PC-DARTS' first-order "
                   "search), writing DIR/genotype.json and figures of the cells, then train the derived network")
    g.add_argument("--search-only", action="store_true", help="stop after the search")
    g.add_argument("--search-epochs", type=int, help="search epochs (default: the release's 30, 10 of warm-up)")
    g.add_argument("--layers", type=int, help="cells of the searched and derived networks (default: the card's)")
    g.add_argument("--channels", type=int, help="initial channels (default: the card's)")
    s.add_argument("--json", action="store_true", help="print metrics.csv as JSON at the end")
    s.set_defaults(func=cmd_train)


def cmd_train(a: argparse.Namespace) -> int:
    from bench.terminal import print_json, table
    from bench.train.config import TrainConfig
    from bench.train.trainer import train

    cfg = TrainConfig(model=a.model, data=a.data, out=a.out, checkpoint=a.checkpoint, dev=a.dev,
                      dev_share=a.dev_share, limit=a.limit, epochs=a.epochs, seed=a.seed, recipe=a.recipe,
                      batch_size=a.batch_size, lr=a.lr, augment=a.augment, augment_prob=a.augment_prob,
                      rawboost=a.rawboost, adversarial=a.adversarial, adversarial_prob=a.adversarial_prob,
                      from_scratch=a.from_scratch, patience=a.patience, checkpoint_every=a.checkpoint_every,
                      device=a.device, precision=a.precision, workers=a.workers, search=a.search,
                      search_only=a.search_only, search_epochs=a.search_epochs, layers=a.layers, channels=a.channels)
    df = train(cfg, progress=not a.json)
    if a.json or a.search_only:
        print_json(df.to_dict(orient="records"))
        return 0
    cols = ["epoch", "train_loss", "dev_eer", "lr", "seconds", "best"]
    rows = [{**r, "dev_eer": f"{100 * r['dev_eer']:.2f}%" if r["dev_eer"] == r["dev_eer"] else "–",
             "train_loss": f"{r['train_loss']:.4f}", "lr": f"{r['lr']:.3g}", "best": "*" if r["best"] else ""}
            for r in df[cols].to_dict(orient="records")]
    table(rows, cols, title=f"bench train: {a.model} on {a.data}")
    print(f"\nweights: {a.out}/best.safetensors (dev-selected); load with --model {a.out}")
    return 0
