"""SSL front end (wav2vec 2.0 XLS-R by default) + AASIST-style graph back end (Tak et al., Odyssey 2022).

"Automatic speaker verification spoofing and deepfake detection using wav2vec 2.0 and data
augmentation", code TakHemlata/SSL_Anti-spoofing (``model.py``). The original wraps a fairseq
XLS-R 300M model; here the front end is a ``transformers`` model (``Wav2Vec2Model`` by default,
``HubertModel``/``WavLMModel`` selectable with ``frontend: hubert|wavlm``), and the fairseq keys of
the release's checkpoints are renamed by :meth:`SSLAASIST.remap_state_dict`.

Config keys (``from_config``):

- ``frontend``: ``wav2vec2`` (default), ``hubert`` or ``wavlm``;
- ``frontend_config``: a dict of the transformers config (architecture only: the weights come from
  the detector checkpoint, which holds the fine-tuned front end). The card carries XLS-R 300M's;
- ``frontend_path``: instead, an HF-format folder or hub name to load (pretrained weights);
  ``allow_download: true`` lets transformers fetch it, otherwise only local files/the hub cache.

Faithful to the release: raw waveforms go in with NO feature-extractor normalisation; features are
the last encoder layer (fairseq ``features_only=True, mask=False``: SpecAugment masking is off even
in training). Unlike the release, whose wrapper calls ``.train()`` on the front end whenever the
input's dtype or device differs from the model's (dropout on while scoring), the model is never
switched here: scoring runs in eval mode (``Detector.score``) and inputs are cast to the model.
The score is the bona-fide logit (``out_layer`` column 1), the value the official scripts write.

Front ends are built by transformers with their default attention (SDPA where the class supports
it), no gradient checkpointing, in float32. ``forward``/``logits`` are the reference formulation
(differentiable, used by attacks); ``score``/``infer`` in eval mode on the CPU take an inference-only
path: clips split among ``torch.get_num_threads()`` Python threads (each op on one intra-op
thread), and for a Wav2Vec2 layer-norm feature encoder (XLS-R) its convolutions run time-major,
without the transposed copies around each LayerNorm. Equal within float32 rounding;
``load_detector(..., fast_inference=False)`` (``BENCH_FAST_INFERENCE=0`` in the CLI) or ``detector.fast_inference = False`` turns it off.
"""
from __future__ import annotations

import copy
import logging
import re
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from models._ssl_aasist_blocks import (GraphAttentionLayer, GraphPool, HtrgGraphAttentionLayer,
                                       ResidualBlock2d, wav2vec2_hidden_time_major)
from models.base import ARCHITECTURES, Card, Detector, register_card, strip_data_parallel

log = logging.getLogger(__name__)

# Back end of the release (fixed in its model.py).
FILTS = [128, [1, 32], [32, 32], [32, 64], [64, 64]]
GAT_DIMS = [64, 32]
POOL_RATIOS = [0.5, 0.5, 0.5, 0.5]
TEMPERATURES = [2.0, 2.0, 100.0, 100.0]
LL_DIM = 128       # LL projects SSL features to 128 "frequency" rows; max-pool 3 leaves 42 spectral nodes
N_SPECTRAL = LL_DIM // 3

# wav2vec 2.0 XLS-R 300M (fairseq xlsr2_300m: layer_norm extractor, pre-LN encoder), as transformers config.
XLSR_300M: dict[str, Any] = {
    "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
    "hidden_act": "gelu", "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": True, "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu", "do_stable_layer_norm": True, "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16, "layer_norm_eps": 1e-5, "mask_time_prob": 0.075,
}

FRONTENDS = {  # name -> (transformers config class, model class)
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "hubert": ("HubertConfig", "HubertModel"),
    "wavlm": ("WavLMConfig", "WavLMModel"),
}

