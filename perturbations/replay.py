"""Physical replay: a loudspeaker plays the clip into a room and a microphone records it.

The chain, with every stage's measurable quantity in the level's table:

1. **Loudspeaker**: a zero-phase band-pass whose magnitude is a Butterworth high-pass (order 2,
   a closed or ported box's roll-off) times a Butterworth low-pass (order 4), so the response is
   exactly -3 dB at ``band_hz = (low, high)``; then a soft saturation of the cone (``tanh``, the
   level's ``drive``: the peak of the filtered clip is driven ``drive`` times into the curve).
2. **Room**: the calibrated image-source room of ``room.py`` (T20 of the response within 1% of
   ``rt60``), with the loudspeaker ``distance_m`` from the microphone (dimensions drawn from the
   level's range, both 0.5 m from the walls at 1-2 m height).
3. **Microphone**: a band-pass (``mic_band_hz``, same shape as the loudspeaker's) and white
   self-noise at ``snr_db`` below the signal that reaches it (``10·log10(Σs²/Σn²)`` over the clip).

The output is aligned with the input (zero-phase filters; the room's cut at the direct path or the
cross-correlation peak up to 50 ms later, as ``room``) and keeps its length and RMS.
``tests/test_replay.py`` measures ``rt60`` (T20), the loudspeaker's -3 dB band and the noise's SNR from
the generated responses and signals against :data:`TOLERANCES`.

Measured device responses (optional): with ``measured: true`` the loudspeaker and microphone filters
are replaced by an impulse response drawn with the rng from the folder ``context.resources
["device_ir_dir"]`` or ``$BENCH_DEVICE_IR_DIR`` (wav/flac/ogg, e.g. a phone's loudspeaker-to-
microphone response measured in an anechoic box); the room, saturation and noise stay.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations import _measure
from perturbations.base import Perturbation, register
from perturbations.room import calibrated_rir

log = logging.getLogger(__name__)

# From a good studio monitor at 0.5 m in a treated room to a phone's speaker at 2 m in a reverberant one.
LEVELS = (
    {"rt60": 0.2, "distance_m": 0.5, "band_hz": (45.0, 20000.0), "drive": 0.1, "mic_band_hz": (20.0, 20000.0),
     "snr_db": 50.0, "dims_min": (3.0, 3.0, 2.4), "dims_max": (5.0, 4.0, 3.0)},     # studio monitor, treated room
    {"rt60": 0.4, "distance_m": 1.0, "band_hz": (70.0, 16000.0), "drive": 0.3, "mic_band_hz": (40.0, 16000.0),
     "snr_db": 40.0, "dims_min": (4.0, 3.0, 2.5), "dims_max": (7.0, 6.0, 3.2)},     # hi-fi speaker, living room
    {"rt60": 0.6, "distance_m": 1.0, "band_hz": (180.0, 12000.0), "drive": 0.6, "mic_band_hz": (80.0, 10000.0),
     "snr_db": 32.0, "dims_min": (5.0, 4.0, 2.6), "dims_max": (8.0, 7.0, 3.4)},     # laptop speaker, office
    {"rt60": 0.8, "distance_m": 1.5, "band_hz": (300.0, 9000.0), "drive": 1.0, "mic_band_hz": (100.0, 8000.0),
     "snr_db": 26.0, "dims_min": (6.0, 5.0, 2.8), "dims_max": (10.0, 8.0, 3.6)},    # smart speaker, classroom
    {"rt60": 1.2, "distance_m": 2.0, "band_hz": (500.0, 7000.0), "drive": 1.5, "mic_band_hz": (150.0, 7000.0),
     "snr_db": 20.0, "dims_min": (8.0, 6.0, 3.0), "dims_max": (14.0, 10.0, 5.0)},   # phone speaker, reverberant hall
)

#: how far a measurement may be from the table: rt60 relative, band edges relative, snr_db in dB
TOLERANCES = {"rt60": 0.05, "band_hz": 0.05, "snr_db": 0.1}

HP_ORDER, LP_ORDER = 2, 4
SPEED_OF_SOUND = 343.0


def band_response(freqs: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Magnitude of the Butterworth high-pass x low-pass at ``freqs`` (exactly -3 dB at both edges
    when they are decades apart; each edge is placed so that the product is -3 dB there)."""
    lo, hi = float(band[0]), float(band[1])
    f = np.maximum(np.asarray(freqs, dtype=np.float64), 1e-9)

    def mag(lo_c, hi_c):
        hp = 1.0 / np.sqrt(1.0 + (lo_c / f) ** (2 * HP_ORDER))
        lp = 1.0 / np.sqrt(1.0 + (f / hi_c) ** (2 * LP_ORDER))
        return hp * lp

    # the other filter's small loss at each edge: move the cutoffs so the product is -3 dB there
    lo_c, hi_c = lo, hi
    for _ in range(4):
        lp_at_lo = 1.0 / np.sqrt(1.0 + (lo / hi_c) ** (2 * LP_ORDER))
        hp_at_hi = 1.0 / np.sqrt(1.0 + (lo_c / hi) ** (2 * HP_ORDER))
        want_hp = np.sqrt(0.5) / lp_at_lo      # |HP(lo)| such that the product is 1/sqrt(2)
        want_lp = np.sqrt(0.5) / hp_at_hi
        lo_c = lo / (1.0 / want_hp ** 2 - 1.0) ** (1.0 / (2 * HP_ORDER))
        hi_c = hi * (1.0 / want_lp ** 2 - 1.0) ** (1.0 / (2 * LP_ORDER))
    return mag(lo_c, hi_c)


