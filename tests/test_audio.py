"""foundation.audio: decoding every supported format, mono mixing, resampling, broken files."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foundation.audio import AudioError, AudioInfo, load_audio, resample, save_audio


def tone(sr: int, seconds: float = 1.0, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_m4a(path: Path, wav: np.ndarray, sr: int) -> None:
    import av

    with av.open(str(path), "w") as c:
        st = c.add_stream("aac", rate=sr)
        st.layout = "mono"
        n = 1024
        for i in range(0, len(wav), n):
            fr = av.AudioFrame.from_ndarray(wav[None, i:i + n].astype(np.float32), format="fltp", layout="mono")
            fr.sample_rate = sr
            for pkt in st.encode(fr):
                c.mux(pkt)
        for pkt in st.encode(None):
            c.mux(pkt)


def corr_at_best_lag(a: np.ndarray, b: np.ndarray, max_lag: int = 3000) -> float:
    n = min(len(a), len(b)) - max_lag
    best = 0.0
    for lag in range(0, max_lag, 1):
        x, y = a[:n], b[lag:lag + n]
        best = max(best, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-12)))
    return best


@pytest.mark.parametrize("ext,tol", [(".wav", 1e-4), (".flac", 1e-4), (".ogg", None), (".mp3", None)])
def test_soundfile_formats_round_trip(tmp_path, ext, tol):
    x = tone(16000)
    p = save_audio(tmp_path / f"a{ext}", x, 16000)
    y, info = load_audio(p)
    assert y.dtype == np.float32 and y.ndim == 1
    assert info == AudioInfo(orig_sr=16000, orig_channels=1, duration_s=pytest.approx(len(y) / 16000),
                             path=str(p), decoder="soundfile")
    if tol is not None:   # lossless: 16-bit quantisation only
        assert len(y) == len(x)
        assert np.max(np.abs(y - x)) < tol
    else:                 # lossy: same length within a frame, same tone
        assert abs(len(y) - len(x)) <= 1152
        assert corr_at_best_lag(x, y, 1200) > 0.95


def test_m4a_goes_through_pyav(tmp_path):
    x = tone(16000, seconds=1.0)
    p = tmp_path / "a.m4a"
    write_m4a(p, x, 16000)
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(p))                     # libsndfile really cannot read it
    y, info = load_audio(p)
    assert info.decoder == "pyav" and info.orig_sr == 16000 and info.orig_channels == 1
    assert abs(len(y) - len(x)) <= 2048
    assert corr_at_best_lag(x, y, 2100) > 0.95


def test_stereo_is_averaged_to_mono(tmp_path):
    left, right = tone(16000, freq=300), tone(16000, freq=700, amp=0.1)
    p = tmp_path / "st.wav"
    sf.write(str(p), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y, info = load_audio(p)
    assert info.orig_channels == 2
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("sr", [44100, 8000])
def test_resampled_to_target_rate(tmp_path, sr):
    x = tone(sr, seconds=1.0, freq=1000)
    p = tmp_path / f"r{sr}.wav"
    sf.write(str(p), x, sr, subtype="FLOAT")
    y, info = load_audio(p, target_sr=16000)
    assert info.orig_sr == sr and info.duration_s == pytest.approx(1.0)
    assert len(y) == 16000
    ref = tone(16000, seconds=1.0, freq=1000)
    # same phase, same amplitude away from the edges
    np.testing.assert_allclose(y[800:-800], ref[800:-800], atol=2e-3)
    y2, _ = load_audio(p, target_sr=None)
    assert len(y2) == sr


def test_resampler_rejects_aliases():
    sr = 44100
    t = np.arange(sr) / sr
    above = np.sin(2 * np.pi * 9000 * t)          # above the 8 kHz Nyquist of 16 kHz
    y = resample(above, sr, 16000)
    assert 10 * np.log10(np.mean(y[2000:-2000] ** 2) / 0.5) < -100


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found") as e:
        load_audio(tmp_path / "nope.wav")
    assert e.value.path.endswith("nope.wav")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(p)


def test_garbage_bytes(tmp_path):
    p = tmp_path / "garbage.wav"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as e:
        load_audio(p)
    assert e.value.path == str(p) and e.value.reason


def test_truncated_header(tmp_path):
    good = save_audio(tmp_path / "good.wav", tone(16000), 16000)
    p = tmp_path / "hdr.wav"
    p.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError):
        load_audio(p)


def test_truncated_wav_data(tmp_path):
    good = save_audio(tmp_path / "good.wav", tone(16000), 16000)
    p = tmp_path / "half.wav"
    p.write_bytes(good.read_bytes()[:16000])
    with pytest.raises(AudioError, match="truncated"):
        load_audio(p)


def test_truncated_flac(tmp_path):
    good = save_audio(tmp_path / "good.flac", np.random.default_rng(1).uniform(-.5, .5, 32000), 16000)
    p = tmp_path / "half.flac"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(AudioError):
        load_audio(p)


def test_nan_samples(tmp_path):
    x = tone(16000)
    x[100] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(str(p), x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_audio(p)


def test_zero_frames(tmp_path):
    p = tmp_path / "zero.wav"
    sf.write(str(p), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError):
        load_audio(p)


def test_save_audio_clips_and_validates(tmp_path):
    p = save_audio(tmp_path / "sub" / "loud.wav", np.array([0.0, 2.0, -3.0, 0.5], np.float32), 16000)
    y, _ = load_audio(p, target_sr=None)
    assert y.max() <= 1.0 and y.min() >= -1.0 and y[1] > 0.99 and y[2] < -0.99
    with pytest.raises(ValueError, match="extension"):
        save_audio(tmp_path / "x.m4a", np.zeros(10), 16000)
    with pytest.raises(ValueError, match="non-finite"):
        save_audio(tmp_path / "x.wav", np.array([0.0, np.inf]), 16000)
    f = save_audio(tmp_path / "f.wav", np.array([0.0, 0.25, 1.5]), 8000, subtype="FLOAT")
    y, info = load_audio(f, target_sr=None)
    assert info.orig_sr == 8000 and y[2] == pytest.approx(1.5)
