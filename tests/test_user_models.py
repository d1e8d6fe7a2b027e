"""A user's checkpoint: class spec + .pth (weights only) or .safetensors; mismatches and pickles refused."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from foundation.weights import WeightsError
from models import CheckpointMismatch, load_detector

SPEC = "userplugin.tiny_detector:TinyDetector"  # tests/ is on sys.path under pytest (rootdir conftest)
TESTS_DIR = str(Path(__file__).resolve().parent)


@pytest.fixture()
def model_and_files(tmp_path):
    from userplugin.tiny_detector import TinyDetector

    torch.manual_seed(0)
    m = TinyDetector()
    pth, st = tmp_path / "tiny.pth", tmp_path / "tiny.safetensors"
    torch.save(m.state_dict(), pth)
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(st))
    return m, pth, st


def test_pth_and_safetensors_load_to_the_same_model(model_and_files):
    m, pth, st = model_and_files
    x = torch.randn(2, 16000)
    want = m.eval()(x)
    for path in (pth, st):
        ld = load_detector(SPEC, checkpoint=path)
        torch.testing.assert_close(ld.detector.score(x), want)
        assert len(ld.sha256) == 64


def test_mismatch_names_missing_and_unexpected_keys(model_and_files, tmp_path):
    m, _, _ = model_and_files
    sd = m.state_dict()
    sd["extra.weight"] = sd.pop("out.weight")
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(CheckpointMismatch) as e:
        load_detector(SPEC, checkpoint=bad)
    assert "missing keys: out.weight" in str(e.value) and "unexpected keys: extra.weight" in str(e.value)


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_objects_are_refused(tmp_path):
    p = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, p)
    with pytest.raises(WeightsError, match="pickled objects"):
        load_detector(SPEC, checkpoint=p)


def test_bad_class_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="package.module:Class"):
        load_detector("tests.plugins.nowhere:Nope", checkpoint="x.pth")


def test_user_model_through_the_cli(model_and_files, tmp_path):
    _, pth, _ = model_and_files
    wav = tmp_path / "a.wav"
    sf.write(wav, (0.1 * np.sin(np.arange(20000) / 7)).astype(np.float32), 16000)
    p = subprocess.run([sys.executable, "-m", "bench.cli", "score", "--model", SPEC, "--checkpoint", str(pth),
                        "--json", str(wav)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": TESTS_DIR})
    assert p.returncode == 0, p.stderr
    assert '"score"' in p.stdout