_SSL = "ssl_model.model."
# fairseq (wav2vec 2.0 / HuBERT) -> transformers key renames, applied to what follows ``ssl_model.model.``
_DROP = re.compile(r"^(quantizer\.|project_q\.|final_proj\.|label_embs_concat|project_inp\.|target_glu\.)")
_RULES = [
    (r"^mask_emb$", "masked_spec_embed"),
    (r"^layer_norm\.(weight|bias)$", r"feature_projection.layer_norm.\1"),
    (r"^post_extract_proj\.", "feature_projection.projection."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"^feature_extractor\.conv_layers\.(\d+)\.2\.1\.", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"^feature_extractor\.conv_layers\.0\.2\.", "feature_extractor.conv_layers.0.layer_norm."),
    (r"^encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"^(encoder\.layers\.\d+)\.self_attn\.(k|v|q|out)_proj\.", r"\1.attention.\2_proj."),
    (r"^(encoder\.layers\.\d+)\.self_attn_layer_norm\.", r"\1.layer_norm."),
    (r"^(encoder\.layers\.\d+)\.fc1\.", r"\1.feed_forward.intermediate_dense."),
    (r"^(encoder\.layers\.\d+)\.fc2\.", r"\1.feed_forward.output_dense."),
]
_RULES_RE = [(re.compile(a), b) for a, b in _RULES]
# weight-normed positional conv: transformers uses torch's parametrization when torch has it
_POS = "encoder.pos_conv_embed.conv."
_NEW_G, _NEW_V = _POS + "parametrizations.weight.original0", _POS + "parametrizations.weight.original1"
_OLD_G, _OLD_V = _POS + "weight_g", _POS + "weight_v"


def fairseq_to_hf(key: str) -> str | None:
    """The transformers name of one front-end key (without prefix); None for training-only tensors."""
    if _DROP.match(key):
        return None
    for pat, rep in _RULES_RE:
        key, n = pat.subn(rep, key)
        if n:
            break
    if hasattr(nn.utils.parametrizations, "weight_norm"):
        return {_OLD_G: _NEW_G, _OLD_V: _NEW_V}.get(key, key)
    return {_NEW_G: _OLD_G, _NEW_V: _OLD_V}.get(key, key)


def _transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the ssl-aasist detector needs transformers: pip install 'deepfake-bench[ssl]' "
                          "(or pip install transformers)") from e
    return transformers


def build_frontend(config: Mapping[str, Any], owner: str = "ssl-aasist") -> nn.Module:
    """The transformers SSL model named by ``frontend``, from ``frontend_path`` or ``frontend_config``;
    ``owner`` (the model name) starts its error messages."""
    kind = config.get("frontend", "wav2vec2")
    if kind not in FRONTENDS:
        raise ValueError(f"{owner} config: unknown frontend {kind!r}; choose one of {', '.join(FRONTENDS)}")
    tf = _transformers()
    cfg_cls, model_cls = (getattr(tf, n) for n in FRONTENDS[kind])
    # fairseq was called with mask=False: no SpecAugment masking, not even in training
    overrides = {"apply_spec_augment": False}
    if config.get("frontend_path"):
        path = str(config["frontend_path"])
        local_only = not bool(config.get("allow_download", False))
        try:
            model = model_cls.from_pretrained(path, local_files_only=local_only, **overrides)
        except (OSError, ValueError) as e:
            raise ValueError(f"{owner} config: cannot load frontend_path {path!r} as a {model_cls.__name__} "
                             f"({type(e).__name__}: {e}). Give an HF-format folder (config.json + weights) or "
                             "a model already in the hub cache"
                             + ("" if not local_only else ", or set allow_download: true to fetch it")) from e
        return model.float()
    if config.get("frontend_config") is not None:
        fc = config["frontend_config"]
        if not isinstance(fc, Mapping):
            raise ValueError(f"{owner} config: frontend_config must be a mapping of {cfg_cls.__name__} "
                             f"fields, got {type(fc).__name__}")
        return model_cls(cfg_cls(**{**dict(fc), **overrides})).float()
    raise ValueError(f"{owner} config needs frontend_path (an HF-format folder or hub name) or "
                     "frontend_config (a transformers config dict, e.g. models.ssl_aasist.XLSR_300M)")


