"""English text normalisation: turn raw transcripts into speakable words.

The output is lowercase words, spaces and the prosody punctuation
``' " , . ? ! - ; :``. Decisions worth knowing:

* Every double-quote style (curly, guillemets, ``„``) becomes ``"``, which is
  kept: quoted speech changes prosody. Curly single quotes become the
  apostrophe ``'`` (contractions need it).
* Em dashes and ``--`` become a spaced ``" - "`` (a pause); a single hyphen
  inside a word ("well-known") stays as is.
* Accents on Latin letters are folded ("café" -> "cafe"); characters that do
  not fold (``ß``, ``#``, CJK, ...) are left for the tokenizer to drop and count.
* Four-digit numbers from 1000 to 2099 are read as years ("1984" ->
  "nineteen eighty four"); write "1,984" to get a cardinal.
* "St." before a capitalised word is "saint", otherwise "street".
* An abbreviation that ends the text keeps its full stop ("& Co." ->
  "and company."): its period also ended the sentence.

``normalize_text`` is idempotent: normalising its output changes nothing.
"""

import re
import unicodedata
from collections.abc import Callable

from num2words import num2words

__all__ = ["normalize_text"]

# Applied after NFKC, which already turns "…" into "..." and fullwidth forms
# into ASCII.
_CHAR_MAP = str.maketrans(
    {
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u201f": '"',  # ‟
        "\u00ab": '"',  # «
        "\u00bb": '"',  # »
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u201b": "'",  # ‛
        "\u2032": "'",  # ′
        "`": "'",
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2212": "-",  # minus sign
        "\u2014": " - ",  # em dash: a pause, not a compound
        "\u2015": " - ",  # horizontal bar
        "\u2044": "/",  # fraction slash, from NFKC of "½"
        "&": " and ",
    }
)

# Keys are lowercase and end with their full stop; longer keys win ("mrs."
# before "mr.").
_ABBREVIATIONS: dict[str, str] = {
    "mrs.": "missus",
    "mr.": "mister",
    "dr.": "doctor",
    "drs.": "doctors",
    "st.": "street",
    "co.": "company",
    "jr.": "junior",
    "sr.": "senior",
    "maj.": "major",
    "gen.": "general",
    "rev.": "reverend",
    "lt.": "lieutenant",
    "hon.": "honorable",
    "sgt.": "sergeant",
    "capt.": "captain",
    "col.": "colonel",
    "esq.": "esquire",
    "ltd.": "limited",
    "ft.": "fort",
    "mt.": "mount",
    "ave.": "avenue",
    "vs.": "versus",
    "etc.": "et cetera",
    "e.g.": "for example",
    "i.e.": "that is",
}
_ABBREV_RE = re.compile(
    r"\b(?:" + "|".join(re.escape(k) for k in sorted(_ABBREVIATIONS, key=len, reverse=True)) + ")"
)
_SAINT_RE = re.compile(r"\bSt\.(?=\s*[A-Z])")

# An integer, with or without thousands separators, not part of a longer run.
_INT = r"(?<!\d)(\d{1,3}(?:,\d{3})+|\d+)(?![\d])"
_CURRENCY_RE = re.compile(
    r"([$£€])\s?" + _INT + r"(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion)\b)?"
)
_PERCENT_RE = re.compile(_INT + r"(?:\.(\d+))?\s?%")
_DECADE_RE = re.compile(r"(?<!\d)(\d*0)s\b")
_ORDINAL_RE = re.compile(_INT + r"(st|nd|rd|th)\b")
_DECIMAL_RE = re.compile(_INT + r"\.(\d+)(?!\d)")
_INTEGER_RE = re.compile(_INT)

# (singular, plural, subunit singular, subunit plural)
_CURRENCIES: dict[str, tuple[str, str, str, str]] = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}


def _clean(words: str) -> str:
    """Drop num2words' hyphens and commas: they are not pauses in speech."""
    return " ".join(re.sub(r"[-,]", " ", words).split())


def _digits(digits: str) -> str:
    """Read a digit string one digit at a time ("007" -> "zero zero seven")."""
    return " ".join(num2words(int(d)) for d in digits)


