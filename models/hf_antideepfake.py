"""AntiDeepfake checkpoints (nii-yamagishilab) in their fairseq layout, loaded into ``transformers``.

The AntiDeepfake models (``nii-yamagishilab/*-anti-deepfake``; code github.com/nii-yamagishilab/
AntiDeepfake, ``models/W2V.py`` and ``models/HBT.py``) are a fairseq wav2vec 2.0 or HuBERT model
followed by their back end: the last hidden states averaged over time (``AdaptiveAvgPool1d(1)``) and
``proj_fc = Linear(hidden, 2)``. Their input is the 16 kHz waveform normalised per utterance by
``F.layer_norm(wav, wav.shape)``, i.e. ``(x - mean) / sqrt(var + 1e-5)``.

Here that becomes a ``transformers`` ``Wav2Vec2ForSequenceClassification`` /
``HubertForSequenceClassification`` with ``classifier_proj_size = hidden``, an identity
``projector`` and ``classifier = proj_fc``: the same function (mean pooling over time, then the
linear layer), loadable strictly, and scored like any ``hf:`` model (normalisation epsilon 1e-5).

Assumptions (from the public code; no released file was opened here):
- keys: the SSL model under ``m_ssl.model.`` with fairseq names (``feature_extractor.conv_layers.{i}.0``
  conv, ``.2.1`` its LayerNorm in ``layer_norm`` extractor mode, or ``conv_layers.0.2`` the GroupNorm in
  ``default`` mode; ``layer_norm`` and ``post_extract_proj`` the feature projection;
  ``encoder.pos_conv.0.weight_g/weight_v/bias``; ``encoder.layers.{i}.self_attn.{q,k,v,out}_proj``,
  ``self_attn_layer_norm``, ``fc1``, ``fc2``, ``final_layer_norm``; ``encoder.layer_norm``; ``mask_emb``)
  and the back end ``proj_fc.weight/bias``; pre-training-only keys (``quantizer``, ``project_q``,
  ``final_proj``, ``label_embs_concat``) are dropped;
- class order: index 0 = fake, index 1 = real (their model card: ``<Fake score, Real score>``);
- architecture: read from the tensor shapes (hidden size, layers, FFN size, conv channels and kernels,
  positional convolution kernel and groups, conv bias, extractor norm); what shapes cannot tell comes
  from the folder's ``bench-antideepfake.json`` (or a ``config.json`` without ``model_type``) when
  present, else from the released models' settings: attention heads 12 at hidden 768 and 16 otherwise;
  ``layer_norm_first`` (transformers' ``do_stable_layer_norm``) false at hidden 768 (wav2vec2-small) and
  true otherwise; conv strides (5, 2, 2, 2, 2, 2, 2); family HuBERT when the state holds
  ``label_embs_concat`` or the hint/folder name says ``hubert``, else wav2vec 2.0.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from models.base import CheckpointMismatch

PREFIX = "m_ssl.model."
HINTS_FILE = "bench-antideepfake.json"
LABELS = {0: "fake", 1: "real"}
NORM_EPS = 1e-5                      # F.layer_norm's default epsilon
_DROP = ("quantizer.", "project_q.", "final_proj.", "label_embs_concat", "target_glu.")
_STRIDES = (5, 2, 2, 2, 2, 2, 2)


def is_fairseq_layout(state: Mapping[str, Any]) -> bool:
    return "proj_fc.weight" in state and any(k.startswith(PREFIX) for k in state)


def read_hints(folder: Path) -> dict[str, Any]:
    """Architecture hints the shapes cannot give (see the module docstring)."""
    for name in (HINTS_FILE, "config.json"):
        p = folder / name
        if p.is_file():
            try:
                d = json.loads(p.read_text())
            except ValueError as e:
                raise ValueError(f"{p} is not valid JSON ({e})") from None
            if isinstance(d, dict) and "model_type" not in d:
                return d
    return {}


def _ssl(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}


def build_config(state: Mapping[str, torch.Tensor], hints: Mapping[str, Any] | None = None, name: str = ""):
    """A transformers config for the checkpoint (see the module docstring for what is inferred)."""
    from transformers import HubertConfig, Wav2Vec2Config

    hints = dict(hints or {})
    ssl = _ssl(state)
    hidden = int(state["proj_fc.weight"].shape[1])
    layers = sorted({int(m.group(1)) for k in ssl if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    if not layers:
        raise CheckpointMismatch("AntiDeepfake checkpoint: no m_ssl.model.encoder.layers.* keys")
    convs = []
    while f"feature_extractor.conv_layers.{len(convs)}.0.weight" in ssl:
        w = ssl[f"feature_extractor.conv_layers.{len(convs)}.0.weight"]
        convs.append((int(w.shape[0]), int(w.shape[2])))
    pos = ssl.get("encoder.pos_conv.0.weight_v")
    if pos is None or not convs:
        raise CheckpointMismatch("AntiDeepfake checkpoint: the feature extractor or positional convolution "
                                 "(m_ssl.model.feature_extractor.conv_layers.*, encoder.pos_conv.0.*) is missing")
    family = str(hints.get("family") or ("hubert" if "label_embs_concat" in ssl or "hubert" in name.lower()
                                          else "wav2vec2")).lower()
    stable = bool(hints.get("layer_norm_first", hidden != 768))
    kw = dict(hidden_size=hidden, num_hidden_layers=layers[-1] + 1,
              num_attention_heads=int(hints.get("num_attention_heads", 12 if hidden == 768 else 16)),
              intermediate_size=int(ssl["encoder.layers.0.fc1.weight"].shape[0]),
              conv_dim=tuple(c for c, _ in convs), conv_kernel=tuple(k for _, k in convs),
              conv_stride=tuple(hints.get("conv_stride", _STRIDES[:len(convs)])),
              conv_bias="feature_extractor.conv_layers.0.0.bias" in ssl,
              feat_extract_norm="layer" if "feature_extractor.conv_layers.0.2.1.weight" in ssl else "group",
              num_conv_pos_embeddings=int(pos.shape[2]), num_conv_pos_embedding_groups=hidden // int(pos.shape[1]),
              do_stable_layer_norm=stable, hidden_act="gelu", layer_norm_eps=1e-5,
              hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
              final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.05 if "mask_emb" in ssl else 0.0,
              num_labels=2, id2label=dict(LABELS), label2id={v: k for k, v in LABELS.items()},
              classifier_proj_size=hidden, use_weighted_layer_sum=False)
    if family == "hubert":
        return HubertConfig(**kw, feat_proj_layer_norm="layer_norm.weight" in ssl)
    if family != "wav2vec2":
        raise ValueError(f"AntiDeepfake family {family!r}: expected wav2vec2 or hubert")
    return Wav2Vec2Config(**kw)


def remap_state_dict(state: Mapping[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """fairseq-layout keys -> the keys of ``model`` (a transformers ...ForSequenceClassification)."""
    base = model.base_model_prefix
    own = model.state_dict()
    hidden = int(state["proj_fc.weight"].shape[1])
    pos_g = next((k for k in (f"{base}.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
                              f"{base}.encoder.pos_conv_embed.conv.weight_g") if k in own), None)
    pos_v = pos_g.replace("original0", "original1").replace("weight_g", "weight_v") if pos_g else None
    fixed = {"layer_norm.weight": "feature_projection.layer_norm.weight",
             "layer_norm.bias": "feature_projection.layer_norm.bias",
             "post_extract_proj.weight": "feature_projection.projection.weight",
             "post_extract_proj.bias": "feature_projection.projection.bias",
             "encoder.pos_conv.0.bias": "encoder.pos_conv_embed.conv.bias",
             "encoder.layer_norm.weight": "encoder.layer_norm.weight",
             "encoder.layer_norm.bias": "encoder.layer_norm.bias",
             "mask_emb": "masked_spec_embed"}
    layer = {"self_attn.q_proj": "attention.q_proj", "self_attn.k_proj": "attention.k_proj",
             "self_attn.v_proj": "attention.v_proj", "self_attn.out_proj": "attention.out_proj",
             "self_attn_layer_norm": "layer_norm", "final_layer_norm": "final_layer_norm",
             "fc1": "feed_forward.intermediate_dense", "fc2": "feed_forward.output_dense"}
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, t in _ssl(state).items():
        if key.startswith(_DROP):
            continue
        new = None
        if key in fixed:
            new = fixed[key]
        elif key == "encoder.pos_conv.0.weight_g" and pos_g:
            out[pos_g] = t
            continue
        elif key == "encoder.pos_conv.0.weight_v" and pos_v:
            out[pos_v] = t
            continue
        elif m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.(0|2|2\.1)\.(weight|bias)", key):
            part = "conv" if m.group(2) == "0" else "layer_norm"
            new = f"feature_extractor.conv_layers.{m.group(1)}.{part}.{m.group(3)}"
        elif m := re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)", key):
            if m.group(2) in layer:
                new = f"encoder.layers.{m.group(1)}.{layer[m.group(2)]}.{m.group(3)}"
        if new is None:
            unknown.append(PREFIX + key)
            continue
        out[f"{base}.{new}"] = t
    for key in state:
        if not key.startswith(PREFIX) and key not in ("proj_fc.weight", "proj_fc.bias"):
            unknown.append(key)
    if unknown:
        raise CheckpointMismatch("AntiDeepfake checkpoint: keys with no place in the transformers model: "
                                 + ", ".join(unknown[:12]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 12 else ""))
    dtype = state["proj_fc.weight"].dtype
    out["projector.weight"] = torch.eye(hidden, dtype=dtype)
    out["projector.bias"] = torch.zeros(hidden, dtype=dtype)
    out["classifier.weight"] = state["proj_fc.weight"]
    out["classifier.bias"] = state["proj_fc.bias"]
    return out


def load_model(folder: Path, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """The transformers model of an AntiDeepfake checkpoint, loaded strictly (a mismatch names the keys)."""
    from transformers import AutoModelForAudioClassification

    config = build_config(state, read_hints(folder), name=str(folder))
    model = AutoModelForAudioClassification.from_config(config)
    new = remap_state_dict(state, model)
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(new)), sorted(set(new) - set(own))
    shape = sorted(k for k in set(own) & set(new) if tuple(own[k].shape) != tuple(new[k].shape))
    if missing or unexpected or shape:
        raise CheckpointMismatch(f"AntiDeepfake checkpoint in {folder} does not fit {type(model).__name__}: "
                                 f"missing {missing[:8]}, unexpected {unexpected[:8]}, shapes differ {shape[:8]} "
                                 f"(hints in {HINTS_FILE} can set num_attention_heads, layer_norm_first, "
                                 "conv_stride, family)")
    model.load_state_dict(new, strict=True)
    return model.float().eval()
