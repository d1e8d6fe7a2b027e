"""The codec path (perturbations/codecs: in-process PyAV) against a pydub/ffmpeg-subprocess round trip.

    python benchmarks/codecs.py [--family mp3 aac opus vorbis] [--severity 3] [--repeats 7]

For each family, for 1 s and 4 s clips of 16 kHz speech from the demo set, times one encode + decode round trip per
clip both ways, alternating A B A B so the machine's load is shared, and prints the median times and
their ratio (target: the in-process path >= 10x faster). pydub needs a system ffmpeg
(``apt-get install ffmpeg``); it is only used here. The pydub side does what a user of pydub would:
16-bit PCM -> ``AudioSegment.export(format="mp3", bitrate=...)`` -> ``AudioSegment.from_file`` -> float.

For mp3 a third column times the same in-process round trip with LAME's ``compression_level`` 7
(``lame -q 7``) instead of the default (-q 3, what both the family and ffmpeg's CLI use): most of
the in-process time is LAME's own psychoacoustic search, which a subprocess pays as well, so this
shows what that one setting would change (it is NOT what the registered family does). For mp3 and
opus another figure times the encoder alone at the family's settings: the subprocess pays that too,
so ``pydub / encode-only`` bounds the ratio any in-process round trip at those settings can reach.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: family -> ffmpeg (muxer, demuxer) that pydub writes and reads
PYDUB_FORMATS = {"mp3": ("mp3", "mp3"), "opus": ("opus", "ogg"), "aac": ("adts", "aac"), "vorbis": ("ogg", "ogg")}


def demo_clip(seconds: float, sr: int = 16000) -> np.ndarray:
    """The first ``seconds`` of demo speech (tiled from several clips if one is too short)."""
    from foundation.audio import load_audio

    audio = sorted((ROOT / "bench" / "data" / "demo" / "audio").glob("*.flac"))
    need, parts = int(seconds * sr), []
    for p in audio:
        parts.append(load_audio(str(p), target_sr=sr)[0])
        if sum(len(x) for x in parts) >= need:
            break
    return np.concatenate(parts)[:need].astype(np.float32)


def pydub_roundtrip(wav: np.ndarray, sr: int, fmt: tuple[str, str], bitrate: int) -> np.ndarray:
    from pydub import AudioSegment

    pcm = (np.clip(wav, -1, 1) * 32767).astype("<i2").tobytes()
    seg = AudioSegment(data=pcm, sample_width=2, frame_rate=sr, channels=1)
    buf = io.BytesIO()
    seg.export(buf, format=fmt[0], bitrate=f"{bitrate // 1000}k")
    buf.seek(0)
    back = AudioSegment.from_file(buf, format=fmt[1]).set_frame_rate(sr).set_channels(1)
    out = np.array(back.get_array_of_samples(), dtype=np.float32) / 32768.0
    return out[: len(wav)]


def fast_lame(wav: np.ndarray, sr: int, bitrate: int) -> np.ndarray:
    from perturbations.codecs import _pyav

    _, y, _ = _pyav.roundtrip(wav.astype(np.float64), sr, "libmp3lame", family="mp3", bit_rate=bitrate,
                              options={"reservoir": "1", "compression_level": "7"}, decoder="mp3float")
    return y[: len(wav)]


#: family -> (encoder, options) exactly as the registered family opens it (perturbations/codecs/*.py)
ENCODERS = {"mp3": ("libmp3lame", {"reservoir": "1"}),
            "opus": ("libopus", {"vbr": "off", "application": "voip", "frame_duration": "20"})}


def encode_only(family: str, wav: np.ndarray, sr: int, bitrate: int) -> int:
    """The family's encoder alone, at the family's settings (a subprocess round trip pays this too)."""
    import av

    name, options = ENCODERS[family]
    enc = av.CodecContext.create(name, "w")
    fmts = [f.name for f in (enc.codec.audio_formats or [])]
    fmt = next((f for f in ("fltp", "flt") if f in fmts), "s16")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = sr, "mono", fmt, bitrate
    enc.options = dict(options)
    enc.open()
    x = wav.astype(np.float32)[None, :] if fmt != "s16" else (np.clip(wav, -1, 1) * 32767).astype(np.int16)[None, :]
    n, size = 0, enc.frame_size or 1024
    for start in range(0, x.shape[1], size):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, start:start + size]), format=fmt, layout="mono")
        frame.sample_rate, frame.pts = sr, start
        n += sum(p.size for p in enc.encode(frame))
    return n + sum(p.size for p in enc.encode(None))


def bench_family(family: str, severity: int, repeats: int, seconds_list: list[float]) -> dict:
    from perturbations import PERTURBATIONS

    pert = PERTURBATIONS.get(family).at(severity)
    bitrate = int(pert.to_dict()["params"]["bitrate"])
    sr, fmt = 16000, PYDUB_FORMATS[family]
    rng = np.random.default_rng(0)
    print(f"{family} severity {severity} ({bitrate // 1000} kb/s), 16 kHz mono, median of {repeats} alternating runs")
    results = {}
    for seconds in seconds_list:
        wav = demo_clip(seconds, sr)
        pert(wav, sr, rng)  # warm-up: imports, codec tables
        pydub_roundtrip(wav, sr, fmt, bitrate)
        t_av, t_pd, t_q7, t_enc = [], [], [], []
        for _ in range(repeats):
            if family == "mp3":
                t = time.perf_counter()
                fast_lame(wav, sr, bitrate)
                t_q7.append(time.perf_counter() - t)
            if family in ENCODERS:
                t = time.perf_counter()
                encode_only(family, wav, sr, bitrate)
                t_enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            y = pert(wav, sr, rng)
            t_av.append(time.perf_counter() - t)
            t = time.perf_counter()
            z = pydub_roundtrip(wav, sr, fmt, bitrate)
            t_pd.append(time.perf_counter() - t)
        av_, pd_ = statistics.median(t_av), statistics.median(t_pd)
        ratios = sorted(p / q for p, q in zip(t_pd, t_av))
        r = results[f"{seconds:g}s"] = {"pyav_ms": av_ * 1e3, "pydub_ms": pd_ * 1e3,
                                        "ratio_median": statistics.median(ratios), "ratio_min": ratios[0],
                                        "out_len": [len(y), len(z)]}
        print(f"  {seconds:g} s clip: in-process {av_ * 1e3:7.1f} ms ({av_ / seconds * 1e3:5.1f} ms per second of "
              f"audio), pydub {pd_ * 1e3:7.1f} ms -> {r['ratio_median']:5.1f}x (pairwise min {ratios[0]:.1f}x)")
        if t_enc:
            enc = statistics.median(t_enc)
            r.update(encode_ms=enc * 1e3, ratio_bound=pd_ / enc)
            print(f"      {ENCODERS[family][0]} encode alone at the family's settings: {enc * 1e3:7.1f} ms ({enc / av_:.0%} "
                  f"of the round trip) -> no round trip at these settings can beat {pd_ / enc:5.1f}x")
        if t_q7:
            q7 = statistics.median(t_q7)
            r.update(pyav_q7_ms=q7 * 1e3, ratio_q7=pd_ / q7)
            print(f"      in-process with lame -q 7 (not the family's setting): {q7 * 1e3:7.1f} ms -> {pd_ / q7:5.1f}x")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", nargs="+", default=["mp3", "aac", "opus", "vorbis"], choices=sorted(PYDUB_FORMATS))
    ap.add_argument("--seconds", type=float, nargs="+", default=[1.0, 4.0], help="clip lengths")
    ap.add_argument("--severity", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", help="write the figures to this file")
    a = ap.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        sys.stderr.write("pydub needs a system ffmpeg: apt-get install -y ffmpeg\n")
        return 2
    load0 = os.getloadavg()[0]
    print(f"codec round trip per clip, in process (PyAV) vs pydub (ffmpeg {shutil.which('ffmpeg')})")
    results = {f: bench_family(f, a.severity, a.repeats, a.seconds) for f in a.family}
    print(f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end (of {os.cpu_count()} CPUs)")
    for f, res in results.items():
        worst = min(r["ratio_median"] for r in res.values())
        bound = [f"{k} {r['ratio_median'] / r['ratio_bound']:.0%} of its encoder bound {r['ratio_bound']:.1f}x"
                 for k, r in res.items() if "ratio_bound" in r and r["ratio_median"] < 10]
        print(f"TARGET {f} codec path >= 10x faster than pydub per clip: worst of {' / '.join(res)} {worst:.1f}x -> "
              f"{'MET' if worst >= 10 else 'MISSED'}" + (f" ({'; '.join(bound)})" if bound else ""))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
