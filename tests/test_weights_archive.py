"""RawNet2's published weights: a zip with no digest, downloaded, unzipped and trusted on first use.

The whole path runs against a zip made here (a state dict of the card's RawNet2, saved as the official main.py
saves it: ``torch.save(model.state_dict(), path)``) served by a real HTTP server on 127.0.0.1. The card's url is
monkeypatched to that server because the real address (www.asvspoof.org) cannot be reached from the test machines.
"""
import dataclasses
import http.server
import io
import json
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from foundation.weights import WeightsError, install, resolve
from models import CARDS, load_detector
from models.rawnet2 import RawNet2

ROOT = Path(__file__).resolve().parents[1]


def _official_state(seed: int) -> dict:
    model = RawNet2.from_config(CARDS.get("rawnet2").config)
    g = torch.Generator().manual_seed(seed)
    params = {k for k, _ in model.named_parameters()}   # BatchNorm statistics keep their initial 0 / 1
    return {k: (torch.randn(v.shape, generator=g) * 0.05 if k in params else v)
            for k, v in model.state_dict().items()}


def _zip(state: dict, member: str = "pre_trained_DF_RawNet2/pre_trained_DF_model.pth") -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(member, buf.getvalue())
    return out.getvalue()


@pytest.fixture
def server():
    """Serves ``server.files[path] = bytes`` on 127.0.0.1; stopped at the end."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    httpd.files = files
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    t.join(10)


@pytest.fixture
def card(server, tmp_path, monkeypatch):
    """The rawnet2 card, its url on the loopback server (the real one is unreachable here), cache in tmp_path."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("BENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    real = CARDS.get("rawnet2")
    local = dataclasses.replace(real, url=server.base + "/asvspoof2021/pre_trained_DF_RawNet2.zip")
    monkeypatch.setitem(CARDS._items, "rawnet2", local)
    return local


def test_download_unzip_record_reuse_refuse_and_accept(card, server, tmp_path):
    state = _official_state(1)
    server.files["/asvspoof2021/pre_trained_DF_RawNet2.zip"] = first = _zip(state)
    # first use: downloaded, unzipped, digests recorded beside the file; the keys load strictly
    loaded = load_detector("rawnet2")
    cached = tmp_path / "cache" / "weights" / "rawnet2" / "pre_trained_DF_model.pth"
    assert loaded.checkpoint == str(cached)
    rec = json.loads((cached.parent / "pre_trained_DF_model.pth.sha256.json").read_text())
    import hashlib
    assert rec["archive_sha256"] == hashlib.sha256(first).hexdigest()
    assert rec["sha256"] == loaded.sha256 and rec["member"].endswith("pre_trained_DF_model.pth")
    ref = RawNet2.from_config(card.config)
    ref.load_state_dict(state)
    x = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    got = loaded.detector.score(x)
    assert torch.isfinite(got).all() and torch.equal(got, ref.eval().score(x))
    assert not list(cached.parent.glob("*.part")) and not list(cached.parent.glob("*.zip"))

    # second use: the cache, no request (the server would now serve another file)
    server.files["/asvspoof2021/pre_trained_DF_RawNet2.zip"] = changed = _zip(_official_state(2))
    assert resolve(card) == cached
    assert install(card) == (cached, "present")

    # the file is gone from the cache, upstream changed: refused, naming both digests; nothing replaced
    cached.unlink()
    new_digest = hashlib.sha256(changed).hexdigest()
    with pytest.raises(WeightsError, match=f"{new_digest}.*{rec['archive_sha256']}.*--accept-new"):
        resolve(card)
    assert not cached.exists()

    # a cached file altered after the first download is refused at load time
    torch.save({"fc2_gru.bias": torch.zeros(2)}, cached)   # readable, but not the recorded bytes
    with pytest.raises(WeightsError, match=f"recorded {rec['sha256']}"):
        load_detector("rawnet2")

    # told to: the new file is taken and becomes the record
    path, how = install(card, accept_new=True)
    assert path == cached and how == "downloaded (new digest accepted)"
    rec2 = json.loads((cached.parent / "pre_trained_DF_model.pth.sha256.json").read_text())
    assert rec2["archive_sha256"] == new_digest
    assert load_detector("rawnet2").sha256 == rec2["sha256"] != rec["sha256"]


