"""Tests for the character tokenizer."""

import pytest
import torch

from tts_lab.text import ASR_SYMBOLS, TTS_SYMBOLS, Tokenizer, normalize_text


@pytest.fixture
def tts() -> Tokenizer:
    return Tokenizer(TTS_SYMBOLS)


@pytest.fixture
def asr() -> Tokenizer:
    return Tokenizer(ASR_SYMBOLS)


def test_ids_and_vocab(tts: Tokenizer) -> None:
    assert tts.pad_id == 0 and tts.blank_id == 0
    assert tts.vocab_size == len(TTS_SYMBOLS) + 1
    assert tts.symbols == TTS_SYMBOLS
    ids = tts.encode("abc")
    assert 0 not in ids
    assert ids == [1, 2, 3]  # symbol i -> id i + 1


@pytest.mark.parametrize(
    "raw",
    ["Mr. Smith paid $5 on the 1st.", 'He said, "Don\u2019t go -- now!"', "Yes; no: maybe?"],
)
def test_round_trip(tts: Tokenizer, raw: str) -> None:
    normalised = normalize_text(raw)
    assert tts.decode(tts.encode(raw)) == normalised
    assert not tts.dropped


def test_decode_skips_blank_and_accepts_tensors(tts: Tokenizer) -> None:
    ids = tts.encode("hi")
    assert tts.decode(torch.tensor([0, ids[0], 0, 0, ids[1], 0])) == "hi"
    with pytest.raises(ValueError):
        tts.decode([tts.vocab_size])


def test_unknown_characters_dropped_and_counted() -> None:
    tok = Tokenizer(TTS_SYMBOLS, normalize=False)
    assert tok.decode(tok.encode("caf\u00e9 # \u00e9t\u00e9")) == "caf t"
    assert tok.dropped == {"\u00e9": 3, "#": 1}
    assert tok.unknown_report() == "dropped 4 unknown characters: '\u00e9'x3, '#'x1"
    tok.reset_counts()
    assert not tok.dropped
    assert tok.unknown_report() == "dropped 0 unknown characters"


def test_asr_drops_punctuation_silently(asr: Tokenizer) -> None:
    ids = asr.encode('He said, "don\u2019t stop -- a well-known fact!"')
    assert asr.decode(ids) == "he said don't stop a well known fact"
    assert not asr.dropped  # known punctuation is not unknown noise
    asr.encode("a # b")
    assert asr.dropped == {"#": 1}


@pytest.mark.parametrize("raw", ["", "   ", "\t\n", '"', "..."])
def test_empty_input_gives_no_ids(asr: Tokenizer, raw: str) -> None:
    assert asr.encode(raw) == []


def test_empty_input_gives_no_ids_for_tts(tts: Tokenizer) -> None:
    assert tts.encode("") == [] and tts.encode(" \n ") == []


def test_ctc_collapse(tts: Tokenizer) -> None:
    a, b = tts.encode("ab")
    assert tts.ctc_collapse([a, a, 0, a]) == [a, a]  # blank separates true repeats
    assert tts.ctc_collapse([a, a, a, b, b]) == [a, b]
    assert tts.ctc_collapse([0, 0, a, 0, 0, b, 0]) == [a, b]
    assert tts.ctc_collapse(torch.tensor([0, a, a, 0])) == [a]
    assert tts.ctc_collapse([]) == []


def test_tokens_for_ctc_decoder(asr: Tokenizer) -> None:
    tokens = asr.tokens()
    assert len(tokens) == asr.vocab_size
    assert tokens[0] == "<blank>"
    assert tokens[asr.encode("a b")[1]] == "|"
    assert "'" in tokens and " " not in tokens
    assert len(set(tokens)) == len(tokens)


def test_pad_batch(tts: Tokenizer) -> None:
    seqs = [tts.encode("hello"), tts.encode("hi"), []]
    batch, lengths = tts.pad_batch(seqs)
    assert batch.dtype == torch.long and lengths.dtype == torch.long
    assert batch.shape == (3, 5)
    assert lengths.tolist() == [5, 2, 0]
    assert batch[1, :2].tolist() == seqs[1]
    assert (batch[1, 2:] == tts.pad_id).all() and (batch[2] == tts.pad_id).all()
    empty, empty_lengths = tts.pad_batch([])
    assert empty.shape == (0, 0) and empty_lengths.shape == (0,)


def test_equality_and_repr() -> None:
    assert Tokenizer(TTS_SYMBOLS) == Tokenizer(TTS_SYMBOLS, normalize=False)
    assert Tokenizer(TTS_SYMBOLS) != Tokenizer(ASR_SYMBOLS)
    assert hash(Tokenizer(ASR_SYMBOLS)) == hash(Tokenizer(ASR_SYMBOLS))
    assert repr(Tokenizer(ASR_SYMBOLS)) == "Tokenizer(symbols=\"abcdefghijklmnopqrstuvwxyz '\", normalize=True)"


@pytest.mark.parametrize("symbols", ["abca", "ab_", "ab|"])
def test_invalid_symbols_rejected(symbols: str) -> None:
    with pytest.raises(ValueError):
        Tokenizer(symbols)
