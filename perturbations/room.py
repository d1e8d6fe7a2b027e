"""Simulated room reverberation, calibrated on the measured T20 (the contract's RT60).

Each utterance gets a shoebox room drawn from the rng (dimensions within the level's range,
source and microphone at least 0.5 m from the walls, 0.5–1.5 m apart, at 1–2 m height). The room
impulse response comes from the image-source model of a shoebox with one frequency-independent
wall absorption (Allen & Berkley; the same physics as ``pyroomacoustics.ShoeBox`` with
image sources and no air absorption, which ``tests/test_room.py`` checks against). Images are
enumerated by *distance* (a sphere of radius c·T, with T the RIR length) instead of
pyroomacoustics' reflection-order diamond: at RT60 1.5 s pyroomacoustics needs order 120–220
(3–24 s per response here) to cover the decay that T20 measures; this takes 0.01–0.03 s,
calibration included.

Calibration by measurement: absorption is first guessed with Eyring's formula, then refined
by a few secant steps on log(absorption) until the T20 of the response (``_measure.rt60_t20``)
is within 1% of the level's ``rt60``. Measured on this ladder's rooms (8 per level): Eyring's
absorption gives T20 = 1.06–1.19× the target at 0.2 s and 1.09–1.55× at 1.0–1.5 s, Sabine's
0.81–1.42×; calibrated, 0.99–1.01×. The response is cut at ``0.75·rt60`` (≈ −45 dB, well
past the −25 dB end of T20) with a short fade-out, after pyroomacoustics' 10 Hz high-pass (without
it the DC of the all-positive image pulses lengthens the measured decay by 20–30%).

Alignment (``_measure.convolve_aligned``): the output starts at the direct path, or up to 50 ms
later where the cross-correlation of input and reverberant signal peaks (the contract's
alignment): for speech a cluster of early reflections a few ms after the direct sound can
outweigh it. The output keeps the input's length (the tail past the end is dropped) and the
input's RMS level (scaled down, with a note in ``context.report``, only if that would clip).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from perturbations import _measure
from perturbations.base import Perturbation, register

log = logging.getLogger(__name__)

# rt60: target T20 in seconds; dims_min/dims_max: room size range (length, width, height), m.
LEVELS = (
    {"rt60": 0.2, "dims_min": (3.0, 3.0, 2.4), "dims_max": (5.0, 4.0, 3.0)},     # treated small room
    {"rt60": 0.4, "dims_min": (4.0, 3.0, 2.5), "dims_max": (7.0, 6.0, 3.2)},     # living room, office
    {"rt60": 0.7, "dims_min": (6.0, 5.0, 2.8), "dims_max": (10.0, 8.0, 3.6)},    # classroom
    {"rt60": 1.0, "dims_min": (8.0, 6.0, 3.0), "dims_max": (14.0, 10.0, 5.0)},   # lecture hall
    {"rt60": 1.5, "dims_min": (12.0, 8.0, 4.0), "dims_max": (20.0, 14.0, 8.0)},  # hall, church
)

SPEED_OF_SOUND = 343.0
OVERSAMPLE = 4            # images are placed on a 4x finer grid, then band-limited down
TAIL_FACTOR = 0.75        # RIR length as a multiple of rt60 (≈ −45 dB)
HPF_HZ, HPF_ORDER = 10.0, 2  # pyroomacoustics' defaults for its RIR high-pass
FADE_S = 0.02             # fade-out at the cut
CALIBRATION_TOL = 0.01    # relative T20 error at which calibration stops
MAX_ITER = 12
_CHUNK = 2_000_000        # images per block when enumerating
MAX_IMAGES = 5e6          # refuse levels whose smallest room needs more image sources (memory)
DIST = (0.5, 1.5)         # source-microphone distance range, m (see draw_geometry)


def shoebox_images(dims, src, mic, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (m) and reflection counts of all image sources within ``radius`` of ``mic``."""
    axes = []
    for L, s, m in zip(dims, src, mic):
        nmax = int(np.ceil(radius / (2 * L))) + 1
        n = np.arange(-nmax, nmax + 1)
        pos = np.concatenate([s + 2 * n * L, -s + 2 * n * L])
        refl = np.concatenate([np.abs(2 * n), np.abs(2 * n - 1)])
        d = pos - m
        keep = np.abs(d) <= radius
        axes.append((d[keep] ** 2, refl[keep]))
    (x2, kx), (y2, ky), (z2, kz) = axes
    yz2 = (y2[:, None] + z2[None, :]).ravel()
    kyz = (ky[:, None] + kz[None, :]).ravel()
    dists, refls = [], []
    rows = max(1, _CHUNK // max(1, yz2.size))
    r2 = radius * radius
    for i in range(0, x2.size, rows):
        d2 = x2[i:i + rows, None] + yz2[None, :]
        k = kx[i:i + rows, None] + kyz[None, :]
        inside = d2 <= r2
        dists.append(np.sqrt(d2[inside]))
        refls.append(k[inside].astype(np.int32))
    return np.concatenate(dists), np.concatenate(refls)


class _RirBuilder:
    """Builds the band-limited RIR of one geometry for any absorption (cheap to repeat)."""

    def __init__(self, dims, src, mic, sr: int, length_s: float):
        from scipy.signal import butter

        self.sr = sr
        self.hpf = butter(HPF_ORDER, HPF_HZ, btype="highpass", fs=sr, output="sos")
        self.n = int(round(length_s * sr))
        radius = length_s * SPEED_OF_SOUND
        dist, refl = shoebox_images(dims, src, mic, radius)
        delay = dist / SPEED_OF_SOUND * sr
        d0 = float(np.min(delay))
        # shift by a fraction of a sample so that the direct path sits exactly on a sample
        self.direct = int(np.floor(d0))
        delay -= d0 - self.direct
        self.idx = np.round(delay * OVERSAMPLE).astype(np.int64)
        ok = self.idx < self.n * OVERSAMPLE
        self.idx, self.refl = self.idx[ok], refl[ok]
        self.inv_dist = 1.0 / (4 * np.pi * dist[ok])
        fade = int(round(FADE_S * sr))
        self.window = np.ones(self.n)
        if 0 < fade < self.n:
            self.window[-fade:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, fade)))

    def rir(self, absorption: float) -> np.ndarray:
        from scipy.signal import resample_poly, sosfiltfilt

        beta = np.sqrt(1.0 - absorption)
        w = self.inv_dist * np.exp(self.refl * np.log(beta))
        fine = np.bincount(self.idx, weights=w, minlength=self.n * OVERSAMPLE)
        h = resample_poly(fine, 1, OVERSAMPLE)[:self.n] * OVERSAMPLE
        # like pyroomacoustics: a zero-phase 10 Hz high-pass removes the DC that a sum of
        # positive image pulses carries (it would otherwise lengthen the measured decay)
        h = sosfiltfilt(self.hpf, h)
        return h * self.window


