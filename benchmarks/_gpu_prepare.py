"""The device-preparation section of benchmarks/gpu.py: every family with ``apply_torch`` on the CPU (numpy)
path and on the device, same generator stream: max |difference| and time per 4 s clip on each side.

Families that read files (rir, background-noise) get folders written here; babble draws from the demo
clips (seeded noise where they are unreadable); the neural codecs run when their weights resolve
($BENCH_WEIGHTS_DIR/encodec_24khz, ...) and are skipped with the reason otherwise."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._gpu_lib import S, sync

SR = 16000


def _resources(root: Path) -> dict[str, str]:
    import soundfile as sf

    rng = np.random.default_rng(1)
    (root / "noise").mkdir()
    sf.write(root / "noise" / "n.wav", (0.1 * rng.standard_normal(5 * SR)).astype(np.float32), SR)
    (root / "rir").mkdir()
    for t60 in (0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0, 2.5):
        t = np.arange(int(1.2 * t60 * SR)) / SR
        tail = rng.standard_normal(t.size) * 10 ** (-3 * t / t60)
        h = np.concatenate([np.zeros(64), [1.0], tail / np.sqrt(np.sum(tail ** 2))])
        sf.write(root / "rir" / f"{t60}.wav", (0.9 * h / np.abs(h).max()).astype(np.float32), SR, subtype="FLOAT")
    return {"noise_dir": str(root / "noise"), "rir_dir": str(root / "rir")}


def sec_prepare() -> None:
    from perturbations import PERTURBATIONS, Context

    torch, dev = S.torch, S.dev
    x = S.demo[0]
    pool_clips = [w.astype(np.float32) for w in x[1:]]

    def pool(rng, n, exclude=""):
        return [pool_clips[i] for i in rng.choice(len(pool_clips), size=n, replace=len(pool_clips) < n)]

    with tempfile.TemporaryDirectory() as d:
        try:
            res = _resources(Path(d))
        except ImportError as e:  # no soundfile on the device image unless its wheel was carried
            res = {}
            print(f"prepare: no resource folders ({e}); rir and background-noise are skipped")
        fams = [n for n, c in PERTURBATIONS.items() if n not in ("clean", "chain") and c.at(1).on_device]
        for fam in fams:
            if fam in ("rir", "background-noise") and not res:
                continue
            p = PERTURBATIONS.get(fam).at(len(PERTURBATIONS.get(fam).LEVELS))
            try:   # the neural codecs need their weights folders (bench weights encodec dac, carried along)
                p.check_resources()
            except Exception as e:  # noqa: BLE001 - reported and skipped: the other families still run
                print(f"prepare {fam}: skipped ({type(e).__name__}: {str(e)[:160]})")
                continue
            wav = x[0].astype(np.float32)
            ctx = lambda: Context(utt_id="u", pool=pool, resources=res)  # noqa: E731
            t = time.perf_counter()
            want = p(wav, SR, np.random.default_rng(5), ctx())
            cpu_s = time.perf_counter() - t
            w = torch.from_numpy(wav).to(dev)
            p.device_call(w, SR, np.random.default_rng(5), ctx())   # warm-up (cuFFT plans)
            sync()
            t = time.perf_counter()
            got = p.device_call(w, SR, np.random.default_rng(5), ctx())
            sync()
            dev_s = time.perf_counter() - t
            diff = float(np.max(np.abs(got.cpu().numpy() - want)))
            row = {"family": fam, "severity": p.severity, "max_abs_diff": diff, "cpu_ms": 1e3 * cpu_s,
                   "device_ms": 1e3 * dev_s, "speedup": cpu_s / dev_s if dev_s > 0 else None}
            S.R.setdefault("prepare", []).append(row)
            print(f"prepare {fam:17s}@{p.severity}: max |diff| {diff:.1e}, numpy {1e3 * cpu_s:7.1f} ms, "
                  f"{dev.type} {1e3 * dev_s:7.1f} ms")
