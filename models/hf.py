"""Hugging Face audio-classification checkpoints as detectors: ``--model hf:ID_OR_FOLDER[@REVISION]``.

Any ``AutoModelForAudioClassification`` checkpoint on raw waveforms (wav2vec 2.0, HuBERT, WavLM,
data2vec-audio, ...; a ``Wav2Vec2FeatureExtractor``-style feature extractor), from a
``save_pretrained`` folder or from the hub through the user cache (``models/_hf_hub.py``), and the
AntiDeepfake checkpoints in their fairseq layout (``models/hf_antideepfake.py``).

Score: ``logit(bona fide class) - logit(spoof class)`` (log-odds; higher = more bona fide). The
classes come from ``config.id2label``, matched case-insensitively (``_`` read as a space): bona
fide = bonafide, bona-fide, bona fide, real, genuine, human, authentic; spoof = spoof, fake,
synthetic, deepfake, generated, ai. Anything else (unmatched labels, both classes on one side, more
than two classes) is refused unless the classes are named: ``label_map={"bonafide": LABEL,
"spoof": LABEL}`` (CLI ``--label-map bonafide=LABEL,spoof=LABEL``; a label or a class index).

Pre-processing is the checkpoint's feature extractor, in torch so that attacks get gradients
through it: the input is taken at the extractor's ``sampling_rate`` (numpy input at another rate
goes through ``foundation.audio.resample``, see :meth:`HFDetector.prepare`) and, with
``do_normalize``, each row is normalised ``(x - mean) / sqrt(var + 1e-7)`` (biased variance; 1e-5
for AntiDeepfake, their ``F.layer_norm``). No padding and no attention mask: every row is one
whole input.

Input policy (``bench.scoring.windows``): ``whole`` by default, i.e. the clip as it is up to
``max_samples`` (``MAX_SECONDS`` = 30 s, or ``max_seconds`` in the config), longer clips by windows
of that length, scores averaged; ``official`` (the first ``nb_samp`` samples, short clips tiled) and
``full`` on request. ``nb_samp`` is the extractor's ``max_length`` when it declares one, else 64600
samples at 16 kHz (4.04 s, the ASVspoof convention; attacks craft on this crop). Clips shorter than
``MIN_SAMPLES`` (the convolutional front end's receptive field) are tiled inside ``forward``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from models import _hf_hub as hub
from models.base import ARCHITECTURES, Card, Detector

log = logging.getLogger(__name__)

BONAFIDE_NAMES = ("bonafide", "bona-fide", "bona fide", "real", "genuine", "human", "authentic")
SPOOF_NAMES = ("spoof", "fake", "synthetic", "deepfake", "generated", "ai")
MAX_SECONDS = 30.0
MIN_SAMPLES = 400
HF_EPS = 1e-7


def _norm_label(s: Any) -> str:
    return " ".join(str(s).strip().lower().replace("_", " ").split())


def check_label_map(label_map: str | None, models: Sequence[str]) -> None:
    """--label-map is checked before any work: well formed, and some model is an hf: model."""
    if not label_map:
        return
    parse_label_map(label_map)
    if not any(m.startswith("hf:") for m in models):
        raise ValueError(f"--label-map names the classes of hf: models; none of {', '.join(models)} is one")


def parse_label_map(spec: "str | Mapping[str, Any] | None") -> dict[str, str] | None:
    """``"bonafide=REAL,spoof=FAKE"`` or a mapping -> ``{"bonafide": ..., "spoof": ...}`` (None: none given)."""
    if spec is None or spec == "" or spec == {}:
        return None
    if isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, eq, val = part.partition("=")
            if not eq or not val.strip():
                raise ValueError(f"--label-map item {part!r} is not NAME=LABEL; write bonafide=LABEL,spoof=LABEL")
            items[key.strip().lower().replace("-", "").replace(" ", "")] = val.strip()
    else:
        items = {str(k).lower().replace("-", "").replace(" ", ""): str(v) for k, v in spec.items()}
    if set(items) != {"bonafide", "spoof"}:
        raise ValueError(f"--label-map names {sorted(items)}; it must name exactly bonafide and spoof, "
                         "e.g. bonafide=real,spoof=fake")
    return {"bonafide": items["bonafide"], "spoof": items["spoof"]}


def class_indices(id2label: Mapping[Any, Any], label_map: Mapping[str, str] | None = None,
                  where: str = "model") -> tuple[int, int]:
    """(bona fide index, spoof index) from ``config.id2label``; see the module docstring for the rules."""
    labels = {int(k): str(v) for k, v in id2label.items()}
    shown = ", ".join(f"{i}={v!r}" for i, v in sorted(labels.items()))
    if label_map:
        def find(cls: str) -> int:
            want = label_map[cls]
            hits = [i for i, v in labels.items() if _norm_label(v) == _norm_label(want)]
            if not hits and str(want).strip().isdigit() and int(want) in labels:
                hits = [int(want)]
            if len(hits) != 1:
                raise ValueError(f"{where}: --label-map {cls}={want!r} matches {len(hits)} of its classes "
                                 f"({shown}); name one label exactly")
            return hits[0]
        b, s = find("bonafide"), find("spoof")
        if b == s:
            raise ValueError(f"{where}: --label-map names class {b} ({labels[b]!r}) as both bona fide and spoof")
        return b, s
    hint = ("name them with --label-map bonafide=LABEL,spoof=LABEL (bona fide names: "
            f"{', '.join(BONAFIDE_NAMES)}; spoof names: {', '.join(SPOOF_NAMES)})")
    if len(labels) != 2:
        raise ValueError(f"{where} has {len(labels)} classes ({shown}); a score needs one bona fide and one "
                         f"spoof class: {hint}")
    bona = [i for i, v in labels.items() if _norm_label(v) in BONAFIDE_NAMES]
    spoof = [i for i, v in labels.items() if _norm_label(v) in SPOOF_NAMES]
    if len(bona) != 1 or len(spoof) != 1:
        raise ValueError(f"{where}: its labels ({shown}) do not name one bona fide and one spoof class; {hint}")
    return bona[0], spoof[0]


@ARCHITECTURES.register("hf")
class HFDetector(Detector):
    """A transformers audio classifier with its pre-processing in torch. ``forward(wav[B, T]) -> [B]``."""

    default_policy = "whole"

    def __init__(self, model: torch.nn.Module, sampling_rate: int, do_normalize: bool, bonafide: int,
                 spoof: int, norm_eps: float = HF_EPS, nb_samp: int | None = None,
                 max_seconds: float = MAX_SECONDS):
        super().__init__()
        self.model = model
        self.sample_rate = int(sampling_rate)
        self.do_normalize = bool(do_normalize)
        self.norm_eps = float(norm_eps)
        self.bonafide, self.spoof = int(bonafide), int(spoof)
        self.nb_samp = int(nb_samp or round(64600 * self.sample_rate / 16000))
        self.max_samples = int(round(float(max_seconds) * self.sample_rate))
        if self.max_samples < 1:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        self.eval()

    # ---- pre-processing (torch, differentiable) -------------------------------------------------
    def preprocess(self, wav: torch.Tensor) -> torch.Tensor:
        """What the feature extractor does to raw samples at ``sample_rate``: per-row normalisation."""
        if wav.ndim != 2:
            raise ValueError(f"expected a batch of waveforms [B, T], got shape {tuple(wav.shape)}")
        if wav.shape[1] < MIN_SAMPLES:
            wav = wav.repeat(1, MIN_SAMPLES // wav.shape[1] + 1)[:, :MIN_SAMPLES]
        if self.do_normalize:
            mean = wav.mean(dim=1, keepdim=True)
            var = wav.var(dim=1, unbiased=False, keepdim=True)
            wav = (wav - mean) / torch.sqrt(var + self.norm_eps)
        return wav

    def prepare(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """A numpy clip at any rate -> float32 at ``sample_rate`` (soxr, as every audio path here)."""
        from foundation.audio import resample

        wav = np.asarray(wav, dtype=np.float32)
        return wav if int(sr) == self.sample_rate else resample(wav, int(sr), self.sample_rate)

    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        return self.model(input_values=self.preprocess(wav.to(dtype))).logits

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        logits = self.logits(wav)
        return logits[:, self.bonafide] - logits[:, self.spoof]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "HFDetector":
        """``{"folder": PATH, "label_map": {...} | None, "max_seconds": float, "name": str}``."""
        return build(Path(config["folder"]), label_map=config.get("label_map"),
                     max_seconds=float(config.get("max_seconds", MAX_SECONDS)), where=config.get("name", "model"))


def _feature_extractor(folder: Path) -> dict[str, Any]:
    from transformers import AutoFeatureExtractor

    try:
        fe = AutoFeatureExtractor.from_pretrained(str(folder))
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}: no usable feature extractor (preprocessor_config.json) ({e}); save it "
                         "beside the model with feature_extractor.save_pretrained(FOLDER)") from e
    names = list(getattr(fe, "model_input_names", []))
    if not names or names[0] != "input_values" or int(getattr(fe, "feature_size", 1)) != 1:
        raise ValueError(f"{folder}: the feature extractor {type(fe).__name__} computes features "
                         f"({names[:1]}), not raw waveforms; hf: models take raw-waveform extractors "
                         "(Wav2Vec2FeatureExtractor: wav2vec 2.0, HuBERT, WavLM, data2vec-audio ...)")
    max_length = getattr(fe, "max_length", None)
    return {"sampling_rate": int(fe.sampling_rate), "do_normalize": bool(getattr(fe, "do_normalize", False)),
            "nb_samp": int(max_length) if isinstance(max_length, int) and max_length > 0 else None,
            "extractor": type(fe).__name__}


def build(folder: Path, label_map: Mapping[str, str] | str | None = None, max_seconds: float = MAX_SECONDS,
          where: str = "model") -> HFDetector:
    """The detector of a local folder: a transformers checkpoint, or an AntiDeepfake fairseq-layout one."""
    from models import hf_antideepfake as adf

    label_map = parse_label_map(label_map)
    cfg_path = folder / "config.json"
    is_tf = False
    if cfg_path.is_file():
        import json

        try:
            is_tf = "model_type" in json.loads(cfg_path.read_text())
        except ValueError as e:
            raise ValueError(f"{cfg_path} is not valid JSON ({e})") from None
    if is_tf:
        try:
            from transformers import AutoModelForAudioClassification
        except ImportError as e:
            raise ImportError("hf: models need transformers: pip install transformers") from e
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()    # a per-load weights bar; bench shows its own progress
        try:
            model = AutoModelForAudioClassification.from_pretrained(str(folder), dtype=torch.float32)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        fe = _feature_extractor(folder)
        eps = HF_EPS
    else:
        from foundation.weights import read_state_dict

        files = hub.weight_files(folder)
        if len(files) != 1:
            raise ValueError(f"{folder}: no transformers config.json, and {len(files)} weight files "
                             f"({', '.join(p.name for p in files) or 'none'}); an hf: model is a save_pretrained "
                             "folder, or one AntiDeepfake checkpoint (.safetensors) in its fairseq layout")
        state = read_state_dict(files[0])
        if not adf.is_fairseq_layout(state):
            raise ValueError(f"{files[0]}: not a transformers folder (config.json with model_type) and not an "
                             "AntiDeepfake checkpoint (m_ssl.model.* and proj_fc.* keys)")
        model = adf.load_model(folder, state)
        fe = {"sampling_rate": 16000, "do_normalize": True, "nb_samp": None, "extractor": "AntiDeepfake"}
        eps = adf.NORM_EPS
    b, s = class_indices(model.config.id2label, label_map, where=where)
    det = HFDetector(model.eval(), fe["sampling_rate"], fe["do_normalize"], b, s, norm_eps=eps,
                     nb_samp=fe["nb_samp"], max_seconds=max_seconds)
    det.info = {"extractor": fe["extractor"], "model_type": getattr(model.config, "model_type", "?"),
                "labels": {int(k): str(v) for k, v in model.config.id2label.items()},
                "bonafide_label": str(model.config.id2label[b]), "spoof_label": str(model.config.id2label[s]),
                "sample_rate": det.sample_rate, "do_normalize": det.do_normalize, "norm_eps": eps,
                "nb_samp": det.nb_samp, "max_samples": det.max_samples}
    return det


def declared_sample_rate(name: str) -> int:
    """The model's rate from its preprocessor_config.json (fetching it into the cache if need be)."""
    import json

    folder, _ = hub.resolve(hub.parse_spec(name))
    p = folder / "preprocessor_config.json"
    try:
        return int(json.loads(p.read_text()).get("sampling_rate", 16000))
    except (OSError, ValueError):
        return 16000


