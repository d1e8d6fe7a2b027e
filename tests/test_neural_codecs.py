"""The neural codec families (encodec, dac) with tiny random models of the real models' framing.

The models are real ``transformers`` classes built here with the published models' frame rate and
codebook size (EnCodec 24 kHz: hop 320 = 75 frames/s, 1024-entry codebooks, 1.5..24 kb/s; DAC 16 kHz:
hop 320 = 50 frames/s, 12 codebooks of 1024) but few channels and random weights, saved with
``save_pretrained`` and passed with ``checkpoint``: the ladder, bitrates and plumbing are checked
without the real weights. With the real weights present (``$BENCH_WEIGHTS_DIR/encodec_24khz``,
``dac_16khz``) the alignment on real speech is measured as for the classical codecs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from foundation.weights import WeightsError
from perturbations import make
from perturbations._measure import alignment_lag
from tiny_codecs import FOLDERS, build_tiny_codecs

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "bench" / "data" / "demo" / "audio" / "D0001.flac"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A weights folder laid out like $BENCH_WEIGHTS_DIR: the tiny codecs (and the official AASIST)."""
    root = tmp_path_factory.mktemp("weights")
    build_tiny_codecs(root)
    shared = Path(os.environ["BENCH_WEIGHTS_DIR"])
    if (shared / "aasist").is_dir():
        (root / "aasist").symlink_to((shared / "aasist").resolve())
    return root


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "empty-weights"))
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("BENCH_OFFLINE", "1")


def _speech(sr: int = 16000, seconds: float = 2.0) -> np.ndarray:
    from foundation.audio import load_audio

    wav, _ = load_audio(SPEECH, target_sr=sr)
    return wav[:int(seconds * sr)]


FAMILIES = FOLDERS


