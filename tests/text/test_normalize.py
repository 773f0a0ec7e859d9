"""Tests for the English text normaliser."""

import pytest

from tts_lab.text import normalize_text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("42", "forty two"),
        ("1,000 people", "one thousand people"),
        ("1,234,567", "one million two hundred and thirty four thousand five hundred and sixty seven"),
        ("the 1st and 22nd", "the first and twenty second"),
        ("in 1984", "in nineteen eighty four"),
        ("in 1905", "in nineteen oh five"),
        ("the 1990s", "the nineteen nineties"),
        ("3.5", "three point five"),
        ("3.50", "three point five zero"),  # trailing zero is read, unlike num2words(3.50)
        ("007", "zero zero seven"),
        ("$5", "five dollars"),
        ("$1", "one dollar"),
        ("£3", "three pounds"),
        ("$5.50", "five dollars and fifty cents"),
        ("$0.01", "one cent"),
        ("$2.5 million", "two point five million dollars"),
        ("50%", "fifty percent"),
        ("3.5 %", "three point five percent"),
        ("at 5pm", "at five pm"),  # digits never fuse with letters
    ],
)
def test_numbers(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Mr. Smith", "mister smith"),
        ("Mrs. Smith", "missus smith"),
        ("Dr. Who", "doctor who"),
        ("St. Louis", "saint louis"),
        ("Baker St. is", "baker street is"),
        ("Smith & Co.", "smith and company."),  # the final full stop survives
        ("Sammy Davis Jr. sang", "sammy davis junior sang"),
        ("apples, pears, etc.", "apples, pears, et cetera."),
        ("mr.smith", "mister smith"),
        ("Drake", "drake"),  # word-boundary aware: no "doctorake"
        ("Mister", "mister"),
    ],
)
def test_abbreviations(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_quotes_and_dashes_become_ascii() -> None:
    assert normalize_text("He said \u201cdon\u2019t\u201d") == "he said \"don't\""
    assert normalize_text("wait\u2014what") == "wait - what"
    assert normalize_text("wait -- what") == "wait - what"
    assert normalize_text("a well-known fact") == "a well-known fact"
    # LJSpeech style: an opening quote without its closing one is kept as is.
    assert normalize_text('He said, "I will go.') == 'he said, "i will go.'


def test_prosody_punctuation_kept() -> None:
    assert normalize_text("Yes; no: maybe? Sure! Fine, ok.") == "yes; no: maybe? sure! fine, ok."


def test_case_whitespace_and_accents() -> None:
    assert normalize_text("  Hello\t\n  WORLD  ") == "hello world"
    assert normalize_text("Caf\u00e9 na\u00efve") == "cafe naive"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n "])
def test_empty_input(raw: str) -> None:
    assert normalize_text(raw) == ""


@pytest.mark.parametrize(
    "raw",
    [
        "Mr. Smith paid $5.50 on the 1st of May, 1984 -- and 3.5% more.",
        "\u201cIt\u2019s St. Paul\u2019s,\u201d said Dr. Jones & Co.",
        'In the 1990s, "quoted" text; 1,000,000 \u2014 007?',
        "mr.smith 5pm mp3 \u00a33 \u20ac1,000 etc.",
        "Caf\u00e9 \u0130stanbul \u00bd \u2026",
        "",
    ],
)
def test_idempotent(raw: str) -> None:
    once = normalize_text(raw)
    assert normalize_text(once) == once
