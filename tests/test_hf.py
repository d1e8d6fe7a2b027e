"""hf: models: tiny random transformers classifiers saved with save_pretrained (no download), scored by
`bench score`/`bench run` and checked against transformers itself; AntiDeepfake's fairseq layout; the
competence check in the run summary and the report."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from bench.cli import main
from foundation.audio import resample
from foundation.weights import sha256_file
from models import load_detector

SR = 16000


def _tiny(kind: str, labels, folder: Path, max_length: int | None = None, seed: int = 0) -> Path:
    """A tiny random ...ForSequenceClassification (2 layers, hidden 32) with a head scaled so that the
    logits differ by O(1), saved with its feature extractor."""
    import transformers as tf

    cfg_cls, model_cls = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2ForSequenceClassification),
                          "hubert": (tf.HubertConfig, tf.HubertForSequenceClassification),
                          "wavlm": (tf.WavLMConfig, tf.WavLMForSequenceClassification)}[kind]
    id2label = dict(enumerate(labels))
    cfg = cfg_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                  conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
                  num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=16,
                  num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(seed)
    model = model_cls(cfg).eval()
    with torch.no_grad():
        model.projector.weight.mul_(20)
        model.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    fe_kw = {"max_length": max_length} if max_length else {}
    tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True, **fe_kw).save_pretrained(folder)
    return folder


def _clip(seed: int, seconds: float = 0.6, sr: int = SR, tone: float | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.05 * rng.standard_normal(len(t))
    if tone:
        x += 0.3 * np.sin(2 * np.pi * tone * t)
    return x.astype(np.float32)


def _reference(folder: Path, clip: np.ndarray, labels) -> float:
    """transformers' own: feature extractor -> model -> logit(bona fide) - logit(spoof)."""
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    fe = AutoFeatureExtractor.from_pretrained(folder)
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(**fe(clip, sampling_rate=SR, return_tensors="pt")).logits[0]
    b = next(i for i, v in enumerate(labels) if v.lower() in ("bonafide", "real", "bona-fide", "genuine"))
    return float(logits[b] - logits[1 - b])


def _score_cli(capsys, model: str, files, *extra) -> list[dict]:
    capsys.readouterr()
    assert main(["score", "--model", model, "--json", *extra, *map(str, files)]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind,labels", [("wav2vec2", ("spoof", "bonafide")), ("wav2vec2", ("Real", "FAKE")),
                                         ("hubert", ("bona-fide", "spoof")), ("hubert", ("deepfake", "genuine")),
                                         ("wavlm", ("bonafide", "spoof")), ("wavlm", ("fake", "real"))])
def test_score_equals_transformers_logit_difference(tmp_path, capsys, kind, labels):
    folder = _tiny(kind, labels, tmp_path / "m")
    clips = [_clip(1, 0.6), _clip(2, 1.3, tone=220)]
    files = []
    for i, c in enumerate(clips):
        sf.write(tmp_path / f"c{i}.wav", c, SR, subtype="FLOAT")
        files.append(tmp_path / f"c{i}.wav")
    slow = _clip(3, 0.9, sr=8000)          # another rate: resampled on the way in (foundation.audio)
    sf.write(tmp_path / "c8k.wav", slow, 8000, subtype="FLOAT")
    files.append(tmp_path / "c8k.wav")
    got = _score_cli(capsys, f"hf:{folder}", files)
    want = [_reference(folder, c, labels) for c in clips] + [_reference(folder, resample(slow, 8000, SR), labels)]
    assert [r["policy"] for r in got] == ["whole"] * 3
    np.testing.assert_allclose([r["score"] for r in got], want, atol=1e-4)
    assert max(abs(w) for w in want) > 0.05      # the head is scaled: a real difference is measured


