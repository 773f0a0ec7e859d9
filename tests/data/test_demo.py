"""Demo corpus: real on-disk formats, determinism, atomic/ensure behaviour, distinct speakers, learnability."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import tts_lab.data.demo as demo
from tts_lab.audio.features import FeatureConfig, LogMel
from tts_lab.data.corpora import read_cmu_arctic, read_ljspeech
from tts_lab.data.demo import (
    DEMO_SPEAKERS,
    MARKER_NAME,
    ensure_demo_corpus,
    generate_demo_corpus,
    is_complete,
    make_sentence,
)
from tts_lab.data.demo_synth import PHONES, VOICES, synthesize
from tts_lab.data.problems import ProblemReport

ARCTIC_LINE = re.compile(r'^\( (\S+) "(.*)" \)$')
SMALL = {"seed": 0, "n_lj": 3, "n_arctic": 2}
PANGRAMS = (
    "the quick brown fox jumps over the lazy dog.",
    "pack my box with five dozen liquor jugs.",
    "sphinx of black quartz, judge my vow.",
    "how vexingly quick daft zebras jump!",
)


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def median_f0(wave: np.ndarray, sr: int) -> float:
    """Autocorrelation pitch (60-400 Hz) of loud 40 ms frames, median over frames."""
    size = int(0.04 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(wave, size)[:: size // 2]
    energy = (frames**2).mean(axis=1)
    estimates = []
    lo, hi = int(sr / 400), int(sr / 60)
    for frame in frames[energy > 0.3 * energy.max()]:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[size - 1 :]
        lag = lo + int(ac[lo:hi].argmax())
        half = lag // 2 - 2 + int(ac[lag // 2 - 2 : lag // 2 + 3].argmax())
        if half >= lo and ac[half] > 0.8 * ac[lag]:  # the best peak was two periods: avoid the octave error
            lag = half
        estimates.append(sr / lag)
    return float(np.median(estimates))


# ---------------------------------------------------------------- formats


def test_ljspeech_layout_and_format(demo_root: Path) -> None:
    corpus = demo_root / "LJSpeech-1.1"
    lines = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 48
    for line in lines:
        utt_id, raw, norm = line.split("|")  # exactly three fields, no header
        assert re.fullmatch(r"DM\d{3}-\d{4}", utt_id)
        assert raw and norm and not re.search(r"\d", norm)
        info = sf.info(str(corpus / "wavs" / f"{utt_id}.wav"))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (22050, 1, "PCM_16", "WAV")
        assert 1.0 <= info.duration <= 5.0
    assert [line.split("|")[0] for line in lines[:2]] == ["DM001-0001", "DM001-0002"]
    report = ProblemReport("demo lj")
    assert len(read_ljspeech(demo_root, report)) == 48 and len(report) == 0, report.summary()


def test_arctic_layout_and_same_prompts_for_every_speaker(demo_root: Path) -> None:
    prompts = {}
    for spk in DEMO_SPEAKERS:
        folder = demo_root / f"cmu_us_{spk}_arctic"
        lines = (folder / "etc" / "txt.done.data").read_text(encoding="utf-8").splitlines()
        parsed = [ARCTIC_LINE.match(line) for line in lines]
        assert all(parsed), lines
        prompts[spk] = [(m.group(1), m.group(2)) for m in parsed]
        for prompt_id, _ in prompts[spk]:
            info = sf.info(str(folder / "wav" / f"{prompt_id}.wav"))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert sorted(p.stem for p in (folder / "wav").iterdir()) == [i for i, _ in prompts[spk]]
    first = prompts[DEMO_SPEAKERS[0]]
    assert [i for i, _ in first[:3]] == ["arctic_a0001", "arctic_a0002", "arctic_a0003"]
    assert all(prompts[spk] == first for spk in DEMO_SPEAKERS)
    report = ProblemReport("demo arctic")
    assert len(read_cmu_arctic(demo_root, report)) == 24 * len(DEMO_SPEAKERS) and len(report) == 0


def test_sentences_normalise_numbers_titles_and_keep_quotes() -> None:
    pairs = [make_sentence(demo._rng(7, 0, i), rich=True) for i in range(300)]
    raws = " ".join(raw for raw, _ in pairs)
    assert re.search(r"\d", raws) and "Mr." in raws and '"' in raws  # LJ-style raw text occurs
    for raw, norm in pairs:
        assert not re.search(r"\d", norm) and "Mr." not in norm and "|" not in raw + norm
        assert norm.count('"') == raw.count('"') and norm[-1] in ".?!"
        assert 3 <= len(norm.split()) <= 9  # "one hundred" is two words
        if "3" in raw.split():
            assert "three" in norm.split()
        if raw.startswith("Mr."):
            assert norm.startswith("Mister")
    plain = [make_sentence(demo._rng(7, 2, i), rich=False)[1] for i in range(100)]
    assert all(re.fullmatch(r"[A-Za-z ,]+[.?!]", text) for text in plain)  # Arctic prompts: no digits/quotes


# ---------------------------------------------------------------- determinism and atomicity


def test_same_seed_is_byte_identical_and_items_do_not_depend_on_sizes(tmp_path: Path) -> None:
    a = all_files(generate_demo_corpus(tmp_path / "a", **SMALL))
    b = all_files(generate_demo_corpus(tmp_path / "b", **SMALL))
    assert a == b and len(a) == 1 + 3 + 1 + 2 * (2 + 1)  # marker, 3 LJ wavs + metadata, per speaker 2 wavs + txt
    other = all_files(generate_demo_corpus(tmp_path / "c", **{**SMALL, "seed": 1}))
    assert other.keys() == a.keys()
    assert other["LJSpeech-1.1/wavs/DM001-0001.wav"] != a["LJSpeech-1.1/wavs/DM001-0001.wav"]
    assert other["LJSpeech-1.1/metadata.csv"] != a["LJSpeech-1.1/metadata.csv"]
    smaller = all_files(generate_demo_corpus(tmp_path / "d", seed=0, n_lj=2, n_arctic=1))
    assert smaller["LJSpeech-1.1/wavs/DM001-0002.wav"] == a["LJSpeech-1.1/wavs/DM001-0002.wav"]
    assert smaller["cmu_us_df1_arctic/wav/arctic_a0001.wav"] == a["cmu_us_df1_arctic/wav/arctic_a0001.wav"]


def test_ensure_does_not_regenerate_a_complete_corpus(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    assert ensure_demo_corpus(root, **SMALL) == root
    wav = root / "LJSpeech-1.1" / "wavs" / "DM001-0001.wav"
    stamps = (wav.stat().st_mtime_ns, (root / MARKER_NAME).stat().st_mtime_ns, wav.stat().st_ino)
    time.sleep(0.01)
    ensure_demo_corpus(root, **SMALL)
    assert (wav.stat().st_mtime_ns, (root / MARKER_NAME).stat().st_mtime_ns, wav.stat().st_ino) == stamps
    # Other parameters: the stale demo corpus is replaced, not trusted.
    ensure_demo_corpus(root, **{**SMALL, "n_arctic": 3})
    assert json.loads((root / MARKER_NAME).read_text())["params"]["n_arctic"] == 3
    assert (root / "cmu_us_dm1_arctic" / "wav" / "arctic_a0003.wav").is_file()


def test_missing_marker_or_file_triggers_regeneration(tmp_path: Path) -> None:
    root = generate_demo_corpus(tmp_path / "demo", **SMALL)
    reference = all_files(root)
    (root / MARKER_NAME).unlink()
    assert not is_complete(root, demo._params(**SMALL))
    ensure_demo_corpus(root, **SMALL)
    assert all_files(root) == reference
    (root / "cmu_us_df1_arctic" / "wav" / "arctic_a0002.wav").unlink()
    ensure_demo_corpus(root, **SMALL)
    assert all_files(root) == reference


def test_killed_run_leaves_nothing_trusted_and_is_cleaned_up(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "demo"

    def crash(*args, **kwargs) -> None:
        raise KeyboardInterrupt  # as if interrupted after the LJ part was written

    monkeypatch.setattr(demo, "_write_arctic", crash)
    with pytest.raises(KeyboardInterrupt):
        generate_demo_corpus(root, **SMALL)
    assert not root.exists() and not list(tmp_path.glob(".demo.tmp-*"))
    monkeypatch.undo()
    # A hard kill cannot clean up: leave a half-written temporary folder behind, as SIGKILL would.
    leftover = tmp_path / ".demo.tmp-999999"
    (leftover / "LJSpeech-1.1").mkdir(parents=True)
    (leftover / "LJSpeech-1.1" / "metadata.csv").write_text("DM001-0001|half|half\n")
    assert not is_complete(leftover, demo._params(**SMALL))
    ensure_demo_corpus(root, **SMALL)
    assert is_complete(root, demo._params(**SMALL)) and not leftover.exists()


def test_foreign_data_is_never_replaced(tmp_path: Path) -> None:
    real = tmp_path / "corpora"
    (real / "LJSpeech-1.1").mkdir(parents=True)
    (real / "LJSpeech-1.1" / "metadata.csv").write_text("LJ001-0001|Printing|Printing\n")
    with pytest.raises(FileExistsError):
        ensure_demo_corpus(real, **SMALL)
    assert (real / "LJSpeech-1.1" / "metadata.csv").read_text() == "LJ001-0001|Printing|Printing\n"
    with pytest.raises(ValueError):
        generate_demo_corpus(tmp_path / "x", speakers=("dm1", "nobody"))
    with pytest.raises(ValueError):
        generate_demo_corpus(tmp_path / "x", speakers=("dm1", "dm1"))


# ---------------------------------------------------------------- the synthesizer


def test_segments_tile_the_speech_with_variable_letter_durations() -> None:
    text = "Hello all, a banana? see, see."
    wave, segments = synthesize(text, VOICES["dm1"], 16000, np.random.default_rng(0))
    assert [ch for ch, _, _ in segments] == list(text.lower())
    assert all(end0 == start1 for (_, _, end0), (_, start1, _) in zip(segments, segments[1:]))
    assert 0.10 * 16000 <= segments[0][1] <= 0.20 * 16000 and 0.10 * 16000 <= len(wave) - segments[-1][2] <= 0.2 * 16000
    lengths = {ch: [e - s for c, s, e in segments if c == ch] for ch in "aes"}
    assert all(len(set(v)) == len(v) for v in lengths.values())  # drawn per occurrence, not a fixed length
    assert all(40 <= (e - s) / 16 <= 200 for c, s, e in segments if c.isalpha())  # ms
    assert 0.0 < np.abs(wave[: segments[0][1]]).max() < 0.02  # quiet but not digital zero before speech
    assert 0.85 <= np.abs(wave).max() <= 0.95


def test_doubled_letters_are_two_events() -> None:
    """Between the two l's of "all" the log-mel energy dips clearly, so a CTC model can count them."""
    config = FeatureConfig()
    wave, segments = synthesize("all ill bell seem moon apple", VOICES["lj"], 22050, np.random.default_rng(3))
    energy = torch.logsumexp(LogMel(config)(torch.from_numpy(wave)), dim=1).numpy()
    dips = []
    for (c0, s0, e0), (c1, s1, e1) in zip(segments, segments[1:]):
        if c0 == c1 and c0 in "lemo":
            a, b = round((s0 + e0) / 2 / 256), round((s1 + e1) / 2 / 256)  # frames at the two letters' middles
            dips.append(min(energy[a], energy[b]) - energy[a : b + 1].min())
    assert len(dips) == 5 and min(dips) > 1.5, dips  # natural log: > 6.5 dB


