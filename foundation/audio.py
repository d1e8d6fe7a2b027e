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
  channels reads back unchanged), block by block as the file is decoded: memory holds the mono signal,
  never all channels of a long file. ``AudioInfo.channel_rms`` keeps each channel's RMS (so a stereo
  file whose channels cancel in the mix can be told from silence).
* Limits, checked before decoding and again while decoding (a header may lie): at most ``max_seconds``
  of audio (default :data:`MAX_SECONDS`; ``None`` for no limit) at a rate of at most :data:`MAX_RATE`.
  The header's length is refused before a sample is decoded; decoding stops one block past the limit
  whatever the header claimed, so memory depends on the limit, never on what the file says.
* What the path is: a directory, a broken symbolic link, a named pipe or a device is named as such
  (:func:`describe_path`), not reported as "not found".
* Resampling: soxr at "VHQ" quality. Measured here (44.1 and 48 kHz -> 16 kHz): flat to -0.0 dB at
  7.2 kHz and tones above the new Nyquist attenuated by more than 180 dB, in 6-7 ms per 10 s of
  audio. scipy's ``resample_poly`` with its default Kaiser window loses 0.7 dB at 7.2 kHz and lets
  an 8.4 kHz tone alias back at only -12 dB, and is slower; a detector that looks at the top
  band (AASIST's sinc filters reach 8 kHz) should not see resampling artefacts.
"""
from __future__ import annotations

import logging
import os
import stat
import struct
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: save_audio: subtype chosen by the file extension (libsndfile names).
SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS", ".oga": "VORBIS",
            ".mp3": "MPEG_LAYER_III", ".aiff": "PCM_16", ".aif": "PCM_16"}
_INTEGER_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}
#: default limit of :func:`load_audio` on a file's duration in seconds (``bench score/run --max-seconds``)
MAX_SECONDS = 600.0
#: the highest sample rate a file may declare (Hz); with ``max_seconds`` it bounds the decoded size
MAX_RATE = 384_000
#: frames x channels decoded per block (about 4 MiB of float32), whatever the file's channel count
_BLOCK_SAMPLES = 1 << 20
_UNKNOWN_FRAMES = 1 << 62


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
    #: RMS of each channel before the mono mix (full scale = 1.0)
    channel_rms: tuple[float, ...] = field(default=(), compare=False)


def describe_path(path) -> str | None:
    """Why ``path`` cannot be an audio file (not found, a directory, a broken symbolic link, a named pipe,
    a device, an empty file), or None for a non-empty regular file (symbolic links followed)."""
    p = Path(path)
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        return "file not found"
    except OSError as e:
        return f"cannot be inspected ({e.strerror or e})"
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(p)
        except OSError:
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return f"a broken symbolic link (to {target}, which does not exist)"
    if stat.S_ISDIR(st.st_mode):
        return "a directory, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
        return f"{kind}, not a regular file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    return None


def _check_limits(path: Path, frames: float, sr: int, max_seconds: float | None, what: str = "its header") -> None:
    """Refuses a declared rate outside 1..MAX_RATE, or a declared length over ``max_seconds``, before decoding."""
    if not 0 < sr <= MAX_RATE:
        raise AudioError(path, f"{what} declares a sample rate of {sr} Hz; accepted: 1..{MAX_RATE} Hz")
    if max_seconds is not None and frames > max_seconds * sr:
        raise AudioError(path, f"{what} declares {frames / sr:.1f} s of audio, more than the limit of "
                               f"{max_seconds:g} s (--max-seconds; raise it to read longer files)")


class _Mixdown:
    """Mono mix of decoded blocks ``[frames, channels]``, resampled block by block to ``target_sr`` (a soxr
    stream at VHQ, sample for sample what :func:`resample` gives for the whole signal), with per-channel
    energy and a count of non-finite samples. Memory holds only the float32 result."""

    def __init__(self, path: Path, sr: int, target_sr: int | None, max_seconds: float | None):
        self.path, self.max_seconds = path, max_seconds
        self.limit = None if max_seconds is None else int(max_seconds * sr)
        self.parts: list[np.ndarray] = []
        self.frames, self.bad, self.channels = 0, 0, 0
        self.energy = np.zeros(0)
        self.stream = None
        if target_sr is not None and int(target_sr) != sr:
            try:
                import soxr
            except ImportError as e:
                raise ImportError("resampling needs soxr: pip install soxr") from e
            if int(target_sr) <= 0:
                raise ValueError(f"sample rates must be positive, got {sr} -> {target_sr}")
            self.stream = soxr.ResampleStream(sr, int(target_sr), 1, dtype="float64", quality="VHQ")

    def room(self, block: int) -> int:
        """How many frames to decode next: never more than one past the limit."""
        return block if self.limit is None else max(0, min(block, self.limit + 1 - self.frames))

    def add(self, data: np.ndarray) -> None:
        """``data``: ``[frames, channels]`` float32."""
        if not len(data):
            return
        ch = data.shape[1]
        self.channels = max(self.channels, ch)
        finite = np.isfinite(data)
        if not finite.all():
            self.bad += int(np.count_nonzero(~finite))
            data = np.where(finite, data, 0.0).astype(np.float32)
        if len(self.energy) < ch:
            self.energy = np.concatenate([self.energy, np.zeros(ch - len(self.energy))])
        self.energy[:ch] += np.einsum("ij,ij->j", data, data, dtype=np.float64)
        self.frames += len(data)
        if self.limit is not None and self.frames > self.limit:
            raise AudioError(self.path, f"longer than the limit of {self.max_seconds:g} s (--max-seconds; raise it "
                                        "to read longer files); decoding stopped there")
        mono = data[:, 0] if ch == 1 else data.mean(axis=1, dtype=np.float64)
        self._keep(mono)

    def _keep(self, mono: np.ndarray, last: bool = False) -> None:
        if self.stream is not None:
            mono = self.stream.resample_chunk(np.asarray(mono, dtype=np.float64), last=last)
        if len(mono):
            self.parts.append(np.asarray(mono, dtype=np.float32))

    def result(self) -> tuple[np.ndarray, tuple[float, ...]]:
        if self.bad:
            raise AudioError(self.path, f"{self.bad} non-finite (NaN or infinite) samples")
        if self.stream is not None and self.frames:
            self._keep(np.zeros(0), last=True)
        mono = np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)
        n = max(self.frames, 1)
        return mono, tuple(float(np.sqrt(e / n)) for e in self.energy)


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


def _decode_soundfile(path: Path, target_sr: int | None, max_seconds: float | None = MAX_SECONDS):
    """``((mono at target_sr, rate, channels, frames, channel_rms), None)``, or ``(None, reason)`` when
    libsndfile cannot open it."""
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except sf.LibsndfileError as e:
        return None, f"soundfile cannot open it ({e.error_string})"
    except Exception as e:  # noqa: BLE001 - any opening failure is reported with its reason
        return None, f"soundfile cannot open it ({type(e).__name__}: {e})"
    with f:
        sr, channels = int(f.samplerate), int(f.channels)
        # libsndfile says SF_COUNT_MAX for an unknown length (a FLAC streamed without its total): decoding checks
        _check_limits(path, int(f.frames) if 0 <= f.frames < _UNKNOWN_FRAMES else 0, sr, max_seconds)
        if f.format == "WAV" or f.format == "WAVEX":
            _check_wav_truncation(path)
        mix = _Mixdown(path, sr, target_sr, max_seconds)
        block = max(1024, _BLOCK_SAMPLES // max(channels, 1))
        try:
            while want := mix.room(block):
                data = f.read(want, dtype="float32", always_2d=True)
                if not len(data):
                    break
                mix.add(data)
        except AudioError:
            raise
        except Exception as e:  # noqa: BLE001
            raise AudioError(path, f"undecodable {f.format} data ({e})") from e
        mono, rms = mix.result()
        return (mono, sr, channels, mix.frames, rms), None


def _decode_pyav(path: Path, sf_reason: str, target_sr: int | None, max_seconds: float | None = MAX_SECONDS):
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise AudioError(path, "this format needs PyAV: pip install av") from e
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(path, "the container has no audio stream")
            stream = container.streams.audio[0]
            sr = int(stream.codec_context.sample_rate or 0)
            if sr:   # the container's declared length, before decoding
                declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base \
                    else (container.duration or 0) / 1e6
                _check_limits(path, declared * sr, sr, max_seconds, "its container")
            resampler = av.AudioResampler(format="fltp")   # keep layout and rate, planar float
            mix: _Mixdown | None = None
            for frame in container.decode(stream):
                if mix is None:
                    sr = int(frame.sample_rate)
                    _check_limits(path, 0, sr, max_seconds, "its first frame")
                    mix = _Mixdown(path, sr, target_sr, max_seconds)
                for out in resampler.resample(frame):
                    mix.add(out.to_ndarray().T.astype(np.float32, copy=False))
            for out in resampler.resample(None):
                if mix is not None:
                    mix.add(out.to_ndarray().T.astype(np.float32, copy=False))
    except AudioError:
        raise
    except Exception as e:  # noqa: BLE001 - FFmpeg errors come in many classes
        raise AudioError(path, f"undecodable: {sf_reason}; PyAV: {type(e).__name__}: {e}") from e
    if mix is None or not mix.frames:
        raise AudioError(path, "no audio samples decoded (empty stream)")
    mono, rms = mix.result()
    return mono, sr, mix.channels, mix.frames, rms


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


def load_audio(path, target_sr: int | None = 16000,
               max_seconds: float | None = MAX_SECONDS) -> tuple[np.ndarray, AudioInfo]:
    """Read any supported audio file as ``(float32 mono waveform, AudioInfo)``.

    ``target_sr=None`` keeps the file's own rate. ``max_seconds`` (default :data:`MAX_SECONDS`, None = no
    limit) refuses longer files before decoding them (see the module docstring). Raises :class:`AudioError`
    for a missing, empty, truncated, undecodable, sample-less, too long or non-finite file, and for a path
    that is not a regular file (saying what it is).
    """
    p = Path(path)
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number of seconds or None, got {max_seconds!r}")
    why_not = describe_path(p)
    if why_not is not None:
        raise AudioError(p, why_not)
    decoded, why = _decode_soundfile(p, target_sr, max_seconds)
    decoder = "soundfile"
    if decoded is None:
        log.debug("%s: %s; trying PyAV", p, why)
        decoded = _decode_pyav(p, why, target_sr, max_seconds)
        decoder = "pyav"
    mono, sr, channels, frames, rms = decoded
    if frames == 0:
        raise AudioError(p, "no audio samples (0 frames)")
    if mono.shape[0] == 0:   # e.g. one sample at 32 kHz resampled to 16 kHz
        raise AudioError(p, f"only {frames} samples at {sr} Hz: nothing is left at {target_sr} Hz")
    info = AudioInfo(orig_sr=sr, orig_channels=channels, duration_s=frames / sr,
                     path=str(p), decoder=decoder, channel_rms=rms)
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