def test_preprocessing_matches_the_feature_extractor_and_passes_gradients(tmp_path):
    from transformers import AutoFeatureExtractor

    folder = _tiny("wav2vec2", ("spoof", "bonafide"), tmp_path / "m")
    det = load_detector(f"hf:{folder}").detector
    fe = AutoFeatureExtractor.from_pretrained(folder)
    for seed, scale in ((0, 1.0), (1, 1e-3), (2, 0.9)):
        x = _clip(seed, 0.5) * scale
        want = fe(x, sampling_rate=SR, return_tensors="np")["input_values"][0]
        got = det.preprocess(torch.from_numpy(x)[None]).numpy()[0]
        assert np.max(np.abs(got - want)) <= 1e-5
    xd = torch.from_numpy(_clip(4, 0.05)).double()[None].requires_grad_(True)
    assert torch.autograd.gradcheck(det.preprocess, (xd,))       # differentiable, exactly
    x = torch.from_numpy(_clip(5, 0.5))[None].requires_grad_(True)
    det(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_one_pgd_step_raises_a_spoof_clips_score(tmp_path):
    from attacks import ATTACKS

    det = load_detector(f"hf:{_tiny('hubert', ('fake', 'real'), tmp_path / 'm')}").detector
    x = torch.from_numpy(_clip(7, 0.5))[None]
    attack = ATTACKS.get("pgd-linf").at(1, steps=1, random_start=False, snr_db=30.0)
    adv = attack(det, x, torch.tensor([0]), torch.Generator().manual_seed(0))
    assert float(det.score(adv)[0]) > float(det.score(x)[0])


def test_refusals_and_the_label_map(tmp_path, capsys):
    clip = tmp_path / "c.wav"
    sf.write(clip, _clip(0, 0.5), SR)
    odd = _tiny("wav2vec2", ("cat", "dog"), tmp_path / "odd")
    three = _tiny("wav2vec2", ("real", "fake", "unsure"), tmp_path / "three")
    for folder, what in ((odd, "do not name one bona fide and one spoof"), (three, "has 3 classes")):
        with pytest.raises(ValueError, match=re.escape(what) + ".*--label-map"):
            load_detector(f"hf:{folder}")
        assert main(["score", "--model", f"hf:{folder}", str(clip)]) == 1
        assert "--label-map" in capsys.readouterr().err
    # named: the score is logit(named bona fide) - logit(named spoof), for labels or indices
    a = _score_cli(capsys, f"hf:{odd}", [clip], "--label-map", "bonafide=DOG,spoof=cat")[0]["score"]
    b = _score_cli(capsys, f"hf:{odd}", [clip], "--label-map", "bonafide=0,spoof=1")[0]["score"]
    assert a == pytest.approx(-b, abs=1e-6) and abs(a) > 0
    assert _score_cli(capsys, f"hf:{three}", [clip], "--label-map", "bonafide=real,spoof=fake")
    assert main(["score", "--model", "aasist", "--label-map", "bonafide=a,spoof=b", str(clip)]) == 1
    assert "hf: models" in capsys.readouterr().err
    with pytest.raises(ValueError, match="exactly bonafide and spoof"):
        load_detector(f"hf:{odd}", label_map="real=dog")
    with pytest.raises(Exception, match="no such folder"):
        load_detector(f"hf:{tmp_path / 'missing'}")


def _folder_data(root: Path, n: int = 3, seconds: float = 0.5) -> Path:
    for label, tone in (("bonafide", 180.0), ("spoof", None)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            sf.write(root / label / f"{label[0]}{i}.wav", _clip(10 * i + (tone is None), seconds, tone=tone), SR)
    return root


def test_adversarial_suite_runs_on_an_hf_model_with_provenance(tmp_path, capsys):
    folder = _tiny("wav2vec2", ("spoof", "bonafide"), tmp_path / "m", max_length=8000)
    data = _folder_data(tmp_path / "data", n=2)
    suite = tmp_path / "tiny-adv.yaml"
    suite.write_text("name: tiny-adv\nconditions:\n"
                     "  - {attack: pgd-linf, severities: [1], params: {steps: 2}}\n"
                     f"  - {{attack: fgsm, severities: [5], source: 'hf:{folder}'}}\n")
    out = tmp_path / "run"
    assert main(["run", "--suite", str(suite), "--model", f"hf:{folder}", "--data", str(data), "--out", str(out),
                 "--workers", "0", "--device", "cpu", "--policy", "whole"]) == 0
    res = __import__("pandas").read_csv(out / "results.csv")
    assert set(res["family"]) == {"clean", "pgd-linf", f"fgsm<-hf:{folder}"}
    assert (res["n_bonafide"] == 2).all() and (res["n_spoof"] == 2).all()
    prov = json.loads((out / "run.json").read_text())
    m = prov["models"][0]
    assert m["name"] == f"hf:{folder}" and m["card"]["architecture"] == "hf"
    assert m["card"]["extra"]["files"] == {"model.safetensors": sha256_file(folder / "model.safetensors")}
    assert m["sha256"] == sha256_file(folder / "model.safetensors")
    assert "revision" in m["card"]["extra"] and m["card"]["extra"]["bonafide_label"] == "bonafide"
    assert m["card"]["extra"]["nb_samp"] == 8000 and prov["policy"]["name"] == "whole"


def test_cached_hub_snapshot_is_found_offline_and_listed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sha = "0123456789abcdef0123456789abcdef01234567"
    snap = _tiny("wavlm", ("human", "ai"), tmp_path / "cache" / "hf" / "org--tiny-detector" / sha)
    (snap / "bench-hf.json").write_text(json.dumps({"repo_id": "org/tiny-detector", "ref": "v1", "revision": sha,
                                                    "fetched": "2026-01-01T00:00:00",
                                                    "files": {"model.safetensors":
                                                              sha256_file(snap / "model.safetensors")}}))
    for spec in ("hf:org/tiny-detector", "hf:org/tiny-detector@v1", f"hf:org/tiny-detector@{sha[:10]}"):
        ld = load_detector(spec)
        assert ld.card.extra["revision"] == sha and ld.card.extra["source"] == "cache"
    with pytest.raises(Exception, match="not in the cache"):
        load_detector("hf:org/tiny-detector@v2")
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    row = rows[f"hf:org/tiny-detector@{sha}"]
    assert row["revision"] == sha and "0=human" in row["labels"] and "1=ai" in row["labels"]
    (snap / "model.safetensors").write_bytes((snap / "model.safetensors").read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="changed since the snapshot was fetched"):
        load_detector("hf:org/tiny-detector")


# ------------------------------------------------------------------ AntiDeepfake (fairseq layout)
def _to_fairseq(model, prefix: str, group_norm: bool = False) -> dict[str, torch.Tensor]:
    """Writes a transformers ...Model's weights in the fairseq layout of AntiDeepfake's checkpoints
    (``extractor_mode`` layer_norm: ``conv_layers.i.2.1``; default/group norm: ``conv_layers.0.2``)."""
    out = {}
    for k, v in model.state_dict().items():
        k2 = (k.replace("feature_projection.projection", "post_extract_proj")
              .replace("feature_projection.layer_norm", "layer_norm")
              .replace("encoder.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv.0.weight_g")
              .replace("encoder.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv.0.weight_v")
              .replace("encoder.pos_conv_embed.conv.bias", "encoder.pos_conv.0.bias")
              .replace("masked_spec_embed", "mask_emb").replace(".attention.", ".self_attn.")
              .replace(".feed_forward.intermediate_dense", ".fc1").replace(".feed_forward.output_dense", ".fc2"))
        k2 = re.sub(r"conv_layers\.(\d+)\.conv\.", r"conv_layers.\1.0.", k2)
        k2 = re.sub(r"conv_layers\.(\d+)\.layer_norm\.", r"conv_layers.\1.2." if group_norm else r"conv_layers.\1.2.1.",
                    k2)
        k2 = re.sub(r"(encoder\.layers\.\d+)\.layer_norm\.", r"\1.self_attn_layer_norm.", k2)
        out[prefix + k2] = v.clone()
    return out


@pytest.mark.parametrize("family,norm", [("wav2vec2", "layer"), ("hubert", "layer"), ("wav2vec2", "group")])
def test_antideepfake_fairseq_layout_scores_like_their_model(tmp_path, capsys, family, norm):
    import transformers as tf

    cfg_cls, cls = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model), "hubert": (tf.HubertConfig, tf.HubertModel)}[family]
    cfg = cfg_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                  conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                  conv_bias=norm == "layer", feat_extract_norm=norm, do_stable_layer_norm=norm == "layer",
                  layer_norm_eps=1e-5,
                  num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, hidden_act="gelu")
    torch.manual_seed(3)
    ssl = cls(cfg).eval()
    proj = torch.nn.Linear(32, 2)
    with torch.no_grad():
        proj.weight.mul_(30)
    state = _to_fairseq(ssl, "m_ssl.model.", group_norm=norm == "group")
    state.update({"proj_fc.weight": proj.weight.detach().clone(), "proj_fc.bias": proj.bias.detach().clone()})
    state["m_ssl.model.quantizer.vars"] = torch.zeros(1, 4, 8)            # pre-training only: dropped
    folder = tmp_path / f"{family}-anti-deepfake"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    hints = {"num_attention_heads": 2, "family": family, "layer_norm_first": norm == "layer"}
    (folder / "bench-antideepfake.json").write_text(json.dumps(hints))
    clip = _clip(4, 0.8, tone=300)
    sf.write(tmp_path / "c.wav", clip, SR, subtype="FLOAT")
    # their forward: F.layer_norm(wav) -> SSL last hidden state -> mean over time -> proj_fc; [fake, real]
    with torch.no_grad():
        wav = torch.nn.functional.layer_norm(torch.from_numpy(clip), (len(clip),))[None]
        pred = proj(ssl(wav).last_hidden_state.mean(dim=1))[0]
    got = _score_cli(capsys, f"hf:{folder}", [tmp_path / "c.wav"])[0]["score"]
    assert got == pytest.approx(float(pred[1] - pred[0]), abs=1e-4) and abs(float(pred[1] - pred[0])) > 0.05
    del state["proj_fc.bias"]
    state["m_ssl.model.encoder.unknown.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="encoder.unknown.weight"):
        load_detector(f"hf:{folder}")


# ------------------------------------------------------------------ competence check
class _Zcr(torch.nn.Module):
    """Zero-crossing rate detectors for the competence test: tones (bona fide here) cross zero rarely."""
    sample_rate, nb_samp, sign = 16000, 8000, -1.0

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    @classmethod
    def from_config(cls, config):
        return cls()

    def load_checkpoint_state(self, state):
        self.load_state_dict(state)

    def forward(self, wav):
        zcr = (torch.sign(wav[:, 1:]) != torch.sign(wav[:, :-1])).float().mean(dim=1)
        return self.sign * self.w * zcr

    def score(self, wav):
        with torch.inference_mode():
            return self.forward(wav)


class ZcrGood(_Zcr):
    pass


class ZcrInverted(_Zcr):
    sign = 1.0


class Coin(_Zcr):
    sign = 0.0


@pytest.mark.parametrize("model,flag", [("ZcrInverted", "orientation likely inverted, see --label-map"),
                                        ("Coin", "at chance on this data"), ("ZcrGood", None)])
def test_at_chance_and_inverted_models_are_flagged_in_summary_and_report(tmp_path, capsys, model, flag):
    data = _folder_data(tmp_path / "data", n=6, seconds=0.3)
    ckpt = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(1)}, str(ckpt))
    suite = tmp_path / "tiny-noise.yaml"
    suite.write_text("name: tiny-noise\nconditions:\n  - {family: white-noise, severities: [1]}\n")
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["run", "--suite", str(suite), "--model", f"test_hf:{model}", "--checkpoint", str(ckpt),
                 "--data", str(data), "--out", str(out), "--workers", "0", "--device", "cpu"]) == 0
    cap = capsys.readouterr()
    summary = cap.out + cap.err   # the closing summary: tables on stdout, notes (competence among them) on stderr
    assert main(["report", str(out)]) == 0
    md = (out / "report" / "report.md").read_text()
    if flag is None:
        assert "competence check" not in summary and "Competence check" not in md
        return
    assert f"competence check: test_hf:{model}: clean EER" in summary and flag in summary
    assert f"Competence check: test_hf:{model}" in md and flag in md
    assert f"leave out test_hf:{model}" in md


