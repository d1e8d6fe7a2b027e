"""AMR-WB (3GPP adaptive multi-rate wideband, G.722.2) at 16 kHz.

Encoded with VisualOn's ``libvo-amrwbenc`` through ctypes (PyAV's FFmpeg has no AMR-WB encoder;
on Debian/Ubuntu: ``apt-get install libvo-amrwbenc0``), decoded with FFmpeg's AMR-WB decoder
through PyAV. The payload counts each frame's speech bits (rounded up to whole bytes), not the
one-byte table of contents of AMR's storage format. Delay: 94.5 samples at 16 kHz for every
mode (measured in the 300-3400 Hz band; the encoder's 50 Hz high-pass leads the phase below it,
see tests/test_codecs.py).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from perturbations.base import ResourceUnavailable, register
from perturbations.codecs import _pyav
from perturbations.codecs._base import CodecPerturbation

LEVELS = (
    {"bitrate": 23850},
    {"bitrate": 18250},
    {"bitrate": 12650},
    {"bitrate": 8850},
    {"bitrate": 6600},
)

DELAY = 94.5  # samples at 16 kHz

MODES = (6600, 8850, 12650, 14250, 15850, 18250, 19850, 23050, 23850)  # mode = index
FRAME = 320  # samples per 20 ms frame at 16 kHz
_HINT = ("AMR-WB encoding needs VisualOn's libvo-amrwbenc: on Debian/Ubuntu "
         "`apt-get install libvo-amrwbenc0`, on macOS `brew install vo-amrwbenc`")


@lru_cache(maxsize=1)
def _encoder_lib():
    name = ctypes.util.find_library("vo-amrwbenc") or "libvo-amrwbenc.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as e:
        raise ResourceUnavailable(f"amr-wb: cannot load {name} ({e}); {_HINT}") from e
    lib.E_IF_init.restype = ctypes.c_void_p
    lib.E_IF_init.argtypes = []
    lib.E_IF_encode.restype = ctypes.c_int
    lib.E_IF_encode.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                ctypes.POINTER(ctypes.c_ubyte), ctypes.c_int]
    lib.E_IF_exit.restype = None
    lib.E_IF_exit.argtypes = [ctypes.c_void_p]
    return lib


def encode_frames(pcm: np.ndarray, mode: int) -> list[bytes]:
    """AMR-WB frames (storage format: a table-of-contents byte, then the speech bits) of 16-bit
    PCM at 16 kHz; the last frame is zero-padded."""
    lib = _encoder_lib()
    state = lib.E_IF_init()
    if not state:
        raise RuntimeError("amr-wb: libvo-amrwbenc could not create an encoder")
    frames = []
    out = (ctypes.c_ubyte * 64)()
    try:
        n = -(-len(pcm) // FRAME) * FRAME
        buf = np.zeros(n, dtype=np.int16)
        buf[:len(pcm)] = pcm
        for start in range(0, n, FRAME):
            block = np.ascontiguousarray(buf[start:start + FRAME])
            size = lib.E_IF_encode(state, mode, block.ctypes.data_as(ctypes.POINTER(ctypes.c_short)),
                                   out, 0)
            if size <= 0:
                raise RuntimeError(f"amr-wb: libvo-amrwbenc failed on the frame at sample {start}")
            frames.append(bytes(out[:size]))
    finally:
        lib.E_IF_exit(state)
    return frames


@register
@dataclass(frozen=True)
class AmrWb(CodecPerturbation):
    family: ClassVar[str] = "amr-wb"
    LEVELS: ClassVar[tuple] = LEVELS
    DELAY: ClassVar[float] = DELAY
    RATES: ClassVar[tuple[int, ...]] = (16000,)

    bitrate: int = 23850

    def validate(self) -> None:
        super().validate()
        self._check_choice(self.family, "bitrate", self.bitrate, MODES)

    def _roundtrip(self, x: np.ndarray, rate: int):
        import av

        pcm = np.round(np.clip(x, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
        frames = encode_frames(pcm, MODES.index(self.bitrate))
        _pyav.require_codec("amrwb", "r", self.family)
        dec = av.CodecContext.create("amrwb", "r")
        dec.sample_rate = rate
        dec.layout = "mono"
        out = []
        for frame in frames:
            for f in dec.decode(av.Packet(frame)):
                out.append(_pyav._from_frame(f))
        for f in dec.decode(None):
            out.append(_pyav._from_frame(f))
        payload = sum(len(f) - 1 for f in frames)
        return payload, (np.concatenate(out) if out else np.zeros(0)), rate
