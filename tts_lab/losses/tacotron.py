"""Tacotron training losses: masked mel reconstruction, stop token, guided attention.

Losses are computed in fp32 so they stay accurate under mixed-precision autocast.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from tts_lab.models.tacotron.utils import lengths_to_mask, n_steps


def masked_mel_loss(pred: Tensor, target: Tensor, lengths: Tensor, kind: Literal["l1", "mse"] = "l1") -> Tensor:
    """Mean L1 / squared error over valid frames x mel channels.

    Args:
        pred: (B, T_pred, n_mels); may be longer than ``target`` (decoder output padded to a multiple of r).
        target: (B, T, n_mels).
        lengths: (B,) valid frames.
        kind: "l1" or "mse".

    Returns:
        scalar.
    """
    time = min(pred.size(1), target.size(1))
    pred, target = pred[:, :time].float(), target[:, :time].float()
    mask = lengths_to_mask(lengths.clamp(max=time), time).unsqueeze(-1)  # (B, T, 1)
    if kind == "l1":
        err = (pred - target).abs()
    elif kind == "mse":
        err = (pred - target).pow(2)
    else:
        raise ValueError(f"kind must be 'l1' or 'mse', got {kind!r}")
    denom = (mask.sum() * pred.size(-1)).clamp_min(1)
    return err.masked_fill(~mask, 0.0).sum() / denom


def stop_targets(mel_lengths: Tensor, n_decoder_steps: int, r: int) -> Tensor:
    """(B, S) float targets: 1 at and after each item's last valid step ``ceil(length / r) - 1``, else 0."""
    last = n_steps(mel_lengths, r) - 1  # (B,)
    steps = torch.arange(n_decoder_steps, device=mel_lengths.device)
    return (steps.unsqueeze(0) >= last.unsqueeze(1)).float()


def stop_loss(logits: Tensor, mel_lengths: Tensor, r: int, pos_weight: float = 1.0) -> Tensor:
    """Binary cross-entropy on stop logits, averaged over all steps (steps after the end are positives too).

    Args:
        logits: (B, S) one logit per decoder step.
        mel_lengths: (B,) valid frames.
        r: reduction factor (frames per step).
        pos_weight: weight of the positive ("stop") class; > 1 counters the ~1-in-S class imbalance.
    """
    targets = stop_targets(mel_lengths, logits.size(1), r)
    weight = torch.tensor(pos_weight, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=weight)


def guided_attention_loss(alignments: Tensor, in_lengths: Tensor, out_steps: Tensor, g: float = 0.2) -> Tensor:
    """Diagonal prior on attention (Tachibana et al., 2018).

    Penalty ``W[t, n] = 1 - exp(-(n / N - t / T)^2 / (2 g^2))`` with each item's own N (encoder steps) and T
    (decoder steps); returns the expected penalty per valid decoder step, ``sum_n A[t, n] W[t, n]`` averaged over
    valid steps (in [0, 1); 0 for a perfectly diagonal alignment).

    Args:
        alignments: (B, S, N) attention weights.
        in_lengths: (B,) valid encoder steps N.
        out_steps: (B,) valid decoder steps T.
        g: width of the allowed band.
    """
    batch, steps, n_enc = alignments.shape
    t = torch.arange(steps, device=alignments.device).view(1, -1, 1) / out_steps.view(-1, 1, 1).clamp_min(1)
    n = torch.arange(n_enc, device=alignments.device).view(1, 1, -1) / in_lengths.view(-1, 1, 1).clamp_min(1)
    penalty = 1.0 - torch.exp(-((n - t) ** 2) / (2 * g * g))  # (B, S, N)
    mask = lengths_to_mask(out_steps, steps).unsqueeze(-1) & lengths_to_mask(in_lengths, n_enc).unsqueeze(1)
    per_step = (alignments.float() * penalty).masked_fill(~mask, 0.0).sum(-1)  # (B, S)
    return per_step.sum() / mask.any(-1).sum().clamp_min(1)