def test_report_aggregates_leave_out_at_chance_models(tmp_path):
    from reports.report import build_report
    from reports.synthetic import make_run

    run = make_run(tmp_path / "r", models=("good", "coin", "fine"), separation={"good": 3.0, "coin": 0.0,
                                                                               "fine": 2.5})
    rep = build_report(run, plots=False, reference="coin")
    assert set(rep.degradation["model"]) == {"good", "fine"} and set(rep.degradation["reference"]) == {"good"}
    md = (rep.out / "report.md").read_text()
    assert "Competence check: coin" in md and "leave out coin" in md and "the mCE reference is good" in md


def test_compare_means_leave_out_at_chance_models(tmp_path):
    from bench.metrics.competence import check
    from reports.compare import compare_runs, summary
    from reports.synthetic import make_run

    runs = [make_run(tmp_path / f"r{i}", models=("good", "coin"), separation={"good": 3.0, "coin": 0.0}, seed=i,
                     fams={"mp3": ("perturbation", (1, 2))}) for i in range(2)]
    status = check(__import__("pandas").read_csv(runs[0] / "results.csv")).set_index("model")["status"]
    assert status["good"] == "ok" and status["coin"] == "at-chance"
    cmp = compare_runs(runs, n_boot=20)
    assert set(summary(cmp)["label"]) == {"good@r1"}
    assert any("leave out coin@r0, coin@r1" in n for n in cmp.notes)


def test_whole_policy_scores_long_clips_by_windows_of_the_maximum(tmp_path):
    from bench.scoring.windows import Policy
    from bench.scoring.score import score_batch

    ld = load_detector(f"hf:{_tiny('wav2vec2', ('spoof', 'bonafide'), tmp_path / 'm')}", config={"max_seconds": 0.5})
    det = ld.detector
    assert det.max_samples == 8000 and ld.card.config["max_seconds"] == 0.5
    short, long = _clip(1, 0.3), _clip(2, 1.3)
    got = score_batch(det, [short, long], "whole", batch_size=3)
    want_short = float(det.score(torch.from_numpy(short)[None])[0])          # as it is: no tiling, no padding
    assert len(long) == 20800
    starts = [0, 4000, 8000, 12000, 12800]        # hop = half the maximum, plus one window ending at the end
    want_long = np.mean([float(det.score(torch.from_numpy(long[s:s + 8000])[None])[0]) for s in starts])
    np.testing.assert_allclose(got, [want_short, want_long], atol=1e-5)
    assert Policy.parse("whole").resolved(8000) == {"name": "whole", "hop": 4000, "agg": "mean", "window": 8000}