class SSLModel(nn.Module):
    """Holds the front end as ``.model`` so that keys read ``ssl_model.model.*`` as in the release."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, wav: torch.Tensor) -> torch.Tensor:  # [B, T] -> [B, frames, hidden]
        return self.model(wav).last_hidden_state


@ARCHITECTURES.register("ssl-aasist")
class SSLAASIST(Detector):
    """``forward(wav[B, T]) -> bona-fide logit [B]``; ``logits`` gives both classes."""

    def __init__(self, frontend: nn.Module, config: Mapping[str, Any] | None = None):
        super().__init__()
        self.config = copy.deepcopy(dict(config or {}))
        #: ``score``/``infer`` on the CPU take the fast path (BENCH_SSL_FAST=0 turns it off by default)
        self.fast_inference = True   # the CPU inference path in score(); load_detector(fast_inference=False) or
                                     # BENCH_FAST_INFERENCE=0 (read by the application, not here) turn it off
        self.ssl_model = SSLModel(frontend)
        ssl_dim = int(frontend.config.hidden_size)
        self.LL = nn.Linear(ssl_dim, LL_DIM)
        self.first_bn = nn.BatchNorm2d(1)
        self.first_bn1 = nn.BatchNorm2d(64)
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        self.selu = nn.SELU()
        self.encoder = nn.Sequential(*[nn.Sequential(ResidualBlock2d(list(f), first=(i == 0)))
                                       for i, f in enumerate([FILTS[1], FILTS[2], FILTS[3]] + [FILTS[4]] * 3)])
        self.attention = nn.Sequential(nn.Conv2d(64, 128, kernel_size=(1, 1)), nn.SELU(),
                                       nn.BatchNorm2d(128), nn.Conv2d(128, 64, kernel_size=(1, 1)))
        d, g = FILTS[-1][-1], GAT_DIMS
        self.pos_S = nn.Parameter(torch.randn(1, N_SPECTRAL, d))
        self.master1 = nn.Parameter(torch.randn(1, 1, g[0]))
        self.master2 = nn.Parameter(torch.randn(1, 1, g[0]))
        self.GAT_layer_S = GraphAttentionLayer(d, g[0], temperature=TEMPERATURES[0])
        self.GAT_layer_T = GraphAttentionLayer(d, g[0], temperature=TEMPERATURES[1])
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(g[0], g[1], temperature=TEMPERATURES[2])
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(g[1], g[1], temperature=TEMPERATURES[2])
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(g[0], g[1], temperature=TEMPERATURES[2])
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(g[1], g[1], temperature=TEMPERATURES[2])
        self.pool_S = GraphPool(POOL_RATIOS[0], g[0], 0.3)
        self.pool_T = GraphPool(POOL_RATIOS[1], g[0], 0.3)
        self.pool_hS1 = GraphPool(POOL_RATIOS[2], g[1], 0.3)
        self.pool_hT1 = GraphPool(POOL_RATIOS[2], g[1], 0.3)
        self.pool_hS2 = GraphPool(POOL_RATIOS[2], g[1], 0.3)
        self.pool_hT2 = GraphPool(POOL_RATIOS[2], g[1], 0.3)
        self.out_layer = nn.Linear(5 * g[1], 2)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SSLAASIST":
        return cls(build_frontend(config), config)

    @classmethod
    def remap_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Release (fairseq) layout -> ours: ``ssl_model.model.*`` renamed to transformers names,
        quantizer/project_q/final_proj (pre-training only) dropped, a ``module.`` prefix stripped.
        Keys already in our layout pass unchanged."""
        state = strip_data_parallel(state)
        out: dict[str, torch.Tensor] = {}
        for k, v in state.items():
            if k.startswith(_SSL):
                new = fairseq_to_hf(k[len(_SSL):])
                if new is None:
                    continue
                k = _SSL + new
            out[k] = v
        return out

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        state = self.remap_state_dict(dict(state))
        key = _SSL + "masked_spec_embed"
        if key in state and key not in self.state_dict():
            del state[key]  # only used for masking in pre-training; absent when mask probs are 0
        super().load_checkpoint_state(state)

    def _check_input(self, wav: torch.Tensor) -> None:
        if wav.dim() != 2:
            raise ValueError(f"ssl-aasist expects waveforms shaped [batch, samples], got {tuple(wav.shape)}")

    def _check_frames(self, feats: torch.Tensor, n_samples: int) -> None:
        if feats.shape[1] < 3:
            raise ValueError(f"ssl-aasist: {n_samples} samples give {feats.shape[1]} SSL frames, fewer than "
                             "the 3 the back end pools over; pad the input (the official policy tiles to "
                             f"{self.nb_samp} samples)")

    def logits(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` raw waveforms -> ``[B, 2]`` logits (column 1 = bona fide). The reference
        formulation: differentiable, and what ``forward`` (attacks, training) uses."""
        self._check_input(wav)
        p = self.LL.weight
        feats = self.ssl_model(wav.to(device=p.device, dtype=p.dtype))  # no normalisation, as released
        self._check_frames(feats, wav.shape[1])
        return self.backend(feats)

    @torch.inference_mode()
    def infer(self, wav: torch.Tensor) -> torch.Tensor:
        """``logits`` without autograd; in eval mode on the CPU by the fast path (see the module's
        docstring) unless ``fast_inference`` is off. Call ``eval()`` first (``score`` does)."""
        self._check_input(wav)
        p = self.LL.weight
        if not (self.fast_inference and not self.training and p.device.type == "cpu"):
            return self.logits(wav)
        from models._rawnet2_fast import in_clip_groups

        return in_clip_groups(self._fast_logits, wav.to(device=p.device, dtype=p.dtype).contiguous())

    def _fast_logits(self, wav: torch.Tensor) -> torch.Tensor:
        feats = wav2vec2_hidden_time_major(self.ssl_model.model, wav)
        if feats is None:  # not a layer-norm Wav2Vec2 feature encoder: the model as it is
            feats = self.ssl_model(wav)
        self._check_frames(feats, wav.shape[1])
        return self.backend(feats)

    @torch.inference_mode()
    def score(self, wav: torch.Tensor) -> torch.Tensor:
        """Bona-fide logit per clip, without a graph, by ``infer`` (in eval mode)."""
        self.eval()
        return self.infer(wav)[:, 1]

    def backend(self, feats: torch.Tensor) -> torch.Tensor:
        """``[B, frames, hidden]`` SSL features -> ``[B, 2]`` logits: the AASIST-style back end."""
        x = self.LL(feats).transpose(1, 2).unsqueeze(1)  # [B, 1, 128, frames]
        x = self.selu(self.first_bn(F.max_pool2d(x, (3, 3))))
        x = self.selu(self.first_bn1(self.encoder(x)))  # [B, 64, 42, frames/3]
        w = self.attention(x)
        e_S = (x * F.softmax(w, dim=-1)).sum(dim=-1).transpose(1, 2) + self.pos_S  # spectral nodes
        out_S = self.pool_S(self.GAT_layer_S(e_S))
        e_T = (x * F.softmax(w, dim=-2)).sum(dim=-2).transpose(1, 2)  # temporal nodes
        out_T = self.pool_T(self.GAT_layer_T(e_T))

        def branch(first, second, pool_s, pool_t, master):
            t1, s1, m1 = first(out_T, out_S, master=master)
            s1, t1 = pool_s(s1), pool_t(t1)
            t_aug, s_aug, m_aug = second(t1, s1, master=m1)
            return t1 + t_aug, s1 + s_aug, m1 + m_aug

        t1, s1, m1 = branch(self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1,
                            self.master1)
        t2, s2, m2 = branch(self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2,
                            self.master2)
        t1, t2, s1, s2, m1, m2 = (self.drop_way(v) for v in (t1, t2, s1, s2, m1, m2))
        out_T, out_S, master = torch.max(t1, t2), torch.max(s1, s2), torch.max(m1, m2)
        hidden = torch.cat([out_T.abs().amax(dim=1), out_T.mean(dim=1),
                            out_S.abs().amax(dim=1), out_S.mean(dim=1), master.squeeze(1)], dim=1)
        return self.out_layer(self.drop(hidden))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.logits(wav)[:, 1]


WEIGHTS_PAGE = "https://drive.google.com/drive/folders/1c4ywztEVlYVijfwbGLl9OEa1SNtFKppB"

register_card(Card(
    name="ssl-aasist",
    architecture="ssl-aasist",
    config={"frontend": "wav2vec2", "frontend_config": XLSR_300M},
    filename="ssl-aasist/LA_model.pth",
    url=None,
    licence="MIT (TakHemlata/SSL_Anti-spoofing); XLS-R front end from fairseq (MIT)",
    training_data="ASVspoof 2019 LA train, RawBoost augmentation; XLS-R 300M self-supervised pre-training",
    published_eer="0.82% EER, min t-DCF 0.2066 (ASVspoof 2021 LA eval); 2.85% EER (ASVspoof 2021 DF eval)",
    params=315_885_962,  # XLS-R 300M as Wav2Vec2Model (315,438,720) + back end (447,242)
    description=("wav2vec 2.0 XLS-R 300M front end fine-tuned with an AASIST-style graph back end (Tak et "
                 "al., Odyssey 2022). The authors publish LA_model.pth (LA track: 0.82% EER) and "
                 "Best_LA_model_for_DF.pth (DF track: 2.85% EER) behind a file-sharing page, " + WEIGHTS_PAGE +
                 " (linked from github.com/TakHemlata/SSL_Anti-spoofing): download them by hand, then `bench "
                 "weights ssl-aasist --from DIR` (DIR holding ssl-aasist/LA_model.pth), or put it "
                 "at $BENCH_WEIGHTS_DIR/ssl-aasist/LA_model.pth, or pass --checkpoint PATH (the DF file, "
                 "saved with a 'module.' prefix, loads too). The checkpoint holds the fine-tuned XLS-R weights, so only "
                 "its architecture (this card's frontend_config) is needed; to start from a local XLS-R "
                 "300M in HF format (e.g. facebook/wav2vec2-xls-r-300m) set frontend_path. The fairseq "
                 "keys are renamed to transformers'. Score: the bona-fide logit."),
    extra={"score": "logits[:, 1]", "reference": "TakHemlata/SSL_Anti-spoofing model.py",
           "backend_params": 447_242,
           # TakHemlata/SSL_Anti-spoofing README, "Pre-trained SSL antispoofing models are available for LA and DF"
           "weights_page": WEIGHTS_PAGE,
           "published_checkpoints": {
               "LA": {"file": "LA_model.pth", "eer": "0.82% EER, min t-DCF 0.2066 (ASVspoof 2021 LA eval)"},
               "DF": {"file": "Best_LA_model_for_DF.pth", "eer": "2.85% EER (ASVspoof 2021 DF eval)"}},
           # without a detector checkpoint (training from scratch), the XLS-R front end the release reads from
           # fairseq's xlsr2_300m.pt comes from transformers' port: config frontend_path (+ allow_download)
           "pretrained_frontend": "facebook/wav2vec2-xls-r-300m"},
))
