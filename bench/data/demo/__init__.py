"""The built-in demo set (``--data demo``): real and spoofed speech shipped inside the package.

96 clips (48 bona fide, 48 spoofed by six generators), 16 kHz mono FLAC, 2.5-5 s each; sources,
licences and balance measurements are in ``CARD.md`` beside this file, and
``scripts/build_demo.py`` rebuilds it. A smoke test, not a benchmark.

Files are found relative to this module (the installed package), never the working directory.
"""
from __future__ import annotations

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
MANIFEST = DEMO_DIR / "manifest.csv"
CARD = DEMO_DIR / "CARD.md"

__all__ = ["CARD", "DEMO_DIR", "MANIFEST", "load_demo"]


def load_demo(check_files: bool = True):
    """The demo set as a :class:`bench.data.manifest.Dataset` named ``demo``.

    Columns ``source``, ``licence`` and ``language`` of the manifest land in each utterance's
    ``attrs``. With ``check_files`` a missing audio file is listed in ``Dataset.problems``.
    """
    from bench.data.manifest import read_manifest

    if not MANIFEST.is_file():
        raise FileNotFoundError(
            f"{MANIFEST} is missing: the package was installed without its data files; reinstall "
            "deepfake-bench (package-data bench/data/demo/*) or rebuild with scripts/build_demo.py")
    return read_manifest(MANIFEST, check_files=check_files, name="demo")
