"""Writes two manifests of the built-in demo set, a seeded half for training and the other half for evaluation,
split by utterance within each class (sha256 of seed and utterance id), with absolute audio paths:

    python scripts/demo_halves.py OUT_DIR [--seed 0]   ->  OUT_DIR/train.csv, OUT_DIR/eval.csv

The README's "Make a checkpoint robust, then gate it" smoke test uses them."""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pandas as pd

from bench.data.demo import MANIFEST


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    df = pd.read_csv(MANIFEST)
    df["path"] = [str((MANIFEST.parent / p).resolve()) for p in df["path"]]
    key = df["utt_id"].map(lambda u: hashlib.sha256(f"{a.seed}|{u}".encode()).hexdigest())
    df = df.assign(_key=key).sort_values(["label", "_key"])
    first = df.groupby("label").cumcount() < df.groupby("label")["utt_id"].transform("size") // 2
    a.out.mkdir(parents=True, exist_ok=True)
    df[first].drop(columns="_key").to_csv(a.out / "train.csv", index=False)
    df[~first].drop(columns="_key").to_csv(a.out / "eval.csv", index=False)
    print(f"{a.out / 'train.csv'}: {int(first.sum())} clips; {a.out / 'eval.csv'}: {int((~first).sum())} clips")


if __name__ == "__main__":
    main()
