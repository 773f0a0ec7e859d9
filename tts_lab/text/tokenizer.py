"""Character tokenizer shared by the TTS encoder input and the CTC ASR output."""

import re
from collections import Counter
from collections.abc import Iterable

import torch

from tts_lab.text.normalize import normalize_text
from tts_lab.text.symbols import (
    BLANK_TOKEN,
    PAD,
    PUNCTUATION,
    SIL_TOKEN,
    SPACE,
    TTS_SYMBOLS,
    WORD_SEPARATORS,
)

__all__ = ["Tokenizer"]


class Tokenizer:
    """Map text to symbol ids and back; id 0 is padding and the CTC blank.

    ``encode`` never raises on odd input. Each character is handled as follows:

    * in ``symbols``: kept;
    * any whitespace: a space (runs of spaces collapse, ends are stripped);
    * a word separator (``-``) missing from ``symbols``: a space, so that ASR
      targets read "well known", not "wellknown";
    * other known punctuation (``symbols.PUNCTUATION``) missing from
      ``symbols``: removed silently, as ASR transcripts drop it by design;
    * anything else: removed and counted in ``dropped`` (see
      ``unknown_report``), since it points at data or normalisation problems.

    Two tokenizers are equal when their symbols are equal: that alone fixes
    the ids, so it is what checkpoint compatibility checks compare.
    """

    def __init__(self, symbols: str = TTS_SYMBOLS, normalize: bool = True) -> None:
        """
        Args:
            symbols: one character per symbol; symbol ``i`` gets id ``i + 1``.
            normalize: run ``normalize_text`` before encoding.
        """
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"symbols contain duplicates: {symbols!r}")
        reserved = {PAD, SIL_TOKEN} & set(symbols)
        if reserved:  # both already name something in tokens()
            raise ValueError(f"symbols must not contain reserved {sorted(reserved)}")
        self._symbols = symbols
        self.normalize = normalize
        self._ids = {s: i + 1 for i, s in enumerate(symbols)}
        self.dropped: Counter[str] = Counter()

    @property
    def symbols(self) -> str:
        """The symbol string, without the pad/blank at id 0."""
        return self._symbols

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def blank_id(self) -> int:
        """The CTC blank shares id 0 with padding."""
        return 0

    @property
    def vocab_size(self) -> int:
        """Number of ids, pad/blank included."""
        return len(self._symbols) + 1

    def _filter(self, text: str) -> str:
        """Keep only encodable characters, following the class docstring."""
        has_space = SPACE in self._ids
        kept = []
        for ch in text:
            if ch.isspace() or (ch in WORD_SEPARATORS and ch not in self._ids):
                if has_space:
                    kept.append(SPACE)
            elif ch in self._ids:
                kept.append(ch)
            elif ch not in PUNCTUATION:
                self.dropped[ch] += 1
        # Removals may leave double or edge spaces ("a # b", "well - known").
        return re.sub(" {2,}", " ", "".join(kept)).strip(" ")

    def encode(self, text: str) -> list[int]:
        """Ids for ``text`` (normalised first if enabled); ``[]`` if nothing is left."""
        if self.normalize:
            text = normalize_text(text)
        return [self._ids[ch] for ch in self._filter(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text for ``ids``, skipping pad/blank. Accepts ints or a 1-D tensor."""
        chars = []
        for i in ids:
            i = int(i)
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} outside vocabulary of size {self.vocab_size}")
            if i != self.blank_id:
                chars.append(self._symbols[i - 1])
        return "".join(chars)

    def ctc_collapse(self, ids: Iterable[int]) -> list[int]:
        """Greedy CTC rule: merge repeated ids, then drop blanks.

        A blank between two equal ids keeps both: ``[a, a, 0, a] -> [a, a]``.
        """
        out: list[int] = []
        prev = None
        for i in ids:
            i = int(i)
            if i != prev and i != self.blank_id:
                out.append(i)
            prev = i
        return out

    def tokens(self) -> list[str]:
        """Token names by id, for ``torchaudio.models.decoder.ctc_decoder``.

        Id 0 is ``"<blank>"`` and the space is ``"|"``, matching
        ``blank_token="<blank>"`` and ``sil_token="|"``.
        """
        return [BLANK_TOKEN] + [SIL_TOKEN if s == SPACE else s for s in self._symbols]

    def pad_batch(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad ``seqs`` with ``pad_id``: a LongTensor ``(B, L)`` and lengths ``(B,)``."""
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        max_len = int(lengths.max()) if len(seqs) else 0
        batch = torch.full((len(seqs), max_len), self.pad_id, dtype=torch.long)
        for row, seq in enumerate(seqs):
            batch[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        return batch, lengths

    def unknown_report(self) -> str:
        """One line summarising ``dropped``, most frequent first."""
        total = sum(self.dropped.values())
        if not total:
            return "dropped 0 unknown characters"
        kinds = ", ".join(f"{ch!r}x{n}" for ch, n in self.dropped.most_common())
        return f"dropped {total} unknown characters: {kinds}"

    def reset_counts(self) -> None:
        """Forget the dropped-character counts (e.g. between data splits)."""
        self.dropped.clear()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokenizer):
            return NotImplemented
        return self._symbols == other._symbols

    def __hash__(self) -> int:
        return hash(self._symbols)

    def __repr__(self) -> str:
        return f"Tokenizer(symbols={self._symbols!r}, normalize={self.normalize})"
