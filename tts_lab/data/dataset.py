"""Map-style datasets over cached log-mels. Items were validated when the cache was built, so reading one in a
DataLoader worker cannot fail on bad audio."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from tts_lab.data.cache import FeatureCache
from tts_lab.data.corpora import Utterance


@dataclass(frozen=True)
class Example:
    """One training example: the target utterance, its encoded text, and optionally a source utterance
    (the other speaker's reading of the same prompt for voice conversion; itself for autoencoding)."""

    target: Utterance
    tokens: tuple[int, ...]
    frames: int  # target length in frames, for bucketing
    source: Utterance | None = None


class SpeechDataset(Dataset):
    def __init__(self, examples: list[Example], cache: FeatureCache) -> None:
        self.examples = examples
        self.cache = cache

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def lengths(self) -> list[int]:
        return [ex.frames for ex in self.examples]

    def __getitem__(self, index: int) -> dict:
        ex = self.examples[index]
        mel = self.cache.load(ex.target.id)  # (T, n_mels)
        item = {
            "id": ex.target.id,
            "speaker": ex.target.speaker,
            "text": ex.target.text,
            "tokens": torch.tensor(ex.tokens, dtype=torch.long),
            "mel": mel,
        }
        if ex.source is not None:
            item["src_mel"] = mel if ex.source.id == ex.target.id else self.cache.load(ex.source.id)
        return item
