"""What the weights code and the trust-on-first-use archive code (:mod:`foundation.tofu`) share: the error they raise,
the user cache folder, whether downloads are allowed, and a file's sha256. Both import it; it imports neither."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


class WeightsError(RuntimeError):
    """A checkpoint that cannot be found, fetched, verified or read; the message says what to do."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "deepfake-bench"))


def offline() -> bool:
    """True when downloads are forbidden (``BENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``; the tests set it)."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("BENCH_OFFLINE", "HF_HUB_OFFLINE"))