def eyring_absorption(rt60: float, dims) -> float:
    lx, ly, lz = dims
    volume, surface = lx * ly * lz, 2 * (lx * ly + lx * lz + ly * lz)
    return float(1.0 - np.exp(-24 * np.log(10) * volume / (SPEED_OF_SOUND * surface * rt60)))


def calibrated_rir(rt60: float, dims, src, mic, sr: int) -> tuple[np.ndarray, float, float, int]:
    """(rir, absorption, measured T20, direct-path index) with T20 within 1% of ``rt60`` if reachable."""
    builder = _RirBuilder(dims, src, mic, sr, TAIL_FACTOR * rt60)
    lo, hi = 1e-3, 0.99

    def measure(a):
        h = builder.rir(a)
        try:
            return h, _measure.rt60_t20(h, sr)
        except ValueError:  # decays too slowly to reach -25 dB within the cut: far too long
            return h, 4.0 * rt60

    a0 = min(max(eyring_absorption(rt60, dims), lo), hi)
    h, t0 = measure(a0)
    best = (abs(np.log(t0 / rt60)), h, a0, t0)
    # second point: T ~ 1/a to first order
    a1 = min(max(a0 * t0 / rt60, lo), hi)
    for _ in range(MAX_ITER):
        if best[0] <= np.log1p(CALIBRATION_TOL) or a1 == a0:
            break
        h, t1 = measure(a1)
        if abs(np.log(t1 / rt60)) < best[0]:
            best = (abs(np.log(t1 / rt60)), h, a1, t1)
        slope = (np.log(t1) - np.log(t0)) / (np.log(a1) - np.log(a0))
        if not np.isfinite(slope) or slope >= 0:
            slope = -1.0
        a_next = float(np.exp(np.log(a1) + (np.log(rt60) - np.log(t1)) / slope))
        a0, t0, a1 = a1, t1, min(max(a_next, lo), hi)
    _, h, a, t = best
    if abs(t / rt60 - 1) > 0.05:
        log.warning("room: T20 %.3f s is %.0f%% off the target %.3f s for room %s",
                    t, 100 * (t / rt60 - 1), rt60, tuple(np.round(dims, 2)))
    return h, a, t, builder.direct


