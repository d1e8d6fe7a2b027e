"""bench.data: manifests, corpus layouts (miniature copies in tmp_path), selection and errors."""
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench.data import (Dataset, DataSpecError, ManifestError, Utterance, load_dataset, read_manifest,
                        select_stratified)


def write_audio(path: Path, seconds: float = 0.05, sr: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(sr * seconds)) / sr
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- CSV manifest
def test_manifest_full(tmp_path):
    write_audio(tmp_path / "audio" / "a.wav")
    write_audio(tmp_path / "audio" / "b.flac")
    write_audio(tmp_path / "abs.wav")
    m = write(tmp_path / "lists" / "m.csv",
              "Path,LABEL,utt_id,speaker,attack,codec\n"
              "../audio/a.wav,bona-fide,u1,spk1,,none\n"
              f"{tmp_path / 'audio' / 'b.flac'},spoof,u2,spk2,A07,mp3\n"
              "\n"
              f"{tmp_path / 'abs.wav'}, Bonafide ,u3,,,\n")
    ds = load_dataset(str(m))
    assert [u.utt_id for u in ds] == ["u1", "u2", "u3"]
    u1, u2, u3 = ds.utterances
    assert u1.path == tmp_path / "audio" / "a.wav" and u1.path.is_file()
    assert (u1.label, u1.speaker, u1.attack, dict(u1.attrs)) == ("bonafide", "spk1", "-", {"codec": "none"})
    assert (u2.label, u2.attack, u2.attrs["codec"]) == ("spoof", "A07", "mp3")
    assert (u3.label, u3.speaker) == ("bonafide", "-")
    assert ds.problems == [] and ds.counts() == {"bonafide": 2, "spoof": 1}
    df = ds.to_frame()
    assert list(df.columns) == ["utt_id", "path", "label", "speaker", "attack", "codec"]


def test_manifest_ids_from_stems_and_missing_files(tmp_path):
    write_audio(tmp_path / "x1.wav")
    m = write(tmp_path / "m.csv", "path,label\nx1.wav,bonafide\ngone.wav,spoof\n")
    ds = read_manifest(m)
    assert [u.utt_id for u in ds] == ["x1"]
    assert len(ds.problems) == 1 and ds.problems[0][0].endswith("gone.wav") and "not found" in ds.problems[0][1]
    kept = read_manifest(m, check_files=False)
    assert [u.utt_id for u in kept] == ["x1", "gone"] and kept.problems == []


@pytest.mark.parametrize("text,line,column,what", [
    ("path,utt_id\na.wav,a\n", 1, "label", "missing required column"),
    ("path,label\na.wav,bonafide\nb.wav,fake\n", 3, "label", "unknown label 'fake'"),
    ("path,label,utt_id\na.wav,spoof,x\nb.wav,spoof,y\nc.wav,spoof,x\n", 4, "utt_id", "first on line 2"),
    ("path,label\nd1/a.wav,spoof\nd2/a.wav,spoof\n", 3, "path", "share a stem"),
    ("path,label\na.wav,spoof,extra\n", 2, None, "expected 2 fields"),
    ("path,label\n,spoof\n", 2, "path", "empty path"),
    ("path,label,path\na,spoof,b\n", 1, "path", "more than once"),
])
def test_manifest_errors_name_file_line_column(tmp_path, text, line, column, what):
    m = write(tmp_path / "bad.csv", text)
    with pytest.raises(ManifestError) as e:
        read_manifest(m, check_files=False)
    err = e.value
    assert err.file == str(m) and err.line == line and err.column == column
    assert what in str(err) and "bad.csv" in str(err)


def test_manifest_header_only_and_empty(tmp_path):
    with pytest.raises(ManifestError, match="no utterances"):
        read_manifest(write(tmp_path / "h.csv", "path,label\n"))
    with pytest.raises(ManifestError, match="empty file"):
        read_manifest(write(tmp_path / "e.csv", ""))


def test_all_missing_is_a_spec_error(tmp_path):
    m = write(tmp_path / "m.csv", "path,label\nnope.wav,spoof\n")
    with pytest.raises(DataSpecError, match="no usable utterances.*nope.wav"):
        load_dataset(str(m))


