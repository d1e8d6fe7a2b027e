"""The replay family: each level's measurable quantities, measured from what it generates.

- ``rt60``: T20 of the room's generated impulse response (INTERFACE.md's definition);
- ``band_hz``: the loudspeaker response's -3 dB band (at 48 kHz, where every level's band fits);
- ``snr_db``: 10·log10(Σs²/Σn²) of the microphone's signal s against its self-noise n;
each within :data:`perturbations.replay.TOLERANCES`. Also: length, alignment, determinism, the
measured-response folder, validation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from perturbations import make
from perturbations._measure import alignment_lag, rt60_t20, snr_db
from perturbations.replay import LEVELS, TOLERANCES, Replay, measure_band

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    from foundation.audio import load_audio

    wav, _ = load_audio(ROOT / "bench" / "data" / "demo" / "audio" / "D0001.flac", 16000)
    return wav[:48000]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_measured_quantities_match_the_table(k, speech):
    p = make("replay", k)
    level = LEVELS[k - 1]
    for seed in (0, 1):
        h, _, _ = p.room_response(16000, np.random.default_rng(seed))
        assert abs(rt60_t20(h, 16000) / level["rt60"] - 1) <= TOLERANCES["rt60"]
    lo, hi = measure_band(p.loudspeaker_response(48000), 48000)
    assert abs(lo / level["band_hz"][0] - 1) <= TOLERANCES["band_hz"]
    assert abs(hi / level["band_hz"][1] - 1) <= TOLERANCES["band_hz"]
    st = p.render(speech, 16000, np.random.default_rng(0))
    assert abs(snr_db(st["mic"], st["mic"] + st["noise"]) - level["snr_db"]) <= TOLERANCES["snr_db"]


def test_ladder_grows_harsher():
    for a, b in zip(LEVELS, LEVELS[1:]):
        assert b["rt60"] > a["rt60"] and b["distance_m"] >= a["distance_m"] and b["snr_db"] < a["snr_db"]
        assert b["band_hz"][0] > a["band_hz"][0] and b["band_hz"][1] < a["band_hz"][1]


@pytest.mark.parametrize("k", [1, 5])
def test_length_alignment_level_and_determinism(k, speech):
    p = make("replay", k)
    y = p(speech, 16000, np.random.default_rng(3))
    assert y.shape == speech.shape
    assert abs(alignment_lag(speech, y, max_lag=2000)) <= 2
    assert np.sqrt(np.mean(y.astype(np.float64) ** 2)) == pytest.approx(
        np.sqrt(np.mean(speech.astype(np.float64) ** 2)), rel=1e-3)
    assert np.array_equal(y, p(speech, 16000, np.random.default_rng(3)))
    assert not np.array_equal(y, p(speech, 16000, np.random.default_rng(4)))


def test_measured_device_responses(tmp_path, speech):
    import soundfile as sf
    from scipy.signal import firwin

    from perturbations import Context

    folder = tmp_path / "devices"
    folder.mkdir()
    sf.write(folder / "phone.wav", firwin(255, [400, 6000], fs=16000, pass_zero=False), 16000)
    p = make("replay", 5, measured=True)
    y = p(speech, 16000, np.random.default_rng(0), Context(resources={"device_ir_dir": str(folder)}))
    assert y.shape == speech.shape and abs(alignment_lag(speech, y, max_lag=2000)) <= 2
    with pytest.raises(FileNotFoundError, match="BENCH_DEVICE_IR_DIR"):
        p(speech, 16000, np.random.default_rng(0), Context())


@pytest.mark.parametrize("field,bad", [("band_hz", (5000.0, 6000.0)), ("distance_m", 30.0), ("snr_db", 500.0),
                                       ("rt60", 9.0), ("measured", "yes")])
def test_validate_names_the_field(field, bad):
    with pytest.raises(ValueError, match=field):
        make("replay", 2, **{field: bad})


def test_round_trip_through_dict():
    from perturbations import Perturbation

    p = make("replay", 4)
    q = Perturbation.from_dict(p.to_dict())
    assert isinstance(q, Replay) and q == p and q.key() == p.key()