def draw_geometry(rng: np.random.Generator, dims_min, dims_max):
    """Room dimensions, source and microphone positions (0.5 m from the walls, ``DIST`` apart,
    1–2 m high). Close enough that the direct sound matters, as for a talker facing a device."""
    dims = rng.uniform(dims_min, dims_max)
    margin = 0.5
    lo = np.array([margin, margin, 1.0])
    hi = np.array([dims[0] - margin, dims[1] - margin, min(2.0, dims[2] - margin)])
    for _ in range(1000):
        src, mic = rng.uniform(lo, hi), rng.uniform(lo, hi)
        if DIST[0] <= np.linalg.norm(src - mic) <= DIST[1]:
            return dims, src, mic
    raise RuntimeError(f"room: cannot place source and microphone {DIST[0]}-{DIST[1]} m apart "
                       f"in a room {dims}")


@register
@dataclass(frozen=True)
class Room(Perturbation):
    """Reverberation of a random shoebox room whose measured T20 equals ``rt60``."""

    family: ClassVar[str] = "room"
    LEVELS: ClassVar[tuple] = LEVELS
    rt60: float = 0.4
    dims_min: tuple = (4.0, 3.0, 2.5)
    dims_max: tuple = (7.0, 6.0, 3.2)

    def __post_init__(self):
        for name in ("dims_min", "dims_max"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def validate(self) -> None:
        if not 0.05 <= self.rt60 <= 5.0:
            raise ValueError(f"room: rt60 must be within 0.05..5 s, got {self.rt60}")
        for name in ("dims_min", "dims_max"):
            v = getattr(self, name)
            if len(v) != 3 or min(v) < 2.0:
                raise ValueError(f"room: {name} must be three sizes in metres, each >= 2, got {v}")
        if any(a > b for a, b in zip(self.dims_min, self.dims_max)):
            raise ValueError(f"room: dims_min {self.dims_min} exceeds dims_max {self.dims_max}")
        length = TAIL_FACTOR * self.rt60 * SPEED_OF_SOUND
        images = 4 / 3 * np.pi * length ** 3 / float(np.prod(self.dims_min))
        if images > MAX_IMAGES:
            raise ValueError(f"room: rt60 {self.rt60} s in rooms as small as dims_min {self.dims_min} "
                             f"needs ~{images:.1e} image sources (limit {MAX_IMAGES:.0e}); "
                             "raise dims_min or lower rt60")
        if min(self.dims_max[:2]) < 3.0:
            raise ValueError("room: dims_max needs length and width >= 3 m (source and microphone "
                             "are 0.5-1.5 m apart, 0.5 m from the walls)")

    def impulse_response(self, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, dict]:
        """The calibrated RIR for the geometry drawn from ``rng``, its direct-path index and facts."""
        dims, src, mic = draw_geometry(rng, self.dims_min, self.dims_max)
        h, absorption, t20, direct = calibrated_rir(self.rt60, dims, src, mic, sr)
        facts = {"dims": dims, "src": src, "mic": mic, "absorption": absorption, "t20": t20}
        return h, direct, facts

    def apply(self, wav, sr, rng, context=None):
        h, direct, _ = self.impulse_response(sr, rng)
        y = _measure.convolve_aligned(wav, h, start=direct,
                                      search=int(_measure.ALIGN_SEARCH_S * sr))
        return _measure.match_rms(y, wav, context, self.family)

    def apply_torch(self, wav, sr, rng, context=None):
        from perturbations import _torch

        h, direct, _ = self.impulse_response(sr, rng)   # the room is drawn and calibrated as on the CPU
        y = _torch.convolve_aligned(wav, _torch.tensor(h, wav), start=direct,
                                    search=int(_measure.ALIGN_SEARCH_S * sr))
        return _torch.match_rms(y, wav, context, self.family)
