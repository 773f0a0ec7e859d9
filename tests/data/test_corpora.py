"""LJSpeech and CMU Arctic readers: real layouts, every bad-input case, strict mode, pairing."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tts_lab.data.corpora import (
    Utterance,
    arctic_speakers,
    pair_by_prompt,
    read_cmu_arctic,
    read_ljspeech,
)
from tts_lab.data.problems import DataError, ProblemReport


def write_wav(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(160, dtype=np.float32), 16000)


def make_ljspeech(root: Path, metadata: bytes, wav_ids: list[str]) -> Path:
    corpus = root / "LJSpeech-1.1"
    corpus.mkdir(parents=True)
    (corpus / "metadata.csv").write_bytes(metadata)
    for utt_id in wav_ids:
        write_wav(corpus / "wavs" / f"{utt_id}.wav")
    return corpus / "metadata.csv"


def make_arctic(root: Path, speaker: str, lines: bytes, prompts: list[str]) -> Path:
    folder = root / f"cmu_us_{speaker}_arctic"
    (folder / "etc").mkdir(parents=True)
    (folder / "etc" / "txt.done.data").write_bytes(lines)
    for prompt in prompts:
        write_wav(folder / "wav" / f"{prompt}.wav")
    return folder / "etc" / "txt.done.data"


# ---------------------------------------------------------------- LJSpeech

def test_ljspeech_good_lines_with_quotes(tmp_path: Path) -> None:
    meta = make_ljspeech(
        tmp_path,
        b'LJ001-0001|Printing, "in the only sense"|Printing, "in the only sense"\n'
        b"LJ001-0002|Mr. Smith paid $5|\n"  # empty normalized column -> raw text
        b'LJ001-0003|He said "stop"|He said "stop"\r\n',
        ["LJ001-0001", "LJ001-0002", "LJ001-0003"],
    )
    report = ProblemReport("lj")
    utts = read_ljspeech(str(tmp_path), report)
    assert len(report) == 0, report.summary()
    assert [u.id for u in utts] == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]
    assert utts[0] == Utterance(
        id="LJ001-0001",
        audio_path=tmp_path / "LJSpeech-1.1" / "wavs" / "LJ001-0001.wav",
        text='Printing, "in the only sense"',
        speaker="ljspeech",
        prompt_id="LJ001-0001",
        source=f"{meta}:1",
    )
    assert utts[1].text == "Mr. Smith paid $5"
    assert utts[2].text == 'He said "stop"'  # CRLF stripped, quotes kept verbatim


def test_ljspeech_bad_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    metadata = b"\n".join([
        b"LJ001-0001|ok|ok",            # 1 good
        b"LJ001-0002|only two fields",  # 2 malformed
        b"",                            # 3 blank: ignored, not a problem
        b"|no id|no id",                # 4 empty id
        b"LJ001-0003|caf\xe9|caf\xe9",  # 5 latin-1 byte, not UTF-8
        b"LJ001-0004|   |  ",           # 6 whitespace-only transcript
        b"LJ001-0005|no wav|no wav",    # 7 wav missing
        b"LJ001-0001|again|again",      # 8 duplicate id
        b"LJ001-0006|a|b|c",            # 9 too many fields
        b"LJ001-0007|fine|fine",        # 10 good, after all the bad ones
        b"   ",                         # 11 blank
    ])
    meta = make_ljspeech(tmp_path, metadata, ["LJ001-0001", "LJ001-0003", "LJ001-0004", "LJ001-0007"])
    report = ProblemReport("lj")
    utts = read_ljspeech(tmp_path, report)
    assert [u.id for u in utts] == ["LJ001-0001", "LJ001-0007"]
    assert utts[0].text == "ok"  # the duplicate did not replace the first listing
    assert [(p.path, p.line) for p in report.problems] == [(str(meta), n) for n in (2, 4, 5, 6, 7, 8, 9)]
    assert report.counts_by_reason() == {
        "malformed line": 3, "not valid UTF-8": 1, "empty transcript": 1,
        "missing audio file": 1, "duplicate id": 1,
    }
    assert "LJ001-0005.wav" in report.problems[4].reason
    assert f"{meta}:1" in report.problems[5].reason  # duplicate names the first listing


@pytest.mark.parametrize(
    ("metadata", "line", "reason"),
    [
        (b"LJ001-0001|a|a\nbroken\n", 2, "malformed line"),
        (b"LJ001-0001|a|a\nLJ001-0001|a|a\n", 2, "duplicate id"),
        (b"LJ001-0001|a|a\n\nLJ001-0002|\xff|x\n", 3, "not valid UTF-8"),
        (b"LJ001-0009|a|a\n", 1, "missing audio file"),
    ],
)
def test_ljspeech_strict_raises_naming_file_and_line(tmp_path: Path, metadata: bytes, line: int, reason: str) -> None:
    meta = make_ljspeech(tmp_path, metadata, ["LJ001-0001", "LJ001-0002"])
    with pytest.raises(DataError, match=rf"^{re.escape(str(meta))}:{line}: {reason}"):
        read_ljspeech(tmp_path, ProblemReport("lj", strict=True))


def test_ljspeech_missing_corpus_explains_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_ljspeech(tmp_path, ProblemReport("lj"))
    assert str(tmp_path / "LJSpeech-1.1" / "metadata.csv") in str(err.value)
    assert "--data.root=DIR" in str(err.value)
    make_ljspeech(tmp_path, b"LJ001-0001|a|a\n", [])
    with pytest.raises(DataError, match="pass its parent"):  # pointed at the corpus folder itself
        read_ljspeech(tmp_path / "LJSpeech-1.1", ProblemReport("lj"))


# ---------------------------------------------------------------- CMU Arctic

ARCTIC_BDL = (
    b'( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )\n'
    b'( arctic_a0002 "He said \\"no\\" twice." )\n'
    b'( arctic_a0003 "Not at "this" particular case, Tom." )\n'
)


def test_arctic_reads_speakers_and_quotes(tmp_path: Path) -> None:
    prompts = make_arctic(tmp_path, "bdl", ARCTIC_BDL, ["arctic_a0001", "arctic_a0002", "arctic_a0003"])
    make_arctic(tmp_path, "slt", b'( arctic_a0001 "Author of the danger trail." )\n', ["arctic_a0001"])
    (tmp_path / "not_a_speaker").mkdir()
    assert arctic_speakers(tmp_path) == ["bdl", "slt"]
    report = ProblemReport("arctic")
    utts = read_cmu_arctic(tmp_path, report)
    assert len(report) == 0, report.summary()
    assert [u.id for u in utts] == ["bdl/arctic_a0001", "bdl/arctic_a0002", "bdl/arctic_a0003", "slt/arctic_a0001"]
    first = utts[0]
    assert first.text == "Author of the danger trail, Philip Steels, etc."
    assert (first.speaker, first.prompt_id, first.source) == ("bdl", "arctic_a0001", f"{prompts}:1")
    assert first.audio_path == tmp_path / "cmu_us_bdl_arctic" / "wav" / "arctic_a0001.wav"
    assert utts[1].text == 'He said "no" twice.'
    assert utts[2].text == 'Not at "this" particular case, Tom.'
    assert [u.speaker for u in read_cmu_arctic(tmp_path, ProblemReport("a"), speakers=["slt"])] == ["slt"]


def test_arctic_bad_lines_reported(tmp_path: Path) -> None:
    lines = b"\n".join([
        b'( arctic_a0001 "Fine." )',       # 1 good
        b"arctic_a0002 no quotes at all",  # 2 unparseable
        b'( arctic_a0003 "unterminated )', # 3 only one quote
        b'( arctic_a0004 "   " )',         # 4 empty transcript
        b'( arctic_a0005 "No wav." )',     # 5 wav missing
        b'( arctic_a0001 "Dup." )',        # 6 duplicate
        b'( arctic_a0006 "\xc3\x28" )',    # 7 invalid UTF-8 sequence
        b"",
        b'( arctic_b0001 "Still read." )', # 9 good
    ])
    prompts = make_arctic(tmp_path, "xyz", lines, ["arctic_a0001", "arctic_a0004", "arctic_a0006", "arctic_b0001"])
    report = ProblemReport("arctic")
    utts = read_cmu_arctic(tmp_path, report)
    assert [u.id for u in utts] == ["xyz/arctic_a0001", "xyz/arctic_b0001"]
    assert [(p.path, p.line) for p in report.problems] == [(str(prompts), n) for n in (2, 3, 4, 5, 6, 7)]
    assert report.counts_by_reason() == {
        "malformed line": 2, "empty transcript": 1, "missing audio file": 1,
        "duplicate id": 1, "not valid UTF-8": 1,
    }
    with pytest.raises(DataError, match=rf"^{re.escape(str(prompts))}:2: malformed line"):
        read_cmu_arctic(tmp_path, ProblemReport("arctic", strict=True))


def test_arctic_unknown_speaker_lists_available(tmp_path: Path) -> None:
    make_arctic(tmp_path, "bdl", ARCTIC_BDL, [])
    make_arctic(tmp_path, "slt", ARCTIC_BDL, [])
    with pytest.raises(DataError, match=r"awb not found .*found: bdl, slt"):
        read_cmu_arctic(tmp_path, ProblemReport("a"), speakers=["bdl", "awb"])


def test_arctic_missing_corpus_or_transcripts(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cmu_us_<speaker>_arctic"):
        read_cmu_arctic(tmp_path / "nowhere", ProblemReport("a"))
    (tmp_path / "cmu_us_bdl_arctic" / "wav").mkdir(parents=True)
    with pytest.raises(DataError, match=r"txt\.done\.data"):
        read_cmu_arctic(tmp_path, ProblemReport("a"))


def test_pair_by_prompt_only_common_prompts_sorted(tmp_path: Path) -> None:
    make_arctic(tmp_path, "bdl", b'( arctic_a0003 "c" )\n( arctic_a0001 "a" )\n( arctic_a0002 "b" )\n',
                ["arctic_a0001", "arctic_a0002", "arctic_a0003"])
    make_arctic(tmp_path, "slt", b'( arctic_a0004 "d" )\n( arctic_a0003 "c" )\n( arctic_a0001 "a" )\n',
                ["arctic_a0001", "arctic_a0003", "arctic_a0004"])
    utts = read_cmu_arctic(tmp_path, ProblemReport("a"))
    pairs = pair_by_prompt(utts, "bdl", "slt")
    assert [(s.id, t.id) for s, t in pairs] == [
        ("bdl/arctic_a0001", "slt/arctic_a0001"),
        ("bdl/arctic_a0003", "slt/arctic_a0003"),
    ]
    with pytest.raises(DataError, match="speakers present: bdl, slt"):
        pair_by_prompt(utts, "bdl", "awb")
