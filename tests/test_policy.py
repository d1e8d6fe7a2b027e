"""Input policies: the official length fix, whole-utterance windows, aggregation, batching, spelling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.scoring.windows import Policy, fix_length, parse_policy
from bench.scoring.score import score_batch
from models.base import Detector


class FirstSample(Detector):
    """A stand-in detector whose score is the first sample of each input (so scores name the window)."""

    def __init__(self, nb_samp: int = 10, sample_rate: int = 8000):
        super().__init__()
        self.nb_samp = nb_samp
        self.sample_rate = sample_rate
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.batches: list[tuple[int, int]] = []

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        assert wav.dim() == 2 and wav.dtype == torch.float32
        self.batches.append(tuple(wav.shape))
        return wav[:, 0] + self.dummy


def ramp(n: int, offset: float = 0.0) -> np.ndarray:
    return (np.arange(n) + offset).astype(np.float32)


# ---- the official length fix -------------------------------------------------------------------

def test_official_keeps_the_first_nb_samp_samples():
    wav = ramp(37)
    out = Policy("official").windows(wav, 10)
    assert out.shape == (1, 10)
    np.testing.assert_array_equal(out[0], wav[:10])


def test_official_tiles_a_short_clip_with_whole_copies():
    wav = ramp(3, offset=1)
    np.testing.assert_array_equal(fix_length(wav, 10), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    long = np.sin(np.arange(16000, dtype=np.float32))
    fixed = fix_length(long, 64600)
    assert fixed.shape == (64600,)
    np.testing.assert_array_equal(fixed, long[np.arange(64600) % 16000])


@pytest.mark.parametrize("name", ["official", "full"])
def test_exactly_nb_samp_is_one_untouched_window(name):
    # the release's training crop (pad_random) crashes on exactly 64600 samples; ours must not
    wav = np.random.default_rng(0).standard_normal(64600).astype(np.float32)
    out = Policy(name).windows(wav, 64600)
    assert out.shape == (1, 64600)
    np.testing.assert_array_equal(out[0], wav)
    det = FirstSample(nb_samp=64600)
    assert score_batch(det, [wav], name)[0] == pytest.approx(float(wav[0]))


def test_one_sample_clip_is_tiled():
    out = Policy("full").windows(np.array([0.25], dtype=np.float32), 10)
    np.testing.assert_array_equal(out, np.full((1, 10), 0.25, dtype=np.float32))


# ---- whole-utterance windows -------------------------------------------------------------------

@pytest.mark.parametrize("length, hop, starts", [
    (25, 5, [0, 5, 10, 15]),          # the last regular window ends exactly at the end
    (27, 5, [0, 5, 10, 15, 17]),      # one more window, aligned to the end
    (27, None, [0, 5, 10, 15, 17]),   # default hop = nb_samp // 2
    (11, 20, [0, 1]),                 # hop longer than the window: still ends at the end
    (10, 3, [0]),
])
def test_full_window_starts_cover_the_clip(length, hop, starts):
    wav = ramp(length)
    out = Policy("full", hop=hop).windows(wav, 10)
    np.testing.assert_array_equal(out[:, 0], starts)
    for row, s in zip(out, starts, strict=True):
        np.testing.assert_array_equal(row, wav[s:s + 10])
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s:s + 10] = True
    assert covered.all()


@pytest.mark.parametrize("agg, reduce", [("mean", np.mean), ("max", np.max), ("min", np.min),
                                         ("median", np.median)])
def test_full_aggregates_window_scores(agg, reduce):
    det = FirstSample(nb_samp=10)
    wavs = [ramp(27), ramp(4, offset=7), ramp(40, offset=-3)]
    got = score_batch(det, wavs, Policy("full", hop=4, agg=agg), batch_size=3)
    expected = [reduce([0, 4, 8, 12, 16, 17]), 7.0, reduce(np.array([0, 4, 8, 12, 16, 20, 24, 28, 30]) - 3)]
    np.testing.assert_allclose(got, expected)


def test_official_scores_one_crop_per_utterance():
    det = FirstSample(nb_samp=10)
    got = score_batch(det, [ramp(27, 5), ramp(3, 2)], "official", batch_size=8)
    np.testing.assert_array_equal(got, [5.0, 2.0])
    assert det.batches == [(2, 10)]


def test_batching_does_not_change_scores_and_respects_batch_size():
    rng = np.random.default_rng(1)
    wavs = [rng.standard_normal(n).astype(np.float32) for n in (5, 10, 33, 61, 12)]
    ref = score_batch(FirstSample(), wavs, "full:hop=7,agg=max", batch_size=1)
    for bs in (2, 3, 64):
        det = FirstSample()
        np.testing.assert_array_equal(score_batch(det, wavs, "full:hop=7,agg=max", batch_size=bs), ref)
        assert all(b <= bs for b, _ in det.batches)
        n_windows = sum(len(Policy("full", hop=7).windows(w, 10)) for w in wavs)
        assert sum(b for b, _ in det.batches) == n_windows


def test_policy_uses_the_detectors_window():
    det = FirstSample(nb_samp=6, sample_rate=22050)
    score_batch(det, [ramp(20)], "full")
    assert {t for _, t in det.batches} == {6}


# ---- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("wav, words", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((2, 100), np.float32), "mono"),
    (np.zeros(100, np.int16), "int16"),
])
def test_bad_clips_are_refused_with_their_index(wav, words):
    with pytest.raises(ValueError, match=words) as e:
        score_batch(FirstSample(), [ramp(20), wav], "official")
    assert "utterance 1" in str(e.value)


# ---- spelling and provenance ---------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("official", Policy("official")),
    ("full", Policy("full")),
    ("full:hop=32000", Policy("full", hop=32000)),
    ("full:hop=32000,agg=max", Policy("full", hop=32000, agg="max")),
    (" full : agg=median , hop=100 ", Policy("full", hop=100, agg="median")),
])
def test_parse_and_round_trip(spec, expected):
    p = parse_policy(spec)
    assert p == expected
    assert Policy.parse(str(p)) == p
    assert Policy.from_dict(p.to_dict()) == p


def test_resolved_records_the_hop_actually_used():
    assert Policy("full").resolved(64600) == {"name": "full", "hop": 32300, "agg": "mean", "window": 64600}
    assert Policy("official").resolved(64600)["window"] == 64600


@pytest.mark.parametrize("spec, words", [
    ("sliding", "unknown input policy"),
    ("full:agg=mode", "unknown aggregation"),
    ("full:hop=0", "positive"),
    ("full:hop=1.5", "whole number"),
    ("full:stride=3", "unknown policy option"),
    ("full:hop", "key=value"),
    ("official:hop=100", "no hop or agg"),
    ("", "string like"),
])
def test_bad_specs_are_refused(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_policy(spec)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="window"):
        Policy.from_dict({"name": "full", "window": 3})