def _cardinal(number: str) -> str:
    """Cardinal words for an integer string that may hold thousands commas."""
    plain = number.replace(",", "")
    if len(plain) > 1 and plain.startswith("0"):
        return _digits(plain)  # codes and ids, not quantities
    try:
        return _clean(num2words(int(plain)))
    except (OverflowError, ValueError, NotImplementedError):
        return _digits(plain)  # beyond num2words' scale names


def _decimal(integer: str, fraction: str | None) -> str:
    """ "3", "50" -> "three point five zero" (trailing zeros are read)."""
    words = _cardinal(integer)
    return f"{words} point {_digits(fraction)}" if fraction else words


def _pluralise(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties", for decades like "1990s"."""
    return words[:-1] + "ies" if words.endswith("y") else words + "s"


def _year_or_cardinal(number: str) -> str:
    """Four-digit numbers in 1000-2099 are read as years, others as cardinals."""
    if len(number) == 4 and "," not in number and 1000 <= int(number) <= 2099:
        return _clean(num2words(int(number), to="year"))
    return _cardinal(number)


def _currency(m: re.Match[str]) -> str:
    symbol, integer, fraction, scale = m.groups()
    one, many, sub_one, sub_many = _CURRENCIES[symbol]
    if scale:  # "$2.5 million" -> "two point five million dollars"
        return f"{_decimal(integer, fraction)} {scale} {many}"
    if fraction and len(fraction) > 2:  # not a price: read it as a decimal
        return f"{_decimal(integer, fraction)} {many}"
    units = int(integer.replace(",", ""))
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if units or not cents:
        parts.append(f"{_cardinal(integer)} {one if units == 1 else many}")
    if cents:
        parts.append(f"{_cardinal(str(cents))} {sub_one if cents == 1 else sub_many}")
    return " and ".join(parts)


def _spaced(fn: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
    """Wrap a replacement so words never fuse with adjacent letters ("5pm")."""

    def replace(m: re.Match[str]) -> str:
        s, words = m.string, fn(m)
        left = " " if m.start() > 0 and s[m.start() - 1].isalnum() else ""
        right = " " if m.end() < len(s) and s[m.end()].isalnum() else ""
        return f"{left}{words}{right}"

    return replace


def _expand_numbers(text: str) -> str:
    """Spell out every digit run; the most specific patterns go first."""
    text = _CURRENCY_RE.sub(_spaced(_currency), text)
    text = _PERCENT_RE.sub(_spaced(lambda m: f"{_decimal(m[1], m[2])} percent"), text)
    text = _DECADE_RE.sub(_spaced(lambda m: _pluralise(_year_or_cardinal(m[1]))), text)
    text = _ORDINAL_RE.sub(
        _spaced(lambda m: _clean(num2words(int(m[1].replace(",", "")), to="ordinal"))), text
    )
    text = _DECIMAL_RE.sub(_spaced(lambda m: _decimal(m[1], m[2])), text)
    return _INTEGER_RE.sub(_spaced(lambda m: _year_or_cardinal(m[1])), text)


def _expand_abbreviation(m: re.Match[str]) -> str:
    expansion, rest = _ABBREVIATIONS[m[0]], m.string[m.end() :]
    if not rest.strip():  # at the very end the full stop also closed the sentence
        return expansion + "."
    return expansion + " " if rest[0].isalnum() else expansion  # "mr.smith"


def _fold_accents(text: str) -> str:
    """Strip combining marks ("café" -> "cafe"), leaving other characters."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFKC", stripped)


def normalize_text(text: str) -> str:
    """Normalise English ``text`` to lowercase speakable words.

    Applies NFKC, maps quotes and dashes to ASCII, lowercases, folds accents,
    spells out numbers (cardinals, ordinals, years, decimals, currency,
    percentages), expands common abbreviations and collapses whitespace.
    Empty or whitespace-only input gives ``""``.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _SAINT_RE.sub("Saint", text)  # needs the original case
    # Lowercase before folding: some lowercase forms add combining marks.
    text = _fold_accents(text.lower()).translate(_CHAR_MAP)
    text = _expand_numbers(text)
    # After numbers, so that the spaces they add cannot create new matches.
    text = _ABBREV_RE.sub(_expand_abbreviation, text)
    text = re.sub(r"-{2,}", " - ", text)
    return " ".join(text.split())
