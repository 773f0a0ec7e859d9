import torch

from tts_lab.decoding.ctc import BeamSearchDecoder, greedy_decode
from tts_lab.text import ASR_SYMBOLS, Tokenizer

TOK = Tokenizer(ASR_SYMBOLS)


def peaky(text: str, frames_per_token: int = 2) -> torch.Tensor:
    """Log-probs whose best path spells ``text`` with a blank after every token (so 'll' survives)."""
    ids = TOK.encode(text)
    T = len(ids) * (frames_per_token + 1)
    lp = torch.full((T, TOK.vocab_size), -8.0)
    for i, t in enumerate(ids):
        lp[i * (frames_per_token + 1) : i * (frames_per_token + 1) + frames_per_token, t] = 0.0
        lp[i * (frames_per_token + 1) + frames_per_token, TOK.blank_id] = 0.0
    return lp.log_softmax(-1)


def test_greedy_and_beam_agree_on_peaky_posteriors_and_respect_lengths():
    a, b = peaky("hello world"), peaky("all will")
    T = max(len(a), len(b))
    lp = torch.full((2, T, TOK.vocab_size), -8.0)
    lp[:, :, TOK.blank_id] = 0.0
    lp[0, : len(a)], lp[1, : len(b)] = a, b
    lp = lp.log_softmax(-1)
    lengths = torch.tensor([len(a), len(b)])
    assert greedy_decode(lp, lengths, TOK) == ["hello world", "all will"]
    assert BeamSearchDecoder(TOK, beam_size=8)(lp, lengths) == ["hello world", "all will"]
    # Frames past an item's length are ignored: cutting 'b' short loses its tail.
    assert greedy_decode(lp, torch.tensor([len(a), 3]), TOK)[1] == "a"


def test_beam_search_can_beat_greedy_when_probability_mass_is_split():
    """Classic CTC case: greedy picks the best frame-wise path, beam search the best labelling."""
    V = TOK.vocab_size
    a = TOK.encode("a")[0]
    probs = torch.full((2, V), 1e-6)
    probs[:, TOK.blank_id] = 0.4  # blank is the best single frame label ...
    probs[:, a] = 0.35  # ... but 'a' summed over its paths (a_, _a, aa) beats the empty labelling
    lp = (probs / probs.sum(-1, keepdim=True)).log()[None]
    assert greedy_decode(lp, torch.tensor([2]), TOK) == [""]
    assert BeamSearchDecoder(TOK, beam_size=8)(lp, torch.tensor([2])) == ["a"]


def test_lexicon_constrains_beam_search_to_known_words(tmp_path):
    """A misspelt posterior ('helo') is mapped onto the lexicon's word when one is given."""
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("hello h e l l o |\nworld w o r l d |\n")
    lp = peaky("helo")[None]
    lengths = torch.tensor([lp.shape[1]])
    assert BeamSearchDecoder(TOK, beam_size=8)(lp, lengths) == ["helo"]
    assert BeamSearchDecoder(TOK, beam_size=50, lexicon=lexicon, word_score=0.0)(lp, lengths) == ["hello"]
