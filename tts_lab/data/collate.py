"""Batching: pad variable-length items and return their lengths (masks derive from lengths)."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import pad_sequence


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool mask, True on valid steps."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _pad(seqs: list[torch.Tensor], value: float) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    return pad_sequence(seqs, batch_first=True, padding_value=value), lengths


def collate_speech(items: list[dict], mel_pad_value: float) -> dict:
    """Stack dataset items into a batch.

    Keys (those present in the items):
        ids, speakers, texts: list[str]
        tokens (B, L) long, padded with 0 (= pad/blank)    token_lengths (B,)
        mel (B, T, n_mels), padded with ``mel_pad_value``    mel_lengths (B,)       the target / own speech
        src_mel (B, S, n_mels)                              src_mel_lengths (B,)   the source speech (VC, autoencoder)
    Padding mels with the silence level (not 0) keeps padded frames looking like silence to the models.
    """
    batch: dict = {key: [it[key] for it in items] for key in ("id", "speaker", "text")}
    batch = {"ids": batch["id"], "speakers": batch["speaker"], "texts": batch["text"]}
    batch["tokens"], batch["token_lengths"] = _pad([it["tokens"] for it in items], 0)
    batch["mel"], batch["mel_lengths"] = _pad([it["mel"] for it in items], mel_pad_value)
    if "src_mel" in items[0]:
        batch["src_mel"], batch["src_mel_lengths"] = _pad([it["src_mel"] for it in items], mel_pad_value)
    return batch
