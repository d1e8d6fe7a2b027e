"""Scoring engine (bench/scoring/engine.py): batch size (auto, out-of-memory splits), precision, compilation.

A GPU does not exist here: the device's out-of-memory error is raised by a detector that refuses big
batches (the one stand-in), the probe's arithmetic is tested as a function, and compilation runs on the
CPU (inductor), which exercises the same engine code as CUDA graphs on a GPU.
"""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from bench.scoring.engine import AUTO_CAP, CPU_BATCH, Engine, InferenceOptions, fit_batch, parse_batch_size
from bench.scoring.score import score_batch
from models.base import Detector


class Small(Detector):
    """A few real layers (conv, pooling, linear) so that compilation has something to fuse."""
    nb_samp = 800

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv1d(1, 4, 9)
        self.fc = torch.nn.Linear(4, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    @classmethod
    def from_config(cls, config):
        return cls()

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(wav.unsqueeze(1))).amax(dim=2)
        return self.fc(h).squeeze(1)


class RefusesBigBatches(Small):
    """Raises the device's out-of-memory error above ``limit`` rows (what a GPU does when a batch is too big)."""
    limit = 3

    def forward(self, wav):
        if wav.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (test: {wav.shape[0]} rows > {self.limit})")
        return super().forward(wav)


class DiffersWhenCompiled(Small):
    def forward(self, wav):
        out = super().forward(wav)
        return out + 1.0 if torch.compiler.is_compiling() else out


@pytest.fixture(scope="module")
def aasist_l():
    from models import load_detector

    return load_detector("aasist-l", device="cpu").detector.eval()


def _clips(n: int, length: int = 800, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(length)).astype(np.float32) for _ in range(n)]


def test_fit_batch_is_the_largest_power_of_two_within_the_share_and_cap():
    assert fit_batch(free_bytes=100e9, per_row_bytes=100e6) == AUTO_CAP     # 600 rows would fit: capped
    assert fit_batch(free_bytes=10e9, per_row_bytes=100e6) == 32           # 60 rows fit in 60%: 32
    assert fit_batch(free_bytes=10e9, per_row_bytes=100e6, share=1.0) == 64
    assert fit_batch(free_bytes=1e6, per_row_bytes=100e6) == 1              # nothing fits: one row, then split
    assert fit_batch(free_bytes=1e9, per_row_bytes=0) == AUTO_CAP


def test_batch_size_and_options_are_checked():
    assert parse_batch_size("auto") == "auto" and parse_batch_size("12") == 12 and parse_batch_size(3) == 3
    for bad in (0, -1, "0", "x", True, 2.5):
        with pytest.raises(ValueError, match="--batch-size"):
            parse_batch_size(bad)
    with pytest.raises(ValueError, match="--precision"):
        InferenceOptions(precision="int8")
    with pytest.raises(ValueError, match="--compile"):
        InferenceOptions(compile="fast")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        InferenceOptions(precision="fp16").check_device("cpu")
    assert InferenceOptions(batch_size="auto").attack_batch("cpu") == 8
    assert InferenceOptions(batch_size="auto").attack_batch("cuda:0") == 32


def test_auto_on_a_cpu_is_eight_and_default_engine_is_the_detectors_own_score():
    det = Small().eval()
    eng = Engine(det, InferenceOptions(batch_size="auto"), "cpu")
    assert eng.batch_size(800) == CPU_BATCH
    x = torch.from_numpy(np.stack(_clips(5)))
    assert torch.equal(eng.score(x), det.score(x))
    assert eng.report()["batch_size"] == {"800": CPU_BATCH}


def test_out_of_memory_splits_the_batch_and_keeps_the_smaller_size(caplog):
    det = RefusesBigBatches().eval()
    wavs = _clips(11)
    ref = score_batch(Small().eval(), wavs, "official", batch_size=1)
    eng = Engine(det, InferenceOptions(batch_size=8), "cpu", "refuser")
    with caplog.at_level(logging.WARNING, logger="bench.scoring.engine"):
        got = score_batch(det, wavs, "official", engine=eng)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    assert eng.batch_size(800) == 2            # 8 -> 4 -> 2 rows, kept for the rest of the run
    assert eng.report()["out_of_memory_splits"] >= 2
    assert "out of device memory at a batch of 8 windows" in caplog.text
    with pytest.raises(torch.OutOfMemoryError):   # one row that does not fit is the run's error, not a loop
        RefusesBigBatches.limit = 0
        try:
            Engine(det, InferenceOptions(batch_size=1), "cpu").score(torch.zeros(1, 800))
        finally:
            RefusesBigBatches.limit = 3