def test_listed_with_five_levels_and_their_bitrates(capsys):
    from bench.cli import main

    assert main(["perturbations", "--json"]) == 0
    fams = {f["family"]: f for f in json.loads(capsys.readouterr().out)}
    for name in ("encodec", "dac", "replay"):
        assert [lv["severity"] for lv in fams[name]["levels"]] == [1, 2, 3, 4, 5], name
    assert [lv["params"]["bandwidth_kbps"] for lv in fams["encodec"]["levels"]] == [24.0, 12.0, 6.0, 3.0, 1.5]
    dac = fams["dac"]["levels"]
    assert [lv["params"]["kbps"] for lv in dac] == [lv["params"]["n_codebooks"] * 0.5 for lv in dac]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_encodec_parity_with_transformers(weights, k):
    import torch

    p = make("encodec", k, checkpoint=str(weights / "encodec_24khz"))
    model = p.model(device="cpu")
    x = _speech(24000, 1.5).astype(np.float32)
    ours, bits = p.roundtrip([x], model)
    hop = 320
    padded = np.zeros((-(-x.size // hop) + 1) * hop, np.float32)
    padded[:x.size] = x
    with torch.inference_mode():
        ref = model(torch.from_numpy(padded)[None, None], bandwidth=p.bandwidth_kbps).audio_values[0, 0].numpy()
    assert ours[0].shape == x.shape
    assert np.max(np.abs(ours[0] - ref[:x.size])) <= 1e-4
    # the codebooks the bandwidth takes at 75 frames/s x 10 bits, and the payload's bitrate
    assert p.n_codebooks(model) == int(round(p.bandwidth_kbps * 1000 / 750))
    frames = padded.size // hop
    assert bits[0] == p.n_codebooks(model) * frames * 10


@pytest.mark.parametrize("k", [1, 3, 5])
def test_dac_parity_with_transformers(weights, k):
    import torch

    p = make("dac", k, checkpoint=str(weights / "dac_16khz"))
    model = p.model(device="cpu")
    x = _speech(16000, 1.5).astype(np.float32)
    ours, bits = p.roundtrip([x], model)
    padded = np.zeros((-(-x.size // 320) + 1) * 320, np.float32)
    padded[:x.size] = x
    with torch.inference_mode():
        ref = model(torch.from_numpy(padded)[None, None], n_quantizers=p.n_codebooks).audio_values[0].numpy()
    assert np.max(np.abs(ours[0] - ref[:x.size])) <= 1e-4
    assert bits[0] == p.n_codebooks * (padded.size // 320) * 10


@pytest.mark.parametrize("k", [1, 5])
def test_mimi_parity_with_transformers(weights, k):
    import torch

    p = make("mimi", k, checkpoint=str(weights / "mimi"))
    model = p.model(device="cpu")
    x = _speech(24000, 1.5).astype(np.float32)
    ours, bits = p.roundtrip([x], model)
    padded = np.zeros((-(-x.size // 1920) + 1) * 1920, np.float32)
    padded[:x.size] = x
    with torch.inference_mode():
        ref = model(torch.from_numpy(padded)[None, None], num_quantizers=p.n_codebooks).audio_values[0, 0].numpy()
    assert np.max(np.abs(ours[0] - ref[:x.size])) <= 1e-4
    assert bits[0] == p.n_codebooks * (padded.size // 1920) * 11


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_length_bitrate_determinism_and_batches(weights, family):
    ck = str(weights / FAMILIES[family])
    x = _speech(16000, 2.0)
    for k in (1, 5):
        p = make(family, k, checkpoint=ck)
        y, bitrate = p.encode(x, 16000)
        nominal = 1000 * (p.bandwidth_kbps if family == "encodec" else p.kbps)
        assert y.shape == x.shape and np.all(np.isfinite(y))
        assert abs(bitrate / nominal - 1) < 0.05, (k, bitrate, nominal)   # + the padded last frames
        again = p(x, 16000, np.random.default_rng(1))
        assert np.array_equal(p(x, 16000, np.random.default_rng(0)), again)
    for sr, n in ((8000, 8000), (22050, 12345), (16000, 100)):
        clip = _speech(sr, 1.0)[:n]
        assert make(family, 3, checkpoint=ck)(clip, sr, None).shape == clip.shape
    # the level reaches the model: fewer codebooks, other audio
    assert not np.allclose(make(family, 1, checkpoint=ck)(x, 16000, None), make(family, 5, checkpoint=ck)(x, 16000, None))
    p = make(family, 2, checkpoint=ck)
    clips = [x[:16000], x[:24000], x[16000:32000]]
    batched = p.apply_batch(clips, 16000)
    for c, b in zip(clips, batched):
        np.testing.assert_allclose(b, p(c, 16000, None), atol=1e-5)


def test_refused_without_weights_with_one_line(no_weights):
    for family, folder in FAMILIES.items():
        p = make(family, 1)
        with pytest.raises(WeightsError) as e:
            p.check_resources()
        msg = str(e.value)
        assert "\n" not in msg and folder in msg and f"bench weights {family}" in msg and "checkpoint=" in msg
    with pytest.raises(WeightsError, match="config.json"):
        make("encodec", 1, checkpoint="/nonexistent/folder").check_resources()


def test_run_refused_before_any_audio_is_read(no_weights, monkeypatch, tmp_path):
    import foundation.audio
    from bench import api

    def boom(*a, **k):
        raise AssertionError("audio was read")

    monkeypatch.setattr(foundation.audio, "load_audio", boom)
    with pytest.raises(RuntimeError, match=r"encodec@1: no encodec weights: put .*encodec_24khz"):
        api.run("neural-codec", models=("aasist",), limit=2, out=str(tmp_path / "run"), workers=0)


def test_wrong_level_for_the_model_is_clear(weights):
    with pytest.raises(ValueError, match="target bandwidths"):
        make("encodec", 1, bandwidth_kbps=9.0, checkpoint=str(weights / "encodec_24khz")).model(device="cpu")
    p = make("dac", 1, n_codebooks=6, checkpoint=str(weights / "dac_16khz"))
    assert p.kbps == 3.0 and p.model(device="cpu") is not None


def test_cli_param_and_weights(weights, tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("BENCH_OFFLINE", "1")
    src = tmp_path / "in.wav"
    import soundfile as sf

    sf.write(src, _speech(16000, 1.0), 16000)
    out = tmp_path / "out.wav"
    assert main(["perturb", "--json", "--family", "encodec", "--severity", "5", "--param",
                 f"checkpoint={weights / 'encodec_24khz'}", str(src), str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["perturbation"]["params"]["bandwidth_kbps"] == 1.5
    assert sf.info(out).frames == 16000
    # a YAML scalar for any family, and an unknown name refused with the family's parameters
    assert main(["perturb", "--json", "--family", "mp3", "--severity", "1", "--param", "bitrate=32000", str(src),
                 str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["perturbation"]["params"]["bitrate"] == 32000
    assert main(["perturb", "--family", "mp3", "--severity", "1", "--param", "bitrat=3", str(src), str(out)]) == 1
    err = capsys.readouterr().err
    assert "mp3: unknown parameter(s) bitrat" in err and "bitrate" in err
    # bench weights: a verified copy into the cache, then found there without BENCH_WEIGHTS_DIR
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["weights", "encodec", "dac", "--from", str(weights), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["copied", "copied"]
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(tmp_path / "nothing"))
    assert make("encodec", 1).weights_folder() == tmp_path / "cache" / "weights" / "encodec_24khz"
    assert main(["weights", "dac", "--json"]) == 0 and json.loads(capsys.readouterr().out)[0]["status"] == "present"


def tiny_detector(tmp_path: Path) -> tuple[str, str]:
    """A small user detector (tests/userplugin) and its checkpoint: a run's plumbing without AASIST's cost."""
    import torch
    from userplugin.tiny_detector import TinyDetector

    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(TinyDetector().state_dict(), path)
    return "userplugin.tiny_detector:TinyDetector", str(path)


def test_neural_codec_suite_runs_on_the_demo_set(weights, monkeypatch, tmp_path):
    from bench import api

    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    model, ckpt = tiny_detector(tmp_path)
    res = api.run("neural-codec", models=(model,), checkpoint=ckpt, limit=4, out=str(tmp_path / "run"),
                  workers=0, device="cpu", n_boot=10)
    r = res.results
    assert list(r["family"].unique()) == ["clean", "encodec", "dac", "mp3+encodec"]
    assert len(r) == 16 and (r["n_bonafide"] + r["n_spoof"] == 4).all() and res.problems.empty
    degraded = r[r["family"] != "clean"]
    assert degraded["pesq"].between(1.0, 4.7).all() and degraded["stoi"].notna().all()
    used = json.loads((res.out / "run.json").read_text())["perturbation_weights"]
    assert sorted(w["family"] for w in used) == ["dac", "encodec"]
    assert all(len(w["sha256"]["model.safetensors"]) == 64 for w in used)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_real_weights_are_aligned_on_speech(family):
    """Measured like the classical codecs: the lag maximising the cross-correlation is 0 (+-1 sample)."""
    folder = Path(os.environ.get("BENCH_WEIGHTS_DIR", "")) / FAMILIES[family]
    if not (folder / "config.json").is_file():
        pytest.skip(f"the real {family} weights are not in {folder} (bench weights {family})")
    x = _speech(16000, 3.0)
    for k in (1, 3, 5):
        y = make(family, k)(x, 16000, None)
        assert abs(alignment_lag(x, y, max_lag=2000)) <= 1, (family, k)


def test_check_resources_reaches_chain_steps(no_weights):
    from perturbations import Chain

    chain = Chain(severity=1, steps=(make("mp3", 1), make("encodec", 1)))
    with pytest.raises(WeightsError):
        chain.check_resources()


def test_device_path_gives_the_cpu_paths_audio(weights, monkeypatch, tmp_path):
    """--prepare-on device: the scorer runs the codec on its device (here the CPU) and measures its quality;
    the scores and quality equal those of the workers' path."""
    import torch

    from bench import api

    x = _speech(16000, 1.0)
    p = make("encodec", 4, checkpoint=str(weights / "encodec_24khz"))
    assert p.on_device
    np.testing.assert_allclose(p.device_call(torch.from_numpy(x), 16000, None).numpy(), p(x, 16000, None),
                               atol=1e-6)
    monkeypatch.setenv("BENCH_WEIGHTS_DIR", str(weights))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    (tmp_path / "s.yaml").write_text("name: s\nconditions:\n  - {family: dac, severities: [2]}\n")
    model, ckpt = tiny_detector(tmp_path)
    runs = [api.run(str(tmp_path / "s.yaml"), models=(model,), checkpoint=ckpt, limit=4, workers=0,
                    device="cpu", n_boot=10, out=str(tmp_path / where), prepare_on=where).results
            for where in ("cpu", "device")]
    for col in ("eer", "snr_db", "pesq", "stoi"):
        np.testing.assert_allclose(runs[0][col].to_numpy(float), runs[1][col].to_numpy(float), rtol=1e-4)
    assert runs[1]["pesq"].notna().sum() == 1
    assert json.loads((tmp_path / "device" / "run.json").read_text())["config"]["resolved_prepare_on"] == "device"


def test_a_chain_step_takes_params(weights, tmp_path):
    from bench.suites.suite import load_suite

    ck = str(weights / "encodec_24khz")
    (tmp_path / "s.yaml").write_text("name: s\nconditions:\n  - {name: mp3+encodec, chain: [mp3, {family: encodec, "
                                     f"params: {{checkpoint: {ck}}}}}], severities: [2, 5]}}\n")
    conds = load_suite(str(tmp_path / "s.yaml")).expand()
    steps = conds[-1].spec["params"]["steps"]
    assert [s["family"] for s in steps] == ["mp3", "encodec"]
    assert steps[1]["params"] == {"checkpoint": ck, "bandwidth_kbps": 1.5} and steps[0]["params"]["bitrate"] == 8000
    (tmp_path / "bad.yaml").write_text("name: b\nconditions:\n  - {chain: [mp3, {family: encodec, nope: 1}]}\n")
    with pytest.raises(ValueError, match=r"chain\[1\]"):
        load_suite(str(tmp_path / "bad.yaml"))
