"""Hostile audio files (issue 26, items 8 and 17): a header is checked before decoding, memory depends on the
limit and never on what the header claims, a path that is not a file says what it is, and a fuzz test throws
random bytes and random headers at the reader: every answer is audio or a named AudioError, in bounded memory."""
import os
import struct
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings, strategies as st

from foundation.audio import AudioError, describe_path, load_audio


def _flac(path, seconds=1.0, sr=16000, channels=1):
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32), sr,
             subtype="PCM_16")
    return path


def _patch_streaminfo(data: bytes, sr=None, channels=None, total=None) -> bytes:
    """A FLAC file with its STREAMINFO's rate, channel count or total samples replaced (the 64-bit field at
    offset 18: 20 bits rate, 3 bits channels - 1, 5 bits bits per sample - 1, 36 bits total samples)."""
    b = bytearray(data)
    v = int.from_bytes(b[18:26], "big")
    if sr is not None:
        v = (v & ~(((1 << 20) - 1) << 44)) | (sr << 44)
    if channels is not None:
        v = (v & ~(7 << 41)) | ((channels - 1) << 41)
    if total is not None:
        v = (v & ~((1 << 36) - 1)) | total
    b[18:26] = v.to_bytes(8, "big")
    return bytes(b)


def test_a_header_claiming_hours_is_refused_before_decoding(tmp_path):
    src = _flac(tmp_path / "a.flac", seconds=0.5)
    bomb = tmp_path / "claims.flac"
    bomb.write_bytes(_patch_streaminfo(src.read_bytes(), total=(1 << 36) - 1))   # 49.7 days at 16 kHz
    tracemalloc.start()
    try:
        with pytest.raises(AudioError, match=r"declares 4294967\.3 s of audio, more than the limit of 600 s "
                                             r"\(--max-seconds"):
            load_audio(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20   # nothing decoded


def test_decoding_stops_at_the_limit_whatever_the_header_says(tmp_path):
    long = _flac(tmp_path / "long.flac", seconds=3.0)
    with pytest.raises(AudioError, match=r"declares 3\.0 s of audio, more than the limit of 1 s"):
        load_audio(long, max_seconds=1)
    wav, info = load_audio(long, max_seconds=3)
    assert len(wav) == 48000 and info.duration_s == 3.0
    # a FLAC streamed without its length (STREAMINFO total 0, "unknown", as encoders writing to a pipe leave
    # it): nothing to check before decoding, so the only guard is the decoder's own count
    p = tmp_path / "stream.flac"
    p.write_bytes(_patch_streaminfo(long.read_bytes(), total=0))
    with pytest.raises(AudioError, match=r"longer than the limit of 1 s .*decoding stopped there"):
        load_audio(p, max_seconds=1)


def test_many_channels_at_a_high_rate_decode_into_mono_memory(tmp_path):
    """The issue's bomb, scaled down: 8 channels at 48 kHz (here 60 s of silence, a few KB of FLAC). Memory
    holds the 16 kHz mono result (3.8 MB) and one decoding block (4 MiB), not the 92 MB of decoded channels."""
    p = tmp_path / "eight.flac"
    with sf.SoundFile(p, "w", 48000, 8, subtype="PCM_16", format="FLAC") as f:
        for _ in range(60):
            f.write(np.zeros((48000, 8), np.float32))
    assert p.stat().st_size < 100_000
    tracemalloc.start()
    try:
        wav, info = load_audio(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(wav) == 60 * 16000 and info.orig_channels == 8 and info.channel_rms == (0.0,) * 8
    assert peak < 24e6, f"peak {peak / 1e6:.1f} MB (the decoded channels: {60 * 48000 * 8 * 4 / 1e6:.0f} MB)"


def test_a_rate_beyond_the_limit_is_refused(tmp_path):
    src = _flac(tmp_path / "a.flac", seconds=0.2)
    p = tmp_path / "fast.flac"
    p.write_bytes(_patch_streaminfo(src.read_bytes(), sr=655350))
    with pytest.raises(AudioError, match=r"sample rate of 655350 Hz; accepted: 1\.\.384000"):
        load_audio(p)


def test_a_clip_that_resamples_to_nothing_is_an_error(tmp_path):
    p = tmp_path / "one.wav"   # found by the fuzz test below: one sample at 32001 Hz is no sample at 16 kHz
    sf.write(p, np.array([0.5], np.float32), 32001)
    with pytest.raises(AudioError, match=r"only 1 samples at 32001 Hz: nothing is left at 16000 Hz"):
        load_audio(p)
    assert len(load_audio(p, target_sr=None)[0]) == 1


def test_paths_that_are_not_files_say_what_they_are(tmp_path):
    (tmp_path / "x.wav").mkdir()
    os.symlink(tmp_path / "gone.wav", tmp_path / "link.wav")
    os.mkfifo(tmp_path / "pipe.wav")
    cases = {"x.wav": "a directory, not an audio file", "link.wav": "a broken symbolic link (to ",
             "pipe.wav": "a named pipe (FIFO), not a regular file", "nothing.wav": "file not found"}
    for name, what in cases.items():
        assert what in describe_path(tmp_path / name)
        with pytest.raises(AudioError) as e:
            load_audio(tmp_path / name)
        assert what in str(e.value) and name in str(e.value)
    good = _flac(tmp_path / "good.flac", seconds=0.1)
    os.symlink(good, tmp_path / "ok.flac")
    assert describe_path(tmp_path / "ok.flac") is None and len(load_audio(tmp_path / "ok.flac")[0]) == 1600


def test_a_wrong_parameter_type_names_the_field():
    from perturbations import make

    with pytest.raises(ValueError, match=r"white-noise: parameter 'snr_db' must be a number, got 'ten' \(text\)"):
        make("white-noise", 1, snr_db="ten")
    with pytest.raises(ValueError, match=r"mp3: parameter 'bitrate' must be an integer, got 2\.5"):
        make("mp3", 1, bitrate=2.5)
    assert make("white-noise", 1, snr_db=7).params()["snr_db"] == 7   # an integer is a number


# ---- fuzz: random bytes and random headers --------------------------------------------------------------
LIMIT_S = 5.0
#: what the reader may allocate for one hostile file: the 5 s limit at the highest rate as float32 mono, plus a
#: decoding block (4 MiB) and numpy's temporaries; far below what a bomb asks for
MEMORY_BOUND = int(LIMIT_S * 384_000 * 4 * 3 + (16 << 20))
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_bounded(path):
    """load_audio under tracemalloc: (audio or the AudioError, peak bytes). Any other exception fails the test."""
    tracemalloc.start()
    try:
        try:
            got = load_audio(path, max_seconds=LIMIT_S)
        except AudioError as e:
            got = e
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if not isinstance(got, AudioError):
        wav, info = got
        assert wav.dtype == np.float32 and wav.ndim == 1 and len(wav) and np.all(np.isfinite(wav))
        assert info.duration_s <= LIMIT_S + 1e-9
    else:
        assert str(path) in str(got) and got.reason
    assert peak < MEMORY_BOUND, f"{peak / 1e6:.0f} MB"
    return got


@FUZZ
@given(data=st.binary(min_size=1, max_size=3000), ext=st.sampled_from([".wav", ".flac", ".mp3", ".ogg", ".m4a",
                                                                        ".aiff", ".bin"]))
def test_fuzz_random_bytes(tmp_path, data, ext):
    p = tmp_path / f"f{ext}"
    p.write_bytes(data)
    _read_bounded(p)


@FUZZ
@given(tag=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 0x55]), channels=st.integers(0, 70000),
       rate=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([8000, 16000, 48000, 384000, 384001])),
       bits=st.sampled_from([0, 8, 16, 24, 32, 64, 12, 65535]), declared=st.integers(0, 2**32 - 1),
       payload=st.binary(max_size=2000))
def test_fuzz_random_wav_headers(tmp_path, tag, channels, rate, bits, declared, payload):
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels & 0xFFFF, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", declared) + payload
    p = tmp_path / "h.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    _read_bounded(p)


@FUZZ
@given(rate=st.integers(0, (1 << 20) - 1), channels=st.integers(1, 8), total=st.integers(0, (1 << 36) - 1),
       cut=st.integers(0, 400))
def test_fuzz_random_flac_headers(tmp_path, rate, channels, total, cut):
    src = tmp_path / "src.flac"
    if not src.exists():
        _flac(src, seconds=0.3)
    data = _patch_streaminfo(src.read_bytes(), sr=rate, channels=channels, total=total)
    p = tmp_path / "h.flac"
    p.write_bytes(data[:len(data) - cut])
    _read_bounded(p)
