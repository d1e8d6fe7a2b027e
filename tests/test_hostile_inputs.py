"""Hostile suites and manifests (issue 26, items 5, 9 and 17): YAML alias bombs and oversized suite files,
``severities: [0]``, one clip listed with two labels, and listed paths that are directories or broken links."""
import os

import numpy as np
import pytest
import soundfile as sf

from bench.data import ManifestError, load_dataset
from bench.suites.suite import SuiteError, load_suite
from bench.suites.untrusted import MAX_SUITE_BYTES, MAX_SUITE_FILES


def _laughs(levels: int) -> str:
    """A "billion laughs" suite: each anchor is a list of nine aliases of the previous one (9**levels values),
    all inside ``description`` (which the run copies into run.json)."""
    lists = ["&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lists += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"name: lol\ndescription: [{', '.join(lists)}]\nconditions:\n  - {{family: white-noise, severities: [1]}}\n"


def test_yaml_alias_bomb_is_refused(tmp_path):
    p = tmp_path / "lol.yaml"
    p.write_text(_laughs(6))   # 9**6 = 531441 values from a few hundred bytes
    assert p.stat().st_size < 600
    with pytest.raises(SuiteError, match=r"expands to more than 100000 values .*aliases"):
        load_suite(str(p))


def test_small_aliases_stay_usable(tmp_path):
    p = tmp_path / "shared.yaml"
    p.write_text("name: shared\nconditions:\n  - {family: white-noise, severities: [1], params: &p {snr_db: 7}}\n"
                 "  - {family: pink-noise, severities: [1], params: *p}\n")
    conds = {c.family: c for c in load_suite(str(p)).expand()}
    assert conds["white-noise"].spec["params"]["snr_db"] == 7 and conds["pink-noise"].spec["params"]["snr_db"] == 7


def test_oversized_deep_and_looping_suites_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: big\ndescription: " + "x" * MAX_SUITE_BYTES + "\nconditions: []\n")
    with pytest.raises(SuiteError, match=f"at most {MAX_SUITE_BYTES}"):
        load_suite(str(big))
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: deep\ndescription: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SuiteError, match="nested"):
        load_suite(str(deep))
    fan = tmp_path / "fan.yaml"
    fan.write_text("name: fan\ninclude: [" + ", ".join(["clean"] * (MAX_SUITE_FILES + 1)) + "]\n")
    with pytest.raises(SuiteError, match=f"more than {MAX_SUITE_FILES} suite files"):
        load_suite(str(fan))


def test_severity_zero_is_refused_not_dropped(tmp_path):
    p = tmp_path / "zero.yaml"
    p.write_text("name: z\nconditions:\n  - {family: mp3, severities: [0]}\n")
    with pytest.raises(SuiteError, match=r"conditions\[0\]: severity 0 is the clean input"):
        load_suite(str(p))


def _wav(path, seconds=0.2):
    sf.write(path, (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5)).astype(np.float32), 16000)
    return path


def test_a_clip_listed_with_two_labels_is_refused_naming_both_rows(tmp_path):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav")
    man = tmp_path / "m.csv"
    man.write_text("utt_id,path,label\nu1,a.wav,bonafide\nu2,b.wav,spoof\nu3,a.wav,spoof\n")
    with pytest.raises(ManifestError) as e:
        load_dataset(str(man))
    msg = str(e.value)
    assert "line 4" in msg and "line 2" in msg and "'u1'" in msg and "'u3'" in msg and "bonafide" in msg


def test_a_clip_listed_twice_with_one_label_is_warned(tmp_path, caplog):
    _wav(tmp_path / "a.wav")
    _wav(tmp_path / "b.wav")
    man = tmp_path / "m.csv"
    man.write_text("utt_id,path,label\nu1,a.wav,bonafide\nu2,b.wav,spoof\nu3,a.wav,bonafide\n")
    ds = load_dataset(str(man))
    assert len(ds.utterances) == 3
    assert any("line 4 lists" in r.message and "scored and counted twice" in r.message for r in caplog.records)


def test_listed_directories_and_broken_links_say_what_they_are(tmp_path):
    _wav(tmp_path / "ok.wav")
    (tmp_path / "dir.wav").mkdir()
    os.symlink(tmp_path / "nowhere.wav", tmp_path / "link.wav")
    man = tmp_path / "m.csv"
    man.write_text("path,label\nok.wav,bonafide\ndir.wav,spoof\nlink.wav,spoof\nmissing.wav,spoof\n")
    ds = load_dataset(str(man))
    reasons = {os.path.basename(p): r for p, r in ds.problems}
    assert reasons["dir.wav"].startswith("a directory, not an audio file (utterance dir)")
    assert reasons["link.wav"].startswith("a broken symbolic link (to ") and "nowhere.wav" in reasons["link.wav"]
    assert reasons["missing.wav"].startswith("audio file not found")