def load(name: str, device: str = "cpu", label_map: Any = None,
         config: Mapping[str, Any] | None = None) -> tuple[HFDetector, Card, str, str | None]:
    """``hf:...`` -> (detector on ``device``, card with provenance, folder, combined sha256 of the weights)."""
    folder, source = hub.resolve(hub.parse_spec(name))
    config = dict(config or {})
    lm = parse_label_map(label_map if label_map is not None else config.get("label_map"))
    max_seconds = float(config.get("max_seconds", MAX_SECONDS))
    files = hub.digests(folder)
    known = hub.read_meta(folder).get("files") or {}
    changed = sorted(k for k in files if k in known and known[k] != files[k])
    if changed:
        raise ValueError(f"{folder}: {', '.join(changed)} changed since the snapshot was fetched (sha256 differs "
                         f"from {hub.META}); delete the folder to fetch it again")
    det = build(folder, label_map=lm, max_seconds=max_seconds, where=name)
    det.to(device).eval()
    card = Card(name=name, architecture="hf",
                config={"folder": str(folder), "label_map": lm, "max_seconds": max_seconds, "name": name},
                description=f"Hugging Face audio classifier ({det.info['model_type']}), "
                            f"score = logit({det.info['bonafide_label']}) - logit({det.info['spoof_label']})",
                input_policy="whole", params=sum(p.numel() for p in det.model.parameters()),
                extra={**source, **det.info, "files": files})
    return det, card, str(folder), hub.combined_digest(files)


def cached_models() -> list[dict[str, Any]]:
    """The hub models in the user cache (for ``bench models``): name, revision, labels, folder."""
    import json

    rows = []
    for folder, meta in hub.cached_snapshots():
        labels: Any = None
        kind = "hf"
        try:
            cfg = json.loads((folder / "config.json").read_text())
            labels = cfg.get("id2label")
            kind = f"hf ({cfg.get('model_type', 'AntiDeepfake' if 'model_type' not in cfg else '?')})"
        except (OSError, ValueError):
            labels = None
        rev = meta.get("revision") or folder.name
        rows.append({"name": f"hf:{meta.get('repo_id', folder.parent.name.replace('--', '/'))}@{rev}",
                     "architecture": kind, "revision": rev, "ref": meta.get("ref"),
                     "labels": ", ".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "",
                     "checkpoint": str(folder), "sha256": hub.combined_digest(meta.get("files") or {})})
    return rows
