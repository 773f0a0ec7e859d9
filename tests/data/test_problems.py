"""ProblemReport: recording, strict mode, summary and JSON round trip."""

from __future__ import annotations

import pytest

from tts_lab.data.problems import DataError, Problem, ProblemReport


def test_problem_str_with_and_without_line() -> None:
    assert str(Problem("a/meta.csv", 12, "empty transcript")) == "a/meta.csv:12: empty transcript"
    assert str(Problem("a/x.wav", None, "unreadable audio")) == "a/x.wav: unreadable audio"


def test_add_records_and_counts_by_reason_kind() -> None:
    report = ProblemReport("ljspeech")
    report.add("m.csv", 1, "missing audio file: wavs/a.wav")
    report.add("m.csv", 2, "missing audio file: wavs/b.wav")
    report.add("m.csv", 5, "empty transcript: c")
    assert len(report) == 3
    assert report.problems[1] == Problem("m.csv", 2, "missing audio file: wavs/b.wav")
    assert report.counts_by_reason() == {"missing audio file": 2, "empty transcript": 1}


def test_strict_raises_naming_file_and_line() -> None:
    report = ProblemReport("ljspeech", strict=True)
    with pytest.raises(DataError, match=r"^m\.csv:7: duplicate id: x$"):
        report.add("m.csv", 7, "duplicate id: x")
    assert len(report) == 0


def test_summary_lists_limited_problems() -> None:
    report = ProblemReport("LJSpeech train")
    for line in range(1, 6):
        report.add("m.csv", line, "malformed line: expected 3 fields")
    report.add("m.csv", 9, "not valid UTF-8: bad byte")
    lines = report.summary(max_listed=3).splitlines()
    assert lines[0] == "LJSpeech train: skipped 6 items (malformed line: 5, not valid UTF-8: 1)"
    assert [ln.strip() for ln in lines[1:4]] == [f"m.csv:{i}: malformed line: expected 3 fields" for i in (1, 2, 3)]
    assert lines[4].strip() == "... and 3 more"
    assert len(lines) == 5
    assert "and" not in ProblemReport("x").summary() and "no problems" in ProblemReport("x").summary()


def test_json_round_trip() -> None:
    report = ProblemReport("arctic", strict=False)
    report.add("t.data", 3, "malformed line: x")
    report.add("a.wav", None, "unreadable audio: truncated")
    again = ProblemReport.from_json(report.to_json())
    assert again.name == "arctic"
    assert again.problems == report.problems
    assert again.summary() == report.summary()