@pytest.mark.parametrize("voice,sample_rate", [("lj", 22050), ("dm1", 16000), ("df1", 16000)])
def test_letters_are_separable_by_nearest_mel_centroid(voice: str, sample_rate: int) -> None:
    """Learnability proxy: each letter's mean log-mel is classified by centroids from other utterances."""
    texts = [make_sentence(demo._rng(5, 9, i), rich=False)[1] for i in range(12)] + list(PANGRAMS) * 2
    outputs = [synthesize(t, VOICES[voice], sample_rate, np.random.default_rng([5, i])) for i, t in enumerate(texts)]
    logmel = LogMel(FeatureConfig(sample_rate=sample_rate))

    def letter_features(items: list) -> tuple[np.ndarray, np.ndarray]:
        feats, labels = [], []
        for wave, segments in items:
            mel = logmel(torch.from_numpy(wave)).numpy()
            for ch, start, end in segments:
                if ch.isalpha():
                    first = int(np.ceil(start / 256))
                    feats.append(mel[first : max(first + 1, (end - 1) // 256 + 1)].mean(axis=0))
                    labels.append(ch)
        return np.stack(feats), np.array(labels)

    train_x, train_y = letter_features(outputs[:6] + outputs[12:16])
    test_x, test_y = letter_features(outputs[6:12] + outputs[16:])
    assert set(test_y) == set(train_y) == set(PHONES)  # every letter a-z is tested
    classes = sorted(set(train_y))
    centroids = np.stack([train_x[train_y == c].mean(axis=0) for c in classes])
    predicted = np.array(classes)[((test_x[:, None] - centroids[None]) ** 2).sum(-1).argmin(axis=1)]
    accuracy = float((predicted == test_y).mean())
    print(f"{voice}: per-letter nearest-centroid accuracy {accuracy:.3f} on {len(test_y)} letters")
    assert accuracy >= 0.95
    # A dumb baseline (always the most frequent letter) is far worse: the features carry the identity.
    assert (test_y == max(set(train_y), key=list(train_y).count)).mean() < 0.2


def test_speakers_differ_in_pitch_timbre_and_rate(demo_root: Path) -> None:
    waves = {
        spk: sf.read(str(demo_root / f"cmu_us_{spk}_arctic" / "wav" / "arctic_a0001.wav"), dtype="float32")[0]
        for spk in ("dm1", "df1")
    }
    f0 = {spk: median_f0(w, 16000) for spk, w in waves.items()}
    assert 85 <= f0["dm1"] <= 130 and 170 <= f0["df1"] <= 260, f0
    spectra = {spk: np.abs(np.fft.rfft(w, 1 << 16)) ** 2 for spk, w in waves.items()}
    freqs = np.fft.rfftfreq(1 << 16, 1 / 16000)
    centroid = {spk: float((freqs * s).sum() / s.sum()) for spk, s in spectra.items()}
    assert centroid["df1"] > 1.07 * centroid["dm1"], centroid
    # Same text, faster speaker: letters take ~0.85x as long on average.
    text = " ".join(PANGRAMS)
    speech = {
        spk: sum(e - s for _, s, e in synthesize(text, VOICES[spk], 16000, np.random.default_rng(0))[1])
        for spk in ("dm1", "df1")
    }
    assert 0.78 <= speech["df1"] / speech["dm1"] <= 0.92


def test_questions_and_exclamations_are_audible() -> None:
    """'.', '?' and '!' are equally long pauses; the pitch of the word before them tells them apart."""
    f0 = {}
    for mark in ".?!":
        wave, segments = synthesize(f"we will see the sea{mark}", VOICES["dm1"], 16000, np.random.default_rng(0))
        _, start, end = segments[-2]  # the final vowel
        f0[mark] = median_f0(wave[start:end], 16000)
    assert f0["?"] > 1.2 * f0["."] and f0["!"] > 1.1 * f0["."], f0


def test_small_corpus_generates_quickly(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate_demo_corpus(tmp_path / "demo", seed=3, n_lj=10, n_arctic=5)
    elapsed = time.perf_counter() - start
    print(f"20 utterances in {elapsed:.2f} s")
    assert elapsed < 30  # generous: shared CI cores; the default size takes seconds on one idle core