# ---------------------------------------------------------------- ASVspoof 2019 LA
def make_2019(root: Path) -> Path:
    la = root / "LA"
    proto = la / "ASVspoof2019_LA_cm_protocols"
    write(proto / "ASVspoof2019.LA.cm.eval.trl.txt",
          "LA_0039 LA_E_2834763 - A11 spoof\nLA_0014 LA_E_8877452 - - bonafide\n"
          "LA_0040 LA_E_6828287 - A07 spoof\nLA_0014 LA_E_0000001 - A19 spoof\n")
    write(proto / "ASVspoof2019.LA.cm.dev.trl.txt", "LA_0069 LA_D_1047731 - - bonafide\nLA_0070 LA_D_1105538 - A01 spoof\n")
    for u in ("LA_E_2834763", "LA_E_8877452", "LA_E_6828287"):      # LA_E_0000001 is missing
        write_audio(la / "ASVspoof2019_LA_eval" / "flac" / f"{u}.flac")
    for u in ("LA_D_1047731", "LA_D_1105538"):
        write_audio(la / "ASVspoof2019_LA_dev" / "flac" / f"{u}.flac")
    return la


def test_asvspoof2019(tmp_path):
    la = make_2019(tmp_path)
    ds = load_dataset(f"asvspoof2019-la:{la}")
    assert ds.name == "asvspoof2019-la:eval"
    assert [(u.utt_id, u.speaker, u.attack, u.label) for u in ds] == [
        ("LA_E_2834763", "LA_0039", "A11", "spoof"), ("LA_E_8877452", "LA_0014", "-", "bonafide"),
        ("LA_E_6828287", "LA_0040", "A07", "spoof")]
    assert ds.utterances[0].path == la / "ASVspoof2019_LA_eval" / "flac" / "LA_E_2834763.flac"
    assert ds.utterances[0].attrs == {"part": "eval"}
    assert [p for p, _ in ds.problems] == [str(la / "ASVspoof2019_LA_eval" / "flac" / "LA_E_0000001.flac")]
    dev = load_dataset(f"asvspoof2019-la:{tmp_path}?part=dev")        # parent of LA/ works too
    assert [u.utt_id for u in dev] == ["LA_D_1047731", "LA_D_1105538"] and dev.utterances[1].attack == "A01"
    both = load_dataset(f"asvspoof2019-la:{la}?part=dev,eval")
    assert len(both) == 5 and {u.attrs["part"] for u in both} == {"dev", "eval"}


def test_asvspoof2019_errors(tmp_path):
    la = make_2019(tmp_path)
    with pytest.raises(DataSpecError, match="part='test'"):
        load_dataset(f"asvspoof2019-la:{la}?part=test")
    with pytest.raises(DataSpecError, match="unknown option"):
        load_dataset(f"asvspoof2019-la:{la}?subset=eval")
    with pytest.raises(DataSpecError, match="ASVspoof2019_LA_cm_protocols"):
        load_dataset(f"asvspoof2019-la:{tmp_path / 'LA' / 'ASVspoof2019_LA_eval'}")
    with pytest.raises(DataSpecError, match="does not exist"):
        load_dataset(f"asvspoof2019-la:{tmp_path / 'nowhere'}")
    proto = la / "ASVspoof2019_LA_cm_protocols" / "ASVspoof2019.LA.cm.eval.trl.txt"
    proto.write_text(proto.read_text() + "LA_0001 LA_E_9 - A07\n")
    with pytest.raises(ManifestError) as e:
        load_dataset(f"asvspoof2019-la:{la}")
    assert e.value.line == 5 and "at least 5" in str(e.value)
    proto.write_text("LA_0001 LA_E_9 - A07 maybe\n")
    with pytest.raises(ManifestError, match="unknown label 'maybe'"):
        load_dataset(f"asvspoof2019-la:{la}")


