"""The base of the neural codec families (EnCodec, DAC): a round trip through a ``transformers`` model.

A family subclasses :class:`NeuralCodec`, names its weights (a :class:`foundation.weights.FolderCard`,
a save_pretrained folder) and its ``transformers`` class, and implements :meth:`NeuralCodec._codes`
(encode a batch ``[B, 1, T]`` at the codec's rate) and :meth:`NeuralCodec._decode`.

- Weights: the family parameter ``checkpoint: FOLDER`` (any save_pretrained folder of that class),
  else ``$BENCH_WEIGHTS_DIR/<folder>``, else the user cache, else downloaded into the cache when online
  (``bench weights encodec dac`` fetches them ahead). :meth:`check_resources` resolves them, so that a
  run is refused before any audio is read, with one line saying where to put them.
- Rates: the clip is resampled to the codec's rate and back with the project's resampler
  (``foundation.audio.resample``, soxr VHQ, linear phase and delay-free).
- Length and alignment: the clip is zero-padded at the end to whole frames plus one (DAC's decoder
  returns a few samples fewer than it was given), coded, and cut back to its length from ``DELAY``
  (samples at the codec's rate). Both models are delay-free by construction: EnCodec's causal
  convolutions pad on the left and its transposed convolutions trim on the right; DAC's strided
  convolutions and their transposes are centred (frame ``i`` covers and is decoded onto the samples
  around ``i·hop + hop/2``). ``tests/test_neural_codecs.py`` measures the lag with the real weights
  when they are present.
- Device: with ``--prepare-on device`` (the default when scoring on a GPU) the scorer runs the codec on
  its device (:meth:`apply_torch`, one model in the scorer's process); in preparation workers (chains
  such as ``mp3+encodec``, or ``--prepare-on cpu``) the ``Context.device`` they are given (``bench run``
  passes its scoring device through the workers' context), else CUDA when torch sees a GPU, else the CPU with one thread per worker; one
  model per process and device (cached). :meth:`apply_batch` codes many clips in one batch; clips are grouped by length so
  that no clip's output depends on its batch mates (DAC's convolutions are not causal).
- Deterministic: the models draw no randomness (eval mode, no dropout).
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from foundation.weights import FolderCard, resolve_folder
from perturbations.base import Context, Perturbation
from perturbations.codecs._base import fit_length

log = logging.getLogger(__name__)

#: family name -> its weights card (``bench weights`` reads this)
CODEC_WEIGHTS: dict[str, FolderCard] = {}


def codec_device(context: Context | None = None) -> str:
    """The context's ``device`` (the runner passes its scoring device), else ``cuda`` when torch sees a GPU,
    else ``cpu``."""
    if context is not None and context.device:
        return str(context.device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safetensors(family: str, folder: Path) -> None:
    """Refuses a weights folder without ``*.safetensors`` weights, naming any pickled ones it holds."""
    if any(Path(folder).glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in Path(folder).iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    what = (f"holds pickled weights ({', '.join(pickled)}), which are refused: unpickling runs code" if pickled
            else "holds no *.safetensors weights")
    raise ValueError(f"{family}: the weights folder {folder} {what}; save the model with save_pretrained "
                     "(safe_serialization, the default) to get model.safetensors")


@functools.lru_cache(maxsize=8)   # (class, folder, device): three codecs on two devices fit
def _load(class_name: str, folder: str, device: str):
    try:
        import transformers
    except ImportError as e:
        raise ImportError(f"the neural codecs need torch and transformers: pip install 'transformers>=4.46' "
                          f"({e})") from e
    cls = getattr(transformers, class_name)
    try:
        model = cls.from_pretrained(folder, local_files_only=True, use_safetensors=True)   # never a pickle
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot load a {class_name} from {folder}: {e}") from e
    import multiprocessing

    import torch

    if str(device) == "cpu" and multiprocessing.parent_process() is not None:
        # a preparation worker: one per core already, so one thread each (no oversubscription)
        torch.set_num_threads(1)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    log.info("loaded %s from %s on %s", class_name, folder, device)
    return model


@dataclass(frozen=True)
class NeuralCodec(Perturbation):
    """Base of the neural codec families (not registered itself)."""

    WEIGHTS: ClassVar[FolderCard]
    MODEL_CLASS: ClassVar[str] = ""
    #: the codec's delay in samples at its own rate, removed after decoding
    DELAY: ClassVar[int] = 0

    checkpoint: str | None = None

    # --- what a family provides ------------------------------------------------------------
    def _codes(self, model, x):
        """Encode ``x`` (``[B, 1, T]`` float32 tensor at the codec's rate): ``(codes [B, n_q, frames], extra)``."""
        raise NotImplementedError

    def _decode(self, model, codes, extra):
        """Decode to ``[B, T']``."""
        raise NotImplementedError

    def check_model(self, model) -> None:
        """Raise ValueError when this level's parameters do not fit the loaded model."""

    # --- weights and model -----------------------------------------------------------------
    def validate(self) -> None:
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise ValueError(f"{self.family}: checkpoint must be a folder path, got {self.checkpoint!r}")

    def weights_folder(self) -> Path:
        return resolve_folder(self.WEIGHTS, self.checkpoint)

    def check_resources(self) -> None:
        """The weights folder exists and holds safetensors weights: pickled weights (``.bin``, ``.pt``, ...) are
        refused here, before any audio is read, rather than failing on every clip (the run could then end with
        the condition silently missing)."""
        check_safetensors(self.family, self.weights_folder())

    def model(self, device: str | None = None):
        model = _load(self.MODEL_CLASS, str(self.weights_folder()), device or codec_device())
        self.check_model(model)
        return model

    @staticmethod
    def rate(model) -> int:
        return int(model.config.sampling_rate)

    @staticmethod
    def hop(model) -> int:
        return int(np.prod(model.config.upsampling_ratios))

    @staticmethod
    def bits_per_code(model) -> float:
        return float(np.log2(model.config.codebook_size))

    # --- behaviour -------------------------------------------------------------------------
    def roundtrip(self, clips: Sequence[np.ndarray], model=None) -> tuple[list[np.ndarray], list[int]]:
        """Codes clips of one length (float arrays at the codec's rate) in one batch; returns the decoded
        clips (cut to the input length from ``DELAY``) and each clip's payload in bits."""
        import torch

        model = model if model is not None else self.model()
        n = int(len(clips[0]))
        if any(len(c) != n for c in clips):
            raise ValueError(f"{self.family}: roundtrip() batches clips of one length; use apply_batch()")
        hop = self.hop(model)
        padded = (-(-n // hop) + 1) * hop
        dev = next(model.parameters()).device
        x = np.zeros((len(clips), 1, padded), dtype=np.float32)
        for i, c in enumerate(clips):
            x[i, 0, :n] = c
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(dev)
            codes, extra = self._codes(model, xt)
            y = self._decode(model, codes, extra).float().cpu().numpy()
        bits = [int(codes[i].numel() * self.bits_per_code(model)) for i in range(len(clips))]
        return [fit_length(y[i].astype(np.float64), self.DELAY, n) for i in range(len(clips))], bits

    def encode(self, wav: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
        """``(decoded waveform at sr, aligned and of the input's length, payload bitrate in b/s)``."""
        out, bits = self._run([np.asarray(wav)], sr)
        dur = len(wav) / sr
        return out[0], (bits[0] / dur if dur > 0 else 0.0)

    def _run(self, wavs: Sequence[np.ndarray], sr: int, device: str | None = None
             ) -> tuple[list[np.ndarray], list[int]]:
        from foundation.audio import resample

        model = self.model(device)
        rate = self.rate(model)
        outs: list[np.ndarray | None] = [None] * len(wavs)
        bits: list[int] = [0] * len(wavs)
        at_rate = [resample(np.asarray(w, np.float32), sr, rate) if len(w) else np.zeros(0, np.float32)
                   for w in wavs]
        groups: dict[int, list[int]] = {}
        for i, x in enumerate(at_rate):
            groups.setdefault(len(x), []).append(i)
        for n, idx in groups.items():
            if n == 0:
                for i in idx:
                    outs[i] = np.zeros(0, np.float32)
                continue
            decoded, b = self.roundtrip([at_rate[i] for i in idx], model)
            for i, y, bb in zip(idx, decoded, b):
                back = resample(y.astype(np.float32), rate, sr)
                outs[i] = fit_length(back.astype(np.float64), 0, len(wavs[i])).astype(np.float32)
                bits[i] = bb
        return outs, bits  # type: ignore[return-value]

    def apply_batch(self, wavs: Sequence[np.ndarray], sr: int) -> list[np.ndarray]:
        """Many clips at once (batched on the codec's device); the same output as :meth:`apply` per clip."""
        return self._run(wavs, sr)[0]

    def apply(self, wav: np.ndarray, sr: int, rng: np.random.Generator,
              context: Context | None = None) -> np.ndarray:
        if not np.all(np.isfinite(wav)):
            raise ValueError(f"{self.family}: the waveform has NaN or infinite samples")
        return self._run([wav], sr, device=codec_device(context))[0][0]

    def apply_torch(self, wav, sr: int, rng: np.random.Generator, context: Context | None = None):
        """The scoring device's path (``--prepare-on device``, the default on a GPU): the model runs on the
        tensor's device (loaded there once, in the scorer's process); resampling stays the CPU's soxr."""
        import torch

        x = wav.detach().float().cpu().numpy()
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.family}: the waveform has NaN or infinite samples")
        return torch.from_numpy(self._run([x], sr, device=str(wav.device))[0][0]).to(wav.device)


@dataclass(frozen=True)
class CodebookCodec(NeuralCodec):
    """A neural codec whose levels keep the first ``n_codebooks`` residual codebooks (DAC, Mimi), with the
    bitrate they give recorded as ``kbps`` (computed from ``KBPS_PER_CODEBOOK`` when left out, and checked
    against the loaded model's own framing)."""

    KBPS_PER_CODEBOOK: ClassVar[float] = 0.0

    @classmethod
    def at(cls, severity: int, **overrides):
        if "n_codebooks" in overrides and "kbps" not in overrides:
            overrides["kbps"] = None  # recomputed from the overridden number of codebooks
        return super().at(severity, **overrides)

    def __post_init__(self):
        if self.kbps is None and isinstance(self.n_codebooks, (int, np.integer)):
            object.__setattr__(self, "kbps", round(float(self.n_codebooks) * self.KBPS_PER_CODEBOOK, 6))

    def validate(self) -> None:
        super().validate()
        k = self.n_codebooks
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= 64:
            raise ValueError(f"{self.family}: n_codebooks must be an integer in 1..64, got {k!r}")
        if not isinstance(self.kbps, (int, float)) or isinstance(self.kbps, bool) or self.kbps <= 0:
            raise ValueError(f"{self.family}: kbps must be a positive number, got {self.kbps!r}")

    @staticmethod
    def model_codebooks(model) -> int:
        raise NotImplementedError

    @classmethod
    def frames_per_second(cls, model) -> float:
        return cls.rate(model) / cls.hop(model)

    def check_model(self, model) -> None:
        have = self.model_codebooks(model)
        if self.n_codebooks > have:
            raise ValueError(f"{self.family}: n_codebooks {self.n_codebooks} exceeds the model's {have}")
        got = self.n_codebooks * self.frames_per_second(model) * self.bits_per_code(model) / 1000
        if abs(got - float(self.kbps)) > 1e-6 * max(1.0, got):
            raise ValueError(f"{self.family}: {self.n_codebooks} codebooks of this model are {got:g} kb/s, not the "
                             f"level's kbps {self.kbps:g}; give kbps={got:g} (or leave it out)")