def band_fir(band: tuple[float, float], sr: int) -> np.ndarray:
    """A zero-phase (symmetric, centred) FIR with :func:`band_response`'s magnitude, by frequency
    sampling on a grid fine enough for the low edge (at least 16 bins below it) and a Hann window."""
    lo = float(band[0])
    n = 1 << int(np.ceil(np.log2(max(1024, 16 * sr / max(lo, 1.0)))))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    h = np.fft.irfft(band_response(freqs, band), n)
    h = np.roll(h, n // 2) * np.hanning(n + 1)[:n]
    return h  # centred at n // 2


def filter_zero_phase(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    c = len(h) // 2
    return fftconvolve(np.asarray(x, np.float64), h, mode="full")[c:c + len(x)]


def measure_band(h: np.ndarray, sr: int, n_fft: int | None = None) -> tuple[float, float]:
    """The -3 dB band of a response: the lowest and highest frequencies where its magnitude is within
    3 dB of its maximum (linear interpolation between bins)."""
    n_fft = n_fft or max(1 << 16, 1 << int(np.ceil(np.log2(len(h)))))
    mag = np.abs(np.fft.rfft(h, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    db = 20 * np.log10(np.maximum(mag / mag.max(), 1e-12))
    inside = np.nonzero(db >= -3.0103)[0]
    i0, i1 = int(inside[0]), int(inside[-1])

    def cross(a, b):
        if a < 0 or b >= len(db) or db[a] == db[b]:
            return float(freqs[min(max(a, 0), len(db) - 1)])
        t = (-3.0103 - db[a]) / (db[b] - db[a])
        return float(freqs[a] + t * (freqs[b] - freqs[a]))

    return cross(i0 - 1, i0), cross(i1, i1 + 1)


def saturate(x: np.ndarray, drive: float) -> np.ndarray:
    """Soft saturation: ``tanh`` with the clip's peak driven ``drive`` into it, unit gain for small signals."""
    if drive <= 0:
        return x
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak == 0:
        return x
    g = drive / peak
    return np.tanh(g * x) / g


def draw_positions(rng: np.random.Generator, dims_min, dims_max, distance: float):
    """Room dimensions and loudspeaker/microphone positions ``distance`` m apart (0.5 m from the walls,
    1-2 m high)."""
    for _ in range(100):
        dims = rng.uniform(dims_min, dims_max)
        lo = np.array([0.5, 0.5, 1.0])
        hi = np.array([dims[0] - 0.5, dims[1] - 0.5, min(2.0, dims[2] - 0.5)])
        for _ in range(100):
            mic = rng.uniform(lo, hi)
            v = rng.standard_normal(3)
            v[2] *= 0.2   # mostly horizontal
            src = mic + distance * v / np.linalg.norm(v)
            if np.all(src >= lo) and np.all(src <= hi):
                return dims, src, mic
    raise RuntimeError(f"replay: cannot place a loudspeaker {distance} m from the microphone in rooms "
                       f"{dims_min}..{dims_max}")


@functools.lru_cache(maxsize=16)
def _device_catalog(folder: str) -> tuple[str, ...]:
    files = tuple(str(p) for p in _measure.list_audio(folder))
    if not files:
        raise FileNotFoundError(f"replay: no impulse responses (wav/flac/ogg) under {folder!r} (the folder from "
                                "device_ir_dir / BENCH_DEVICE_IR_DIR)")
    return files


@functools.lru_cache(maxsize=32)
def _device_ir(path: str, sr: int) -> np.ndarray:
    import soundfile as sf

    try:
        data, file_sr = sf.read(path, always_2d=True, dtype="float64")
    except Exception as e:  # noqa: BLE001 - soundfile raises its own error types
        raise ValueError(f"replay: cannot read device response {path!r}: {e}") from e
    return _measure.resample(data[:, 0], int(file_sr), sr)


@register
@dataclass(frozen=True)
class Replay(Perturbation):
    """Loudspeaker (band-limited, soft-saturating) -> calibrated room -> microphone (band, self-noise)."""

    family: ClassVar[str] = "replay"
    LEVELS: ClassVar[tuple] = LEVELS
    version: ClassVar[int] = 1

    rt60: float = 0.4
    distance_m: float = 1.0
    band_hz: tuple = (70.0, 16000.0)
    drive: float = 0.3
    mic_band_hz: tuple = (40.0, 16000.0)
    snr_db: float = 40.0
    dims_min: tuple = (4.0, 3.0, 2.5)
    dims_max: tuple = (7.0, 6.0, 3.2)
    measured: bool = False

    def __post_init__(self):
        for name in ("band_hz", "mic_band_hz", "dims_min", "dims_max"):
            v = getattr(self, name)
            if isinstance(v, (list, tuple)):
                object.__setattr__(self, name, tuple(float(x) for x in v))

    def validate(self) -> None:
        from perturbations.room import Room

        try:
            Room(rt60=self.rt60, dims_min=self.dims_min, dims_max=self.dims_max).validate()
        except ValueError as e:
            raise ValueError(f"replay: {e}") from e
        for name in ("band_hz", "mic_band_hz"):
            b = getattr(self, name)
            if not isinstance(b, tuple) or len(b) != 2 or not 0 < b[0] < b[1] / 4:
                raise ValueError(f"replay: {name} must be (low, high) in Hz with high > 4 x low, got {b!r}")
        if not 0.1 <= float(self.distance_m) <= min(self.dims_max[:2]) - 1.0:
            raise ValueError(f"replay: distance_m must be within 0.1 m and the room's size less 1 m, "
                             f"got {self.distance_m}")
        if not 0.0 <= float(self.drive) <= 10.0:
            raise ValueError(f"replay: drive must be within 0..10, got {self.drive}")
        if not -10.0 <= float(self.snr_db) <= 120.0:
            raise ValueError(f"replay: snr_db must be within -10..120 dB, got {self.snr_db}")
        if not isinstance(self.measured, bool):
            raise ValueError(f"replay: measured must be true or false, got {self.measured!r}")

    # --- the stages (public so that the tests measure them) -------------------------------
    def _band(self, band, sr: int) -> tuple[float, float]:
        return (band[0], min(band[1], 0.45 * sr))

    def loudspeaker_response(self, sr: int) -> np.ndarray:
        return band_fir(self._band(self.band_hz, sr), sr)

    def microphone_response(self, sr: int) -> np.ndarray:
        return band_fir(self._band(self.mic_band_hz, sr), sr)

    def room_response(self, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, dict]:
        dims, src, mic = draw_positions(rng, self.dims_min, self.dims_max, float(self.distance_m))
        h, absorption, t20, direct = calibrated_rir(float(self.rt60), dims, src, mic, sr)
        return h, direct, {"dims": dims, "src": src, "mic": mic, "absorption": absorption, "t20": t20}

    def render(self, wav: np.ndarray, sr: int, rng: np.random.Generator, context=None) -> dict[str, np.ndarray]:
        """Every stage's signal: ``speaker`` (filtered, saturated), ``room``, ``mic`` (noiseless) and ``noise``
        (before the level is matched), ``out`` (mic + noise at the input's RMS), plus ``room_ir``."""
        x = np.asarray(wav, dtype=np.float64)
        device_ir = None
        if self.measured:
            folder = _measure.resource_dir(context, "device_ir_dir", "BENCH_DEVICE_IR_DIR", self.family,
                                           "device_ir_dir (a suite resource)", "a folder of device responses")
            files = _device_catalog(str(folder.resolve()))
            device_ir = _device_ir(files[int(rng.integers(len(files)))], sr)
        s = x if device_ir is not None else filter_zero_phase(x, self.loudspeaker_response(sr))
        s = saturate(s, float(self.drive))
        h, direct, _facts = self.room_response(sr, rng)
        r = _measure.convolve_aligned(s, h, start=direct, search=int(_measure.ALIGN_SEARCH_S * sr))
        if device_ir is not None:
            m = _measure.convolve_aligned(r, device_ir, search=int(_measure.ALIGN_SEARCH_S * sr))
        else:
            m = filter_zero_phase(r, self.microphone_response(sr))
        noise = rng.standard_normal(m.size)
        p_sig, p_noise = float(np.sum(m * m)), float(np.sum(noise * noise))
        if p_sig > 0 and p_noise > 0:
            noise *= np.sqrt(p_sig / p_noise * 10.0 ** (-float(self.snr_db) / 10.0))
        else:
            noise[:] = 0.0
        out = _measure.match_rms(m + noise, x, context, self.family)
        return {"speaker": s, "room": r, "mic": m, "noise": noise, "out": out, "room_ir": h}

    def apply(self, wav, sr, rng, context=None):
        return self.render(wav, sr, rng, context)["out"]