# ---------------------------------------------------------------- ASVspoof 2021 LA / DF
def test_asvspoof2021_la(tmp_path):
    write(tmp_path / "keys" / "LA" / "CM" / "trial_metadata.txt",
          "LA_0009 LA_E_9332881 alaw ita_tx A07 spoof notrim eval\n"
          "LA_0013 LA_E_1000001 none - - bonafide notrim eval\n"
          "LA_0020 LA_E_5000002 gsm sin_tx A10 spoof trim progress\n"
          "LA_0021 LA_E_5000003 opus loc_tx - bonafide notrim hidden\n")
    for u in ("LA_E_9332881", "LA_E_1000001", "LA_E_5000002", "LA_E_5000003"):
        write_audio(tmp_path / "ASVspoof2021_LA_eval" / "flac" / f"{u}.flac")
    ds = load_dataset(f"asvspoof2021-la:{tmp_path}")
    assert ds.name == "asvspoof2021-la:eval" and [u.utt_id for u in ds] == ["LA_E_9332881", "LA_E_1000001"]
    u = ds.utterances[0]
    assert (u.speaker, u.attack, u.label) == ("LA_0009", "A07", "spoof")
    assert u.attrs == {"codec": "alaw", "transmission": "ita_tx", "trim": "notrim", "subset": "eval"}
    assert u.path == tmp_path / "ASVspoof2021_LA_eval" / "flac" / "LA_E_9332881.flac"
    assert len(load_dataset(f"asvspoof2021-la:{tmp_path}?subset=all")) == 4
    prog = load_dataset(f"asvspoof2021-la:{tmp_path}?subset=progress,hidden")
    assert [u.attrs["subset"] for u in prog] == ["progress", "hidden"]


def test_asvspoof2021_df_full_keys_and_parts(tmp_path):
    write(tmp_path / "DF-keys-full" / "keys" / "DF" / "CM" / "trial_metadata.txt",
          "LA_0043 DF_E_2000026 mp3m4a asvspoof A09 spoof notrim eval traditional_vocoder - - - -\n"
          "LA_0023 DF_E_2000011 nocodec asvspoof - bonafide notrim eval bonafide - - - -\n"
          "VCC_1 DF_E_2000031 low_ogg vcc2020 Task1-team01 spoof notrim eval neural_vocoder_autoregressive "
          "Task1 team01 F-F en\n"
          "LA_0050 DF_E_2000099 nocodec asvspoof - bonafide notrim eval bonafide - - - -\n")
    write_audio(tmp_path / "ASVspoof2021_DF_eval_part00" / "ASVspoof2021_DF_eval" / "flac" / "DF_E_2000026.flac")
    write_audio(tmp_path / "ASVspoof2021_DF_eval_part00" / "ASVspoof2021_DF_eval" / "flac" / "DF_E_2000011.flac")
    write_audio(tmp_path / "ASVspoof2021_DF_eval_part01" / "ASVspoof2021_DF_eval" / "flac" / "DF_E_2000031.flac")
    ds = load_dataset(f"asvspoof2021-df:{tmp_path}")
    assert [u.utt_id for u in ds] == ["DF_E_2000026", "DF_E_2000011", "DF_E_2000031"]
    v = ds.utterances[2]
    assert v.path.parts[-4] == "ASVspoof2021_DF_eval_part01"
    assert (v.speaker, v.attack) == ("VCC_1", "Task1-team01")
    assert v.attrs["source"] == "vcc2020" and v.attrs["codec"] == "low_ogg"
    assert v.attrs["vocoder"] == "neural_vocoder_autoregressive" and v.attrs["language"] == "en"
    assert [p for p, _ in ds.problems][0].endswith("DF_E_2000099.flac")


def test_asvspoof2021_short_keys_and_missing_keys(tmp_path):
    write(tmp_path / "trial_metadata.txt", "LA_0043 DF_E_1 mp3m4a asvspoof A09 spoof notrim eval\n")
    write_audio(tmp_path / "flac" / "DF_E_1.flac")
    ds = load_dataset(f"asvspoof2021-df:{tmp_path}")
    assert ds.utterances[0].attrs == {"codec": "mp3m4a", "source": "asvspoof", "trim": "notrim", "subset": "eval"}
    with pytest.raises(DataSpecError, match="lists no trial"):
        load_dataset(f"asvspoof2021-df:{tmp_path}?subset=hidden")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(DataSpecError, match="no CM keys"):
        load_dataset(f"asvspoof2021-la:{other}")


# ---------------------------------------------------------------- In-the-Wild, folder, demo
def test_inthewild(tmp_path):
    rel = tmp_path / "release_in_the_wild"
    write(rel / "meta.csv", "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n"
                            "2.wav,Barack Obama,spoof\n")
    for i in range(3):
        write_audio(rel / f"{i}.wav")
    for root in (rel, tmp_path):
        ds = load_dataset(f"inthewild:{root}")
        assert [(u.utt_id, u.label, u.speaker) for u in ds] == [
            ("0", "spoof", "Alec Guinness"), ("1", "bonafide", "Alec Guinness"), ("2", "spoof", "Barack Obama")]
        assert ds.utterances[0].path == rel / "0.wav"
    write(rel / "meta.csv", "file,label\n0.wav,spoof\n")
    with pytest.raises(ManifestError) as e:
        load_dataset(f"inthewild:{rel}")
    assert e.value.column == "speaker" and e.value.line == 1


