"""`bench weights` fills the user cache ahead of time: copied only when the sha256 matches the card,
found there afterwards without BENCH_WEIGHTS_DIR, and a wrong or missing file is refused by name."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from foundation.weights import WeightsError, install, resolve, sha256_file
from models import CARDS, Card

SHARED = Path(__file__).resolve().parents[2] / "shared" / "weights"


def _card(tmp_path, content=b"tensor bytes"):
    src = tmp_path / "src" / "fam"
    src.mkdir(parents=True)
    (src / "m.pth").write_bytes(content)
    return Card(name="m", architecture="x", config={}, filename="fam/m.pth", sha256=sha256_file(src / "m.pth"))


def test_install_copies_a_verified_file_once_and_resolve_finds_it(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_WEIGHTS_DIR", raising=False)
    card = _card(tmp_path)
    path, how = install(card, tmp_path / "src")
    assert how == "copied" and path == tmp_path / "cache" / "weights" / "fam" / "m.pth"
    assert install(card, tmp_path / "src") == (path, "present")
    assert resolve(card, download=False) == path
    assert not list(path.parent.glob("*.part"))


def test_install_refuses_a_file_that_is_not_the_cards(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    card = _card(tmp_path)
    (tmp_path / "src" / "fam" / "m.pth").write_bytes(b"something else")
    with pytest.raises(WeightsError, match=r"m\.pth has sha256 .* not installed"):
        install(card, tmp_path / "src")
    assert not (tmp_path / "cache" / "weights" / "fam" / "m.pth").exists()
    with pytest.raises(WeightsError, match="does not exist"):
        install(card, tmp_path / "elsewhere")


def test_bench_weights_command_installs_the_official_checkpoints(tmp_path):
    env = {"BENCH_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "bench.cli", "weights", "aasist", "aasist-l", "--from", str(SHARED), "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = {r["model"]: r for r in json.loads(p.stdout)}
    assert {rows[m]["status"] for m in ("aasist", "aasist-l")} == {"copied"}
    for m in ("aasist", "aasist-l"):
        assert sha256_file(rows[m]["path"]) == CARDS.get(m).sha256
    bad = subprocess.run([sys.executable, "-m", "bench.cli", "weights", "no-such-model", "--from", str(SHARED)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "no-such-model" in bad.stderr
