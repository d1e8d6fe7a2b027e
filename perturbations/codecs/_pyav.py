"""In-process encode/decode round trips through PyAV's bundled FFmpeg (no subprocess, no files).

:func:`roundtrip` encodes a mono float waveform with one FFmpeg encoder, counts the payload bytes
of the packets it produces, and decodes them again. Packets are fed straight from encoder to
decoder (no container), so the payload is exactly the codec's bitstream.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

from perturbations.base import ResourceUnavailable

_INSTALL_HINT = "install PyAV (`pip install av`; its wheels bundle FFmpeg)"


def _av():
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise ImportError(f"the codec perturbations need PyAV: {_INSTALL_HINT}") from e
    return av


@lru_cache(maxsize=None)
def has_codec(name: str, mode: str = "w") -> bool:
    """Whether this PyAV build has the encoder (``mode="w"``) or decoder (``"r"``) ``name``."""
    av = _av()
    try:
        av.codec.Codec(name, mode)
    except Exception:
        return False
    return True


def require_codec(name: str, mode: str, family: str) -> None:
    if not has_codec(name, mode):
        kind = "encoder" if mode == "w" else "decoder"
        raise ResourceUnavailable(f"{family}: this PyAV build has no {name!r} {kind}; "
                           f"{_INSTALL_HINT} (a wheel whose FFmpeg includes {name})")


def _to_frame_array(x: np.ndarray, fmt: str) -> np.ndarray:
    if fmt in ("s16", "s16p"):
        return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)[None, :]
    if fmt in ("flt", "fltp"):
        return x.astype(np.float32)[None, :]
    raise ValueError(f"unsupported sample format {fmt!r}")


def _from_frame(frame) -> np.ndarray:
    a = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        a = a[0]
    else:
        a = a.reshape(-1)[::channels]
    name = frame.format.name.rstrip("p")
    if name == "s16":
        return a.astype(np.float64) / 32768.0
    if name == "s32":
        return a.astype(np.float64) / 2147483648.0
    if name in ("flt", "dbl"):
        return a.astype(np.float64)
    raise ValueError(f"unsupported decoded sample format {frame.format.name!r}")


def roundtrip(x: np.ndarray, rate: int, encoder: str, *, family: str,
              bit_rate: int | None = None, options: Mapping[str, str] | None = None,
              decoder: str | None = None, decoder_options: Mapping[str, str] | None = None,
              header_bytes: int = 0, chunk: int = 1024,
              packet_hook: Callable[[bytes], None] | None = None) -> tuple[int, np.ndarray, int]:
    """Encode ``x`` (mono float, at ``rate``) with ``encoder`` and decode it again.

    Returns ``(payload_bytes, decoded, decoded_rate)``: the bytes of all packets minus
    ``header_bytes`` per packet (framing such as AMR's table-of-contents byte), the decoded
    mono waveform (float64, untrimmed: it carries the codec's delay and tail), and its rate.
    Integer-input encoders see the input saturated to 16 bits, as a real one would.
    ``packet_hook``, when given, sees every packet's bytes (e.g. to read a table of contents).
    """
    av = _av()
    require_codec(encoder, "w", family)
    enc = av.CodecContext.create(encoder, "w")
    fmts = [f.name for f in (enc.codec.audio_formats or [])]
    fmt = next((f for f in ("fltp", "flt") if f in fmts), "s16" if "s16" in fmts or not fmts else fmts[0])
    enc.sample_rate = rate
    enc.layout = "mono"
    enc.format = fmt
    if bit_rate:
        enc.bit_rate = int(bit_rate)
    if options:
        enc.options = {k: str(v) for k, v in options.items()}
    enc.open()
    size = enc.frame_size or chunk
    packets = []
    for start in range(0, len(x), size):
        frame = av.AudioFrame.from_ndarray(_to_frame_array(x[start:start + size], fmt),
                                           format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        packets.extend(enc.encode(frame))
    packets.extend(enc.encode(None))

    dec_name = decoder or encoder
    require_codec(dec_name, "r", family)
    dec = av.CodecContext.create(dec_name, "r")
    dec.sample_rate = rate
    dec.layout = "mono"
    if enc.extradata:
        dec.extradata = enc.extradata
    if decoder_options:
        dec.options = {k: str(v) for k, v in decoder_options.items()}
    payload = 0
    out: list[np.ndarray] = []
    out_rate = rate
    for packet in packets:
        payload += max(packet.size - header_bytes, 0)
        if packet_hook is not None:
            packet_hook(bytes(packet))
        for frame in dec.decode(packet):
            out.append(_from_frame(frame))
            out_rate = frame.sample_rate
    for frame in dec.decode(None):
        out.append(_from_frame(frame))
        out_rate = frame.sample_rate
    decoded = np.concatenate(out) if out else np.zeros(0)
    return payload, decoded, int(out_rate)


def decode_bytes(data: bytes, fmt: str, *, family: str,
                 options: Mapping[str, str] | None = None) -> tuple[int, np.ndarray, int]:
    """Demux and decode an in-memory stream (``fmt``: an FFmpeg demuxer such as ``ogg``, ``amrwb``).

    Returns ``(payload_bytes, decoded, rate)``, the payload being the sum of the audio packets'
    sizes (container framing and codec headers carried as extradata are not counted).
    """
    import io

    av = _av()
    try:
        container = av.open(io.BytesIO(data), format=fmt,
                            options={k: str(v) for k, v in (options or {}).items()})
    except Exception as e:
        raise RuntimeError(f"{family}: PyAV could not open the encoded {fmt!r} stream ({e}); "
                           f"{_INSTALL_HINT}") from e
    with container:
        stream = container.streams.audio[0]
        payload = 0
        out: list[np.ndarray] = []
        rate = stream.rate
        for packet in container.demux(stream):
            if packet.size:
                payload += packet.size
            for frame in packet.decode():
                out.append(_from_frame(frame))
                rate = frame.sample_rate
    return payload, (np.concatenate(out) if out else np.zeros(0)), int(rate)