def test_folder_layout(tmp_path):
    write_audio(tmp_path / "bonafide" / "b1.wav")
    write_audio(tmp_path / "bonafide" / "spk9" / "b2.flac")
    write_audio(tmp_path / "spoof" / "s1.wav")
    write(tmp_path / "spoof" / "notes.txt", "not audio")
    ds = load_dataset(str(tmp_path))
    assert sorted((u.utt_id, u.label) for u in ds) == [("b1", "bonafide"), ("b2", "bonafide"), ("s1", "spoof")]
    assert {u.utt_id: u.attrs["subdir"] for u in ds} == {"b1": "", "b2": "spk9", "s1": ""}
    write_audio(tmp_path / "spoof" / "x" / "b1.wav")
    with pytest.raises(ManifestError, match="share the id 'b1'"):
        load_dataset(str(tmp_path))


def test_unknown_specs(tmp_path):
    with pytest.raises(DataSpecError, match="unknown data spec"):
        load_dataset(str(tmp_path / "nothing.csv"))
    with pytest.raises(DataSpecError, match="without bonafide/ or spoof/"):
        load_dataset(str(tmp_path))


def test_demo_delegates_and_reports_missing(monkeypatch):
    utts = [Utterance(f"d{i}", Path(f"/x/d{i}.wav"), "bonafide" if i < 4 else "spoof") for i in range(10)]
    fake = types.ModuleType("bench.data.demo")
    fake.load_demo = lambda: Dataset("demo", utts, [])
    monkeypatch.setitem(sys.modules, "bench.data.demo", fake)
    ds = load_dataset("demo", limit=5, seed=0)
    assert ds.name == "demo" and ds.counts() == {"bonafide": 2, "spoof": 3}
    fake.load_demo = lambda: list(utts)                 # a plain list is accepted too
    assert len(load_dataset("demo")) == 10
    monkeypatch.setitem(sys.modules, "bench.data.demo", None)
    with pytest.raises(DataSpecError, match="demo set"):
        load_dataset("demo")


# ---------------------------------------------------------------- selection and records
def pool(n_bona: int, n_spoof: int) -> list[Utterance]:
    return ([Utterance(f"b{i:03d}", Path(f"b{i}.wav"), "bonafide") for i in range(n_bona)]
            + [Utterance(f"s{i:03d}", Path(f"s{i}.wav"), "spoof") for i in range(n_spoof)])


def test_limit_is_stratified_deterministic_and_nested():
    utts = pool(30, 70)
    a = select_stratified(utts, 10, seed=0)
    assert sum(u.label == "bonafide" for u in a) == 3 and len(a) == 10
    assert a == select_stratified(utts, 10, seed=0)
    assert a != select_stratified(utts, 10, seed=1)
    assert a == select_stratified(list(reversed(utts)), 10, seed=0)[::-1]      # order-independent
    assert set(a) <= set(select_stratified(utts, 40, seed=0))                  # nested
    assert [utts.index(u) for u in a] == sorted(utts.index(u) for u in a)       # input order kept
    assert select_stratified(utts, 500) == utts and select_stratified(utts, None) == utts
    rare = select_stratified(pool(1, 99), 5)
    assert sum(u.label == "bonafide" for u in rare) == 1 and len(rare) == 5
    with pytest.raises(ValueError, match="positive"):
        select_stratified(utts, 0)


def test_limit_through_load_dataset(tmp_path):
    lines = ["path,label"] + [f"f{i}.wav,{'bonafide' if i % 4 == 0 else 'spoof'}" for i in range(40)]
    m = write(tmp_path / "m.csv", "\n".join(lines) + "\n")
    ds = load_dataset(str(m), limit=8, seed=3, check_files=False)
    assert ds.counts() == {"bonafide": 2, "spoof": 6}


def test_utterance_record():
    u = Utterance("a", "x/a.wav", "spoof", attrs={"k": "v"})
    assert isinstance(u.path, Path) and u.speaker == "-" and u.attack == "-"
    assert hash(u) == hash(Utterance("a", Path("x/a.wav"), "spoof", attrs={"k": "other"}))
    with pytest.raises(ValueError, match="label"):
        Utterance("a", "a.wav", "bona-fide")
    with pytest.raises(AttributeError):
        u.label = "bonafide"
