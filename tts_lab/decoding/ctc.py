"""CTC decoding: greedy (collapse repeats, drop blanks) and beam search via torchaudio's flashlight decoder."""

from __future__ import annotations

from pathlib import Path

import torch

from tts_lab.text import Tokenizer


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer) -> list[str]:
    """log_probs (B, T, V), lengths (B,) -> one string per item."""
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    return [tokenizer.decode(tokenizer.ctc_collapse(best[b, : int(n)])) for b, n in enumerate(lengths.cpu())]


class BeamSearchDecoder:
    """Lexicon-free (or lexicon + n-gram LM) beam search with torchaudio's ``ctc_decoder``.

    Args:
        tokenizer: gives the token list; the space is the word separator ``|``.
        beam_size: hypotheses kept per step.
        lexicon: optional lexicon file (word, then its spelling as space-separated tokens ending in ``|``).
        lm: optional KenLM binary/ARPA file; ``lm_weight`` and ``word_score`` weigh it.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        beam_size: int = 16,
        lexicon: str | Path | None = None,
        lm: str | Path | None = None,
        lm_weight: float = 2.0,
        word_score: float = 0.0,
    ) -> None:
        from torchaudio.models.decoder import ctc_decoder  # needs flashlight-text; imported lazily

        self.tokenizer = tokenizer
        self._decoder = ctc_decoder(
            lexicon=str(lexicon) if lexicon else None,
            tokens=tokenizer.tokens(),
            lm=str(lm) if lm else None,
            beam_size=beam_size,
            lm_weight=lm_weight,
            word_score=word_score,
            blank_token=tokenizer.tokens()[tokenizer.blank_id],
            sil_token="|",
            log_add=True,  # merge paths of one labelling by summing (true CTC), not by max (Viterbi)
        )

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        hyps = self._decoder(log_probs.detach().float().cpu().contiguous(), lengths.cpu().to(torch.int32))
        out = []
        for nbest in hyps:
            tokens = nbest[0].tokens.tolist() if nbest else []
            # Tokens come back already collapsed (repeats merged per path, blanks dropped), but with word
            # separators at both ends: collapsing again would merge real double letters ("ll").
            out.append(" ".join(self.tokenizer.decode(tokens).split()))
        return out
