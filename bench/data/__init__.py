"""Data: utterance lists from manifests and corpora (see :mod:`bench.data.loaders` for the specs).

The demo set lives in ``bench.data.demo`` and is imported only when the ``demo`` spec is used.
"""
from bench.data.loaders import CORPORA, load_dataset
from bench.data.manifest import (BONAFIDE, SPOOF, Dataset, DataSpecError, ManifestError, Utterance,
                                 normalize_label, read_manifest, select_stratified)

__all__ = ["BONAFIDE", "SPOOF", "CORPORA", "Dataset", "DataSpecError", "ManifestError", "Utterance",
           "load_dataset", "normalize_label", "read_manifest", "select_stratified"]
