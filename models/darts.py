"""The DARTS family of detectors: a network of searched cells, its genotype given as data.

Raw PC-DARTS (Ge et al., "Raw Differentiable Architecture Search for Speech Deepfake and Spoofing
Detection", ASVspoof 2021 workshop; code eurecom-asp/raw-pc-darts-anti-spoofing, MIT, ``models/model.py``)
and Light-DARTS (Wang et al., "Fully Automated End-to-End Fake Audio Detection", DDAM 2022: a wav2vec 2.0
front end before the searched cells; no code or weights published) are one architecture, ``darts``:

front end (``sinc`` or ``ssl``, see :mod:`models._darts_parts`) -> stem -> ``layers`` cells -> GRU ->
``fc_gru`` -> P2SGrad (or linear) output layer; ``forward(wav[B, T]) -> score[B]``, differentiable through
either front end. Cells as in DARTS: two inputs (the outputs of the two previous cells, preprocessed to
``C`` channels), intermediate nodes each the sum of two operations on earlier states, output the
concatenation of the ``*_concat`` states, max-pooled by 2 (every cell halves the frames, as released). The
cells at ``layers // 3`` and ``2 * layers // 3`` are reduction cells: they double ``C`` and use the
genotype's ``reduce`` half. Drop-path (``drop_path_prob``, 0 in the release's recipe) is not implemented.

Configuration (``from_config``; defaults are the release's ``train_model.py``): ``genotype`` (a dict, JSON
string, JSON file path or the release's ``Genotype(...)`` string; see :mod:`models._darts_genotype`),
``layers``, ``init_channels``, ``gru_hsize``, ``gru_layers``, ``head`` (``p2sgrad`` | ``linear``),
``nb_samp``, ``frontend`` (``sinc`` | ``ssl``); sinc: ``sinc_scale`` (``mel`` | ``linear`` | ``lem``),
``sinc_kernel``, ``sinc_learnable``, ``freq_mask``, ``mask_seed``; ssl: ``ssl_frontend`` (``wav2vec2`` |
``hubert`` | ``wavlm``), ``frontend_config`` or ``frontend_path`` (+ ``allow_download``), ``ssl_layer``
(an index into the hidden states; the last layer by default).

Official checkpoints (``epoch_N.pth``, plain state dicts saved from CUDA) load strictly as they are: the
module names are the release's (``sinc.low_hz_``, ``stem.0.weight``, ``cells.3.preprocess0.conv_1.weight``,
``cells.0._ops.2.op.3.running_mean``, ``gru.weight_ih_l0``, ``fc_gru.weight``, ``l_layer.weight``).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import torch
from torch import nn

from models._darts_genotype import RAW_PC_DARTS, parse_genotype
from models._darts_ops import OPS, align, preprocess_pair
from models._darts_parts import DEFAULTS, DARTSBase, merge_config
from models.base import ARCHITECTURES, Card, register_card, strip_data_parallel
from models.ssl_aasist import XLSR_300M

log = logging.getLogger(__name__)

CONFIG_DEFAULTS: dict[str, Any] = {**DEFAULTS, "genotype": RAW_PC_DARTS}


class Cell(nn.Module):
    """A derived DARTS cell (the release's ``models/model.py`` ``Cell``)."""

    def __init__(self, genotype: Mapping[str, Any], c_prev_prev: int, c_prev: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0, self.preprocess1 = preprocess_pair(c_prev_prev, c_prev, c, reduction_prev)
        kind = "reduce" if reduction else "normal"
        op_names, indices = zip(*genotype[kind])
        self._concat = list(genotype[f"{kind}_concat"])
        self.multiplier = len(self._concat)
        self._steps = len(op_names) // 2
        self._indices = list(indices)
        self._ops = nn.ModuleList(OPS[name](c, 1, True) for name in op_names)
        self.pooling_layer = nn.MaxPool1d(2)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = list(align(self.preprocess0(s0), self.preprocess1(s1)))
        for i in range(self._steps):
            a, b = self._indices[2 * i], self._indices[2 * i + 1]
            states.append(self._ops[2 * i](states[a]) + self._ops[2 * i + 1](states[b]))
        return self.pooling_layer(torch.cat([states[i] for i in self._concat], dim=1))


@ARCHITECTURES.register("darts")
class DARTS(DARTSBase):
    """A derived DARTS network. ``forward(wav[B, T]) -> score[B]`` (cos theta of bona fide with P2SGrad)."""

    def __init__(self, config: Mapping[str, Any] | None = None):
        super().__init__()
        cfg = merge_config(self.NAME, dict(config or {}), CONFIG_DEFAULTS)
        cfg["genotype"] = parse_genotype(cfg["genotype"])
        self.config = cfg
        self.genotype = cfg["genotype"]
        def make(*sizes):
            cell = Cell(self.genotype, *sizes)
            return cell, cell.multiplier

        self._build_back(self._build_cells(self._build_front(cfg), cfg["layers"], make), cfg)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DARTS":
        return cls(config)

    @classmethod
    def remap_state_dict(cls, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The release's key names are ours; only a DataParallel ``module.`` prefix is removed."""
        state = strip_data_parallel(state)
        return state

    def load_checkpoint_state(self, state: Mapping[str, torch.Tensor]) -> None:
        state = self.remap_state_dict(dict(state))
        key = "ssl_model.model.masked_spec_embed"
        if key in state and key not in self.state_dict():
            del state[key]  # only used for masking in pre-training; absent when mask probs are 0
        super().load_checkpoint_state(state)

    def run_cells(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1


def n_params(config: Mapping[str, Any]) -> int:
    """Parameter count of a configuration, sinc bounds included (a meta-device build: no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in DARTS(config).parameters())


RAW_PC_DARTS_CONFIG: dict[str, Any] = {
    "frontend": "sinc", "genotype": RAW_PC_DARTS, "layers": 8, "init_channels": 64, "gru_hsize": 1024,
    "gru_layers": 3, "head": "p2sgrad", "nb_samp": 64000, "sinc_scale": "mel", "sinc_kernel": 128,
    "sinc_learnable": False, "freq_mask": True,
}

register_card(Card(
    name="raw-pc-darts",
    architecture="darts",
    config=RAW_PC_DARTS_CONFIG,
    filename="raw-pc-darts/fixed_mel.pth",
    url=None,
    licence="MIT (eurecom-asp/raw-pc-darts-anti-spoofing)",
    training_data="ASVspoof 2019 LA train",
    published_eer="1.77% EER, min t-DCF 0.0517 (ASVspoof 2019 LA eval; fixed mel-scale sinc, masked)",
    params=24_478_344,  # n_params(RAW_PC_DARTS_CONFIG), checked in tests/test_darts.py
    description=("Raw PC-DARTS (Ge et al., ASVspoof 2021 workshop): 64 fixed mel-scale sinc filters (128 taps, "
                 "frequency masking in training), 8 searched cells (the paper's genotype, reduction cells 2 and "
                 "5), GRU 3 x 1024, P2SGrad output; the first 64000 samples (4 s; shorter clips repeated). The "
                 "authors' pre-trained models are in the Nextcloud share linked from the README of "
                 "github.com/eurecom-asp/raw-pc-darts-anti-spoofing (https://nextcloud.eurecom.fr/s/"
                 "4DeWffZH6YG8enq): pass the fixed-mel model's epoch_N.pth with --checkpoint PATH, or put it at "
                 "$BENCH_WEIGHTS_DIR/raw-pc-darts/fixed_mel.pth. It loads strictly as it is (a learnable-scale "
                 "model needs its own genotype and sinc_scale/sinc_learnable in the config). Score: cos theta "
                 "of the bona fide class, as the official evaluate.py writes."),
    extra={"score": "P2SGrad cos_theta[:, 1]", "reference": "eurecom-asp/raw-pc-darts-anti-spoofing models/model.py",
           "weights": "https://nextcloud.eurecom.fr/s/4DeWffZH6YG8enq (no published digest)"},
))

LIGHT_DARTS_CONFIG: dict[str, Any] = {
    "frontend": "ssl", "ssl_frontend": "wav2vec2", "frontend_config": XLSR_300M, "genotype": RAW_PC_DARTS,
    "layers": 4, "init_channels": 32, "gru_hsize": 256, "gru_layers": 2, "head": "p2sgrad", "nb_samp": 64000,
}

register_card(Card(
    name="light-darts",
    architecture="darts",
    config=LIGHT_DARTS_CONFIG,
    filename=None,
    url=None,
    licence="MIT (this implementation); XLS-R 300M weights: Apache-2.0 (facebook/wav2vec2-xls-r-300m)",
    training_data="none published: train with bench train (the paper: ASVspoof 2019 LA train)",
    published_eer="1.08% EER (ASVspoof 2019 LA eval; Wang et al. 2022, their searched cells)",
    params=317_083_360,  # XLS-R 300M (315,438,720) + projection, cells, GRU, head; checked in the tests
    description=("Light-DARTS (Wang et al., 'Fully Automated End-to-End Fake Audio Detection', DDAM 2022): wav2vec "
                 "2.0 XLS-R 300M hidden states (last layer), a linear projection to 32 channels, a light network "
                 "of 4 DARTS cells (reduction cells 1 and 2), GRU 2 x 256, P2SGrad output. No code, genotype or "
                 "weights were published: this card starts from the Raw PC-DARTS genotype; search your own with "
                 "bench train --search and train with bench train --model light-darts (set frontend_path: "
                 "facebook/wav2vec2-xls-r-300m to start from the pre-trained XLS-R). A trained checkpoint holds "
                 "the fine-tuned XLS-R, so scoring needs only this card's frontend_config."),
    extra={"score": "P2SGrad cos_theta[:, 1]", "pretrained_frontend": "facebook/wav2vec2-xls-r-300m",
           "xlsr_params": 315_438_720},
))
