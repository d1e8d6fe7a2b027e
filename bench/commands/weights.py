"""`bench weights`: the official checkpoints (and the neural codecs' weights folders) into the user cache, from a folder
of the official files or downloaded (sha256-checked; a published zip without a digest: trust on first use)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from bench.terminal import print_json, table

log = logging.getLogger("bench")


def add_parser(sub) -> None:
    s = sub.add_parser("weights", help="put official checkpoints into the user cache (for offline use later)",
                       description="Copies (sha256-checked) or downloads the named models' official checkpoints "
                       "into the user cache ($BENCH_CACHE_DIR or ~/.cache/deepfake-bench), where every later "
                       "command finds them without network or BENCH_WEIGHTS_DIR. Default: every model with a "
                       "published checkpoint.")
    s.add_argument("models", nargs="*", metavar="MODEL", help="card names (see `bench models`), or the neural "
                   "codecs encodec, dac (their weights folders)")
    s.add_argument("--from", dest="source", metavar="DIR",
                   help="a folder of the official files (e.g. aasist/AASIST.pth) instead of downloading")
    s.add_argument("--accept-new", action="store_true",
                   help="for a checkpoint with no published digest (rawnet2's zip): download it again and trust a "
                   "file other than the one whose sha256 was recorded at the first download")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_weights)


def _weights_source_file(card: Any, source: str) -> Any:
    """The file `bench weights --from DIR` takes for a card: its zip for an archive card, else DIR/<filename>."""
    from pathlib import Path

    from foundation.tofu import is_archive_card

    if is_archive_card(card):
        zip_name = Path(card.url).name
        inner = Path(source) / Path(card.filename).parent / zip_name
        return inner if inner.is_file() else Path(source) / zip_name
    return Path(source) / card.filename


def _weights_page(card: Any) -> str:
    page = card.extra.get("weights_page")
    return f" (the authors publish it at {page})" if page else ""


def cmd_weights(a: argparse.Namespace) -> int:
    from foundation.weights import WeightsError, install, install_folder
    from models import CARDS
    from perturbations.codecs._neural import CODEC_WEIGHTS

    named = bool(a.models)
    names = a.models or [name for name, card in CARDS.items() if card.filename]
    rows, failed = [], 0
    for name in names:
        try:
            if name in CODEC_WEIGHTS:   # a neural codec's folder (bench weights encodec dac)
                folder_card = CODEC_WEIGHTS[name]
                path, how = install_folder(folder_card, a.source)
                rows.append({"model": name, "status": how, "path": str(path), "sha256": ""})
                continue
            card = CARDS.get(name)
            wanted = _weights_source_file(card, a.source) if a.source and card.filename else None
            if wanted is not None and not wanted.is_file():
                # a folder of some official files: what it lacks is skipped (said), not a failure
                msg = f"{wanted} does not exist" + _weights_page(card)
                sys.stderr.write(f"{name}: skipped, {msg}\n")
                failed += named
                rows.append({"model": name, "status": "skipped", "path": "", "sha256": card.sha256 or "",
                             "error": msg})
                continue
            path, how = install(card, a.source, accept_new=a.accept_new)
            rows.append({"model": name, "status": how, "path": str(path), "sha256": card.sha256 or ""})
        except (KeyError, ValueError, WeightsError) as e:
            failed += 1
            log.error("%s: %s", name, e)
            rows.append({"model": name, "status": "failed", "path": "", "sha256": "", "error": str(e)})
    if a.json:
        print_json(rows)
    else:
        table(rows, ["model", "status", "path"], "Checkpoints in the user cache")
    return 1 if failed else 0
