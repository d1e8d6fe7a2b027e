"""Robust audio input and output.

:func:`load_audio` returns a float32 mono waveform at the requested rate, or raises
:class:`AudioError` naming the file and the reason; it never returns silence for a broken file.

* Decoding: soundfile (libsndfile: wav, flac, ogg/vorbis/opus, mp3, aiff, ...) first; files whose
  format libsndfile does not recognise (m4a/aac, webm, wma, ...) go to PyAV (FFmpeg). A file that
  libsndfile recognises but cannot decode (a flac that loses sync) is an error, not a fallback, so
  a damaged file is never half-decoded by a second decoder.
* A RIFF/WAVE file whose ``data`` chunk declares more bytes than the file holds is truncated and
  rejected (libsndfile would silently return the part that is there).
* Channels are averaged to mono (no -3 dB pan law, so a mono file stored as identical stereo
  channels reads back unchanged).
* Resampling: soxr at "VHQ" quality. Measured here (44.1 and 48 kHz -> 16 kHz): flat to -0.0 dB at
  7.2 kHz and tones above the new Nyquist attenuated by more than 180 dB, in 6-7 ms per 10 s of
  audio. scipy's ``resample_poly`` with its default Kaiser window loses 0.7 dB at 7.2 kHz and lets
  an 8.4 kHz tone alias back at only -12 dB, and is slower; a detector that looks at the top
  band (AASIST's sinc filters reach 8 kHz) should not see resampling artefacts.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: save_audio: subtype chosen by the file extension (libsndfile names).
SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS", ".oga": "VORBIS",
            ".mp3": "MPEG_LAYER_III", ".aiff": "PCM_16", ".aif": "PCM_16"}
_INTEGER_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}


class AudioError(Exception):
    """An audio file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    orig_sr: int
    orig_channels: int
    duration_s: float
    path: str
    decoder: str = "soundfile"