def test_a_zip_without_the_checkpoint_is_refused(card, server):
    server.files["/asvspoof2021/pre_trained_DF_RawNet2.zip"] = _zip({}, member="README.txt")
    with pytest.raises(WeightsError, match="README.txt.*pre_trained_DF_model.pth"):
        resolve(card)
    server.files["/asvspoof2021/pre_trained_DF_RawNet2.zip"] = b"<html>moved</html>"
    with pytest.raises(WeightsError, match="not a zip"):
        resolve(card)


def test_offline_names_the_zip_and_the_alternatives(card, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(WeightsError, match="pre_trained_DF_RawNet2.zip.*BENCH_WEIGHTS_DIR.*--checkpoint"):
        resolve(card)


def test_bench_weights_cli_accept_new_and_models_column(server, tmp_path):
    """The CLI in a subprocess: the card's url points at the loopback server through a sitecustomize (the real
    address cannot be reached here); `bench models` then shows the recorded digest."""
    url = server.base + "/z/pre_trained_DF_RawNet2.zip"
    server.files["/z/pre_trained_DF_RawNet2.zip"] = _zip(_official_state(3))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import dataclasses, models\n"
        "c = models.CARDS.get('rawnet2')\n"
        f"models.CARDS._items['rawnet2'] = dataclasses.replace(c, url={url!r})\n")
    env = {"BENCH_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": f"{site}:{ROOT}"}

    def bench(*args):
        return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=env,
                              timeout=120, cwd=ROOT)

    p = bench("weights", "rawnet2", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["status"] == "downloaded"
    rec = json.loads((tmp_path / "cache" / "weights" / "rawnet2" / "pre_trained_DF_model.pth.sha256.json")
                     .read_text())
    rows = {r["name"]: r for r in json.loads(bench("models", "--json").stdout)}
    assert rows["rawnet2"]["recorded_sha256"] == rec["sha256"] and rows["rawnet2"]["weights"].startswith("cached")
    assert rows["ssl-aasist"]["weights"] == "bring your own"
    server.files["/z/pre_trained_DF_RawNet2.zip"] = _zip(_official_state(4))
    (tmp_path / "cache" / "weights" / "rawnet2" / "pre_trained_DF_model.pth").unlink()
    p = bench("weights", "rawnet2")
    assert p.returncode == 1 and rec["archive_sha256"] in p.stderr and "--accept-new" in p.stderr
    p = bench("weights", "rawnet2", "--accept-new", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)[0]["status"] == "downloaded (new digest accepted)"


def test_ssl_aasist_names_its_checkpoints_and_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BENCH_WEIGHTS_DIR", raising=False)
    card = CARDS.get("ssl-aasist")
    got = card.extra["published_checkpoints"]
    assert got["LA"]["file"] == "LA_model.pth" and got["LA"]["eer"].startswith("0.82%")
    assert got["DF"]["file"] == "Best_LA_model_for_DF.pth" and got["DF"]["eer"].startswith("2.85%")
    assert card.extra["pretrained_frontend"] == "facebook/wav2vec2-xls-r-300m"
    page = card.extra["weights_page"]
    for call in (lambda: resolve(card), lambda: install(card), lambda: install(card, tmp_path)):
        with pytest.raises(WeightsError, match=f"LA_model.pth.*{page}"):
            call()
    src = tmp_path / "from" / "ssl-aasist"
    src.mkdir(parents=True)
    (src / "LA_model.pth").write_bytes(b"the authors' file")
    assert install(card, tmp_path / "from") == (tmp_path / "cache" / "weights" / "ssl-aasist" / "LA_model.pth",
                                                "copied")
