"""Preparation on the scoring device (``--prepare-on device``): every family that implements ``apply_torch``
gives the audio of its numpy path (same generator stream, float64 arithmetic) on the CPU device, keeps its
calibration, and a run prepared on the device scores what a run prepared in the CPU workers scores."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from bench import api
from perturbations import PERTURBATIONS, Context
from resource_folders import write_resource_folders
from perturbations._measure import snr_db

DEMO = Path(__file__).resolve().parents[1] / "bench" / "data" / "demo"
SR = 16000
ON_DEVICE = [n for n, c in PERTURBATIONS.items() if n not in ("clean", "chain") and c.at(1).on_device]


@pytest.fixture(scope="module")
def clips():
    with open(DEMO / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "bonafide"][:4]
    return [(r["utt_id"], sf.read(DEMO / r["path"], dtype="float32")[0][:2 * SR]) for r in rows]


@pytest.fixture(scope="module")
def context(clips, tmp_path_factory):
    resources = write_resource_folders(tmp_path_factory.mktemp("res"), seed=1)

    def pool(rng, n, exclude=""):
        cands = [w for u, w in clips if u != exclude]
        return [cands[i] for i in rng.choice(len(cands), size=n, replace=len(cands) < n)]

    return lambda utt: Context(utt_id=utt, pool=pool, resources=resources)


def test_the_device_families_include_the_issue_list():
    assert {"white-noise", "pink-noise", "brown-noise", "babble", "background-noise", "room", "rir", "gain",
            "clipping", "quantization", "packet-loss", "resample", "telephone"} <= set(ON_DEVICE)
    assert not PERTURBATIONS.get("mp3").at(1).on_device          # codecs stay in the CPU workers


@pytest.fixture(scope="module")
def codec_weights(tmp_path_factory):
    """Tiny random neural codecs (tests/tiny_codecs.py) for the families that need weights."""
    from tiny_codecs import build_tiny_codecs

    return {fam: str(path) for fam, path in build_tiny_codecs(tmp_path_factory.mktemp("codecs")).items()}


@pytest.mark.parametrize("family", ON_DEVICE)
def test_device_path_matches_the_numpy_path(family, clips, context, request):
    cls = PERTURBATIONS.get(family)
    weights = {}
    if "checkpoint" in cls.parameter_names():   # a neural codec: tiny random weights
        weights = {"checkpoint": request.getfixturevalue("codec_weights")[family]}
    for k in range(1, len(cls.LEVELS) + 1):
        p = cls.at(k, **weights)
        for utt, wav in clips[:2]:
            want = p(wav, SR, np.random.default_rng([k, 5]), context(utt))
            got = p.device_call(torch.from_numpy(wav), SR, np.random.default_rng([k, 5]), context(utt))
            assert got.dtype == torch.float32 and got.shape == (wav.size,)
            np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=0, err_msg=f"{family}@{k} {utt}")


@pytest.mark.parametrize("family", [f for f in ON_DEVICE if "snr_db" in PERTURBATIONS.get(f).LEVELS[0]])
def test_device_path_meets_the_snr_ladder(family, clips, context):
    cls = PERTURBATIONS.get(family)
    for k, level in enumerate(cls.LEVELS, start=1):
        utt, wav = clips[0]
        y = cls.at(k).device_call(torch.from_numpy(wav), SR, np.random.default_rng(k), context(utt)).numpy()
        assert snr_db(wav, y) == pytest.approx(level["snr_db"], abs=0.01)


def test_a_run_prepared_on_the_device_scores_like_one_prepared_in_workers(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: dev\nconditions:\n  - {family: white-noise, severities: [3]}\n"
                     "  - {family: room, severities: [2]}\n  - {family: clipping, severities: [4]}\n"
                     "  - {chain: [room, pink-noise], severities: [1]}\n  - {family: mp3, severities: [5]}\n")
    kw = dict(models=("aasist-l",), limit=4, device="cpu", workers=1, n_boot=20)
    cpu = api.run(str(suite), out=str(tmp_path / "cpu"), prepare_on="cpu", **kw)
    dev = api.run(str(suite), out=str(tmp_path / "dev"), prepare_on="device", **kw)
    a, b = (r.scores.set_index(["family", "severity", "utt_id"])["score"].sort_index() for r in (cpu, dev))
    assert len(a) == 6 * 4 and a.index.equals(b.index)
    np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), atol=1e-5)
    assert dev.provenance["config"]["resolved_prepare_on"] == "device"
    with pytest.raises(ValueError, match="prepare-on"):
        api.run(str(suite), out=str(tmp_path / "bad"), prepare_on="gpu", **kw)
    assert isinstance(pd.read_csv(tmp_path / "dev" / "results.csv"), pd.DataFrame)


@pytest.mark.parametrize("rates", [(16000, 8000), (8000, 16000), (16000, 11025), (44100, 16000), (16000, 3000)])
def test_device_resampling_is_scipys_polyphase(rates):
    from scipy.signal import resample_poly

    from perturbations import _torch

    a, b = rates
    g = np.gcd(a, b)
    for n in (2, 999, 16001):
        x = np.random.default_rng(n).standard_normal(n)
        want = resample_poly(x, b // g, a // g)
        got = _torch.resample(torch.from_numpy(x), a, b).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-9, rtol=0)


def _filters():
    from scipy.signal import butter, ellip

    from perturbations.channel.telephone import Telephone

    tel = Telephone.at(5)
    return {"telephone@8k": tel._sos(8000), "telephone@16k": tel._sos(16000),
            "lowpass-2": butter(2, 0.2, output="sos"), "highpass-8": butter(8, 0.01, btype="high", output="sos"),
            "elliptic-band": ellip(6, 0.5, 60, [0.1, 0.3], btype="band", output="sos")}


@pytest.mark.parametrize("name", list(_filters()))
def test_device_sosfiltfilt_is_scipys(name):
    from scipy.signal import sosfiltfilt

    from perturbations import _torch

    sos = _filters()[name]
    padlen = 3 * (2 * len(sos) + 1 - min((sos[:, 2] == 0).sum(), (sos[:, 5] == 0).sum()))
    for n in (padlen + 1, padlen + 7, 1000, 16001):
        x = 0.5 + 0.3 * np.random.default_rng(n).standard_normal(n)   # an offset: the steady-state start matters
        want = sosfiltfilt(sos, x)
        got = _torch.sosfiltfilt(torch.from_numpy(x), sos)
        assert got.dtype == torch.float64 and got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, atol=1e-9, rtol=0, err_msg=f"{name} n={n}")
    with pytest.raises(ValueError, match="padlen"):
        sosfiltfilt(sos, np.ones(padlen))
    with pytest.raises(ValueError, match=f"padlen, which is {padlen}"):
        _torch.sosfiltfilt(torch.ones(padlen, dtype=torch.float64), sos)


def test_device_sosfiltfilt_refuses_a_filter_that_does_not_decay():
    from perturbations import _torch

    unstable = np.array([[1.0, 0.0, 0.0, 1.0, -1.001, 0.0]])   # a pole outside the unit circle
    with pytest.raises(ValueError, match="does not decay"):
        _torch.sosfiltfilt(torch.ones(100, dtype=torch.float64), unstable)
