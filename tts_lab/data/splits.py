"""Deterministic train/val/test splits.

An utterance's split is decided by a hash of its *prompt id* (and the split seed) alone, so:
- it never depends on file order, on which other files exist, or on which items were skipped as bad;
- in CMU Arctic every speaker's reading of one prompt lands in the same split, so validation prompts are never
  trained on through another speaker (and parallel voice-conversion pairs are never split apart).
"""

from __future__ import annotations

import hashlib
from typing import Literal

Split = Literal["train", "val", "test"]


def split_of(prompt_id: str, val_fraction: float, test_fraction: float, seed: int = 0) -> Split:
    """``val`` for hash position < val_fraction, ``test`` for the next test_fraction, else ``train``."""
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"bad split fractions: val={val_fraction}, test={test_fraction}")
    digest = hashlib.sha1(f"{seed}:{prompt_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < val_fraction:
        return "val"
    if u < val_fraction + test_fraction:
        return "test"
    return "train"