def test_bf16_is_applied_measured_and_recorded(aasist_l):
    wavs = _clips(6, 64600, seed=1)
    fp32 = score_batch(aasist_l, wavs, "official", batch_size=6)
    eng = Engine(aasist_l, InferenceOptions(batch_size=6, precision="bf16"), "cpu")
    bf16 = score_batch(aasist_l, wavs, "official", engine=eng)
    diff = float(np.max(np.abs(bf16 - fp32)))
    assert 0 < diff < 0.25                      # bf16 really used, and close (measured ~0.03 on logits ~ -4)
    assert eng.report()["precision_max_abs_diff"] == pytest.approx(diff, abs=1e-5)


def test_compile_pads_to_one_static_shape_and_matches_eager():
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    dynamo.reset()
    counters.clear()
    det = Small().eval()
    wavs = _clips(11)
    ref = score_batch(det, wavs, "official", batch_size=4)
    eng = Engine(det, InferenceOptions(batch_size=4, compile="default"), "cpu", "small")
    got = score_batch(det, wavs, "official", engine=eng)       # batches of 4, 4 and 3 (padded to 4)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    rep = eng.report()["compile"]
    assert rep["used"] is True and rep["mode"] == "default" and rep["max_abs_diff_to_eager"] <= 1e-4
    assert counters["stats"]["unique_graphs"] == 1             # the short last batch did not recompile


def test_compiled_scores_that_differ_from_eager_are_refused(caplog):
    import torch._dynamo as dynamo

    dynamo.reset()
    det = DiffersWhenCompiled().eval()
    wavs = _clips(6)
    eng = Engine(det, InferenceOptions(batch_size=4, compile="default"), "cpu", "liar")
    with caplog.at_level(logging.WARNING, logger="bench.scoring.engine"):
        got = score_batch(det, wavs, "official", engine=eng)
    np.testing.assert_allclose(got, score_batch(Small().eval(), wavs, "official", batch_size=4), atol=1e-6)
    rep = eng.report()["compile"]
    assert rep["used"] is False and rep["max_abs_diff_to_eager"] == pytest.approx(1.0, abs=1e-5)
    assert "scoring eagerly" in caplog.text


def test_a_bf16_run_has_its_own_identity_and_records_what_the_engine_measured(tmp_path):
    from bench import api

    kw = dict(models=("aasist-l",), limit=4, workers=0, progress=False, n_boot=10, batch_size=4)
    res = api.run("clean", out=tmp_path / "bf16", precision="bf16", **kw)
    prov = json.loads((res.out / "run.json").read_text())
    assert prov["config"]["precision"] == "bf16"
    eng = prov["inference"]["aasist-l"]
    assert eng["options"] == {"batch_size": 4, "precision": "bf16", "compile": "off"}
    assert 0 < eng["precision_max_abs_diff"] < 0.25
    timing = prov["timing"]   # where the scorer's time went: waiting for prepared audio vs scoring
    assert timing["scoring_s"] > 0 and timing["waiting_for_preparation_s"] >= 0
    assert 0 <= timing["waiting_share"] <= 1
    with pytest.raises(ValueError, match="different configuration|identity|another run"):
        api.run("clean", out=tmp_path / "bf16", precision="fp32", **kw)   # would mix fp32 into bf16 scores


def test_cli_refuses_bad_inference_options_before_any_work(tmp_path, capsys):
    from bench.cli import main

    assert main(["run", "--suite", "clean", "--device", "cpu", "--precision", "fp16", "--out",
                 str(tmp_path / "r")]) == 1
    assert "--precision fp16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main(["score", "--batch-size", "0", "x.wav"]) == 1
    assert "--batch-size must be auto or an integer >= 1, got 0" in capsys.readouterr().err


class NoParameters(Detector):
    """Like a served model: the scores come from elsewhere, nothing here to autocast or compile."""
    nb_samp = 800

    @classmethod
    def from_config(cls, config):
        return cls()

    def forward(self, wav):
        return wav.mean(dim=1)


def test_precision_and_compile_do_not_apply_to_a_detector_without_parameters(caplog):
    det = NoParameters()
    with caplog.at_level(logging.WARNING, logger="bench.scoring.engine"):
        eng = Engine(det, InferenceOptions(batch_size=4, precision="bf16", compile="on"), "cpu", "served")
    assert eng.options.precision == "fp32" and eng.options.compile == "off"
    assert "do not apply" in caplog.text and "not applicable" in eng.report()["note"]
    x = torch.from_numpy(np.stack(_clips(3)))
    assert torch.equal(eng.score(x), det.score(x))


def test_the_report_stays_small_when_every_clip_has_its_own_length():
    det = Small().eval()
    wavs = [w[:100 + i] for i, w in enumerate(_clips(20))]         # the whole policy: one window length per clip
    eng = Engine(det, InferenceOptions(batch_size="auto"), "cpu")
    got = score_batch(det, wavs, "whole", engine=eng)
    np.testing.assert_allclose(got, [float(det.score(torch.from_numpy(w)[None])[0]) for w in wavs], atol=1e-6)
    rep = eng.report()
    assert len(rep["batch_size"]) == 16 and rep["more_window_lengths"] == 4
