"""Plug-ins: a perturbation, an attack and a detector from another installed distribution, declared only by
entry point, are registered under their names, listed, and run; a clash with a built-in is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

PLUGIN = '''
"""A plug-in distribution for the tests: tremolo (amplitude modulation), a no-op attack, a constant detector."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from attacks.base import Attack
from models.base import Detector
from perturbations.base import Perturbation

LEVELS = ({"depth": 0.1}, {"depth": 0.2}, {"depth": 0.4}, {"depth": 0.6}, {"depth": 0.8})


@dataclass(frozen=True)
class Tremolo(Perturbation):
    """Tremolo: the level swings by ``depth`` at 5 Hz."""

    family: ClassVar[str] = "tremolo"
    LEVELS: ClassVar[tuple] = LEVELS
    depth: float = 0.1

    def validate(self):
        if not 0 <= self.depth <= 1:
            raise ValueError(f"tremolo: depth must be within 0..1, got {self.depth}")

    def apply(self, wav, sr, rng, context=None):
        t = np.arange(len(wav)) / sr
        return wav * (1 - self.depth * (0.5 + 0.5 * np.sin(2 * np.pi * 5 * t + rng.uniform(0, 2 * np.pi))))


@dataclass(frozen=True)
class Nothing(Attack):
    """An attack that changes nothing."""

    name: ClassVar[str] = "nothing"
    LEVELS: ClassVar[tuple] = ({"snr_db": 40.0},)
    snr_db: float = 40.0

    def __call__(self, detector, wav, label, generator):
        return wav.clone()


class Loudness(Detector):
    """Scores a clip by its RMS level (a detector plug-in for the tests)."""

    sample_rate = 16000
    nb_samp = 64600

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(1))

    @classmethod
    def from_config(cls, config):
        return cls()

    def forward(self, wav):
        return self.gain * wav.pow(2).mean(dim=-1).sqrt()


@dataclass(frozen=True)
class FakeMp3(Perturbation):
    """Tries to take a built-in's name."""

    family: ClassVar[str] = "mp3"
    LEVELS: ClassVar[tuple] = LEVELS
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """A folder holding an installed distribution (package + dist-info with entry points), as pip leaves it."""
    root = tmp_path_factory.mktemp("site")
    (root / "bench_plugin_demo.py").write_text(PLUGIN)
    info = root / "bench_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bench-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [deepfake_bench.perturbations]
        tremolo = bench_plugin_demo:Tremolo
        mp3 = bench_plugin_demo:FakeMp3

        [deepfake_bench.attacks]
        nothing = bench_plugin_demo:Nothing

        [deepfake_bench.detectors]
        loudness = bench_plugin_demo:Loudness
        """))
    return root


def _bench(plugin_path, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


def test_plugins_are_listed_and_a_clash_is_refused(plugin_path):
    p = _bench(plugin_path, "perturbations", "--json")
    assert p.returncode == 0, p.stderr
    fams = {f["family"]: f for f in json.loads(p.stdout)}
    assert [lv["params"] for lv in fams["tremolo"]["levels"]][2] == {"depth": 0.4}
    assert fams["tremolo"]["description"].startswith("Tremolo")
    # the built-in mp3 is still the built-in; the plug-in that tried to take its name is named in the error
    assert fams["mp3"]["levels"][0]["params"]["bitrate"]
    assert "'mp3'" in p.stderr and "bench-plugin-demo" in p.stderr and "refused" in p.stderr
    m = _bench(plugin_path, "models", "--json")
    assert m.returncode == 0 and "loudness" in {r["name"] for r in json.loads(m.stdout)}


def test_a_plugin_perturbation_runs_in_a_suite(plugin_path, tmp_path):
    suite = tmp_path / "plug.yaml"
    suite.write_text("name: plug\nconditions:\n  - {family: tremolo, severities: [3]}\n"
                     "  - {attack: nothing, severities: [1]}\n")
    out = tmp_path / "run"
    p = _bench(plugin_path, "run", "--suite", str(suite), "--model", "loudness", "--checkpoint", str(_empty_ckpt(tmp_path)),
               "--limit", "6", "--out", str(out), "--workers", "1")
    assert p.returncode == 0, p.stderr[-2000:]
    r = pd.read_csv(out / "results.csv")
    assert set(zip(r["family"], r["severity"])) == {("clean", 0), ("tremolo", 3), ("nothing", 1)}
    s = pd.read_csv(out / "scores.csv")
    clean = s[s.family == "clean"].set_index("utt_id")["score"]
    trem = s[s.family == "tremolo"].set_index("utt_id")["score"]
    assert (trem < clean).all()   # tremolo only lowers the level, and this detector scores the level
    nothing = s[s.family == "nothing"].set_index("utt_id")["score"]
    assert nothing.index.size == clean.index.size and r.loc[r.family == "nothing", "adv_attack"].item() == "nothing"


def _empty_ckpt(tmp_path: Path) -> Path:
    from safetensors.torch import save_file
    import torch

    p = tmp_path / "loudness.safetensors"
    save_file({"gain": torch.ones(1)}, str(p))
    return p