def _check_wav_truncation(path: Path) -> None:
    """Raise when a RIFF/WAVE ``data`` chunk claims more bytes than the file has."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, clen = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                # 0 and 0xFFFFFFFF are "unknown length" markers written by streaming tools
                if clen not in (0, 0xFFFFFFFF) and pos + 8 + clen > size:
                    raise AudioError(path, f"truncated WAV: the data chunk declares {clen} bytes "
                                           f"but the file holds {size - pos - 8}")
                return
            pos += 8 + clen + (clen & 1)


def _decode_soundfile(path: Path):
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except sf.LibsndfileError as e:
        return None, f"soundfile cannot open it ({e.error_string})"
    except Exception as e:  # noqa: BLE001 - any opening failure is reported with its reason
        return None, f"soundfile cannot open it ({type(e).__name__}: {e})"
    with f:
        if f.format == "WAV" or f.format == "WAVEX":
            _check_wav_truncation(path)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except Exception as e:  # noqa: BLE001
            raise AudioError(path, f"undecodable {f.format} data ({e})") from e
        return (data, int(f.samplerate), int(f.channels)), None


def _decode_pyav(path: Path, sf_reason: str):
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise AudioError(path, "this format needs PyAV: pip install av") from e
    chunks = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(path, "the container has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp")   # keep layout and rate, planar float
            sr, channels = 0, 0
            for frame in container.decode(stream):
                sr = sr or int(frame.sample_rate)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001 - FFmpeg errors come in many classes
        raise AudioError(path, f"undecodable: {sf_reason}; PyAV: {type(e).__name__}: {e}") from e
    if not chunks:
        raise AudioError(path, "no audio samples decoded (empty stream)")
    channels = max(c.shape[0] for c in chunks)
    data = np.concatenate([c if c.shape[0] == channels else np.repeat(c[:1], channels, 0)
                           for c in chunks], axis=1).T.astype(np.float32, copy=False)
    return data, sr or int(stream.codec_context.sample_rate), channels


def resample(wav: np.ndarray, orig_sr: int, target_sr: int, method: str = "soxr") -> np.ndarray:
    """The project's one resampler, for a 1-D waveform.

    ``method="soxr"`` (reading files; float32 out): soxr VHQ, flat to 7.2 kHz and alias-free (see above).
    ``method="polyphase"`` (inside perturbations; float64 out): scipy's ``resample_poly``, linear phase
    with its delay compensated, so input and output stay sample-aligned -- what codec round trips and
    measurements need, and what every perturbation's ladder was calibrated with (changing it would change
    their output and their version).
    """
    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    g = gcd(orig_sr, target_sr)
    if method == "polyphase":
        x = np.asarray(wav, dtype=np.float64)
        if orig_sr == target_sr or x.size == 0:
            return x.copy()
        from scipy.signal import resample_poly

        return resample_poly(x, target_sr // g, orig_sr // g)
    if method != "soxr":
        raise ValueError(f"resample: unknown method {method!r}; choose soxr or polyphase")
    if orig_sr == target_sr:
        return np.asarray(wav, dtype=np.float32)
    try:
        import soxr
    except ImportError as e:
        raise ImportError("resampling needs soxr: pip install soxr") from e
    log.debug("resampling %d -> %d Hz (ratio %d/%d)", orig_sr, target_sr, target_sr // g, orig_sr // g)
    out = soxr.resample(np.asarray(wav, dtype=np.float64), orig_sr, target_sr, quality="VHQ")
    return out.astype(np.float32)


def load_audio(path, target_sr: int | None = 16000) -> tuple[np.ndarray, AudioInfo]:
    """Read any supported audio file as ``(float32 mono waveform, AudioInfo)``.

    ``target_sr=None`` keeps the file's own rate. Raises :class:`AudioError` for a missing,
    empty, truncated, undecodable, sample-less or non-finite file.
    """
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "file not found")
    if not p.is_file():
        raise AudioError(p, "not a regular file")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    decoded, why = _decode_soundfile(p)
    decoder = "soundfile"
    if decoded is None:
        log.debug("%s: %s; trying PyAV", p, why)
        decoded = _decode_pyav(p, why)
        decoder = "pyav"
    data, sr, channels = decoded
    if sr <= 0:
        raise AudioError(p, f"invalid sample rate {sr}")
    if data.shape[0] == 0:
        raise AudioError(p, "no audio samples (0 frames)")
    if not np.all(np.isfinite(data)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise AudioError(p, f"{bad} non-finite (NaN or infinite) samples")
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float64)
    info = AudioInfo(orig_sr=sr, orig_channels=channels, duration_s=data.shape[0] / sr,
                     path=str(p), decoder=decoder)
    if target_sr is not None and int(target_sr) != sr:
        mono = resample(mono, sr, int(target_sr))
    return np.ascontiguousarray(mono, dtype=np.float32), info


def save_audio(path, wav: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    """Write a waveform (``[T]`` or ``[T, C]``, float in [-1, 1]) with soundfile.

    The subtype follows the extension (:data:`SUBTYPES`: 16-bit PCM for wav/flac/aiff, Vorbis for
    ogg, MPEG layer III for mp3) unless given. Integer subtypes clip values outside [-1, 1]
    (with a logged warning) instead of letting them wrap. Parent folders are created.
    """
    import soundfile as sf

    p = Path(path)
    ext = p.suffix.lower()
    if subtype is None:
        if ext not in SUBTYPES:
            raise ValueError(f"{p}: cannot choose a format for extension {ext!r}; use one of "
                             f"{sorted(SUBTYPES)} or pass subtype=")
        subtype = SUBTYPES[ext]
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim not in (1, 2) or x.shape[0] == 0:
        raise ValueError(f"{p}: expected a non-empty [T] or [T, C] waveform, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{p}: the waveform has non-finite samples; refusing to write it")
    if int(sr) <= 0:
        raise ValueError(f"{p}: sample rate must be positive, got {sr}")
    if subtype in _INTEGER_SUBTYPES or subtype in ("VORBIS", "MPEG_LAYER_III", "OPUS"):
        peak = float(np.max(np.abs(x)))
        if peak > 1.0:
            log.warning("%s: peak %.3f exceeds full scale; clipping to [-1, 1]", p, peak)
            x = np.clip(x, -1.0, 1.0)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), x, int(sr), subtype=subtype)
    return p
