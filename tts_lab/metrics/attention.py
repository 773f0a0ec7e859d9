"""Alignment-quality metrics for attention-based decoders (torchmetrics; sum states reduce correctly under DDP)."""

import torch
from torch import Tensor
from torchmetrics import Metric

from tts_lab.models.tacotron.utils import lengths_to_mask


def _valid_mask(alignments: Tensor, dec_lengths: Tensor, enc_lengths: Tensor) -> Tensor:
    """(B, S, N) bool: valid decoder step x valid encoder step."""
    _, steps, n_enc = alignments.shape
    return lengths_to_mask(dec_lengths, steps).unsqueeze(-1) & lengths_to_mask(enc_lengths, n_enc).unsqueeze(1)


class AttentionDiagonal(Metric):
    """Share of attention mass near the diagonal: ``|t / T_dec - n / N_enc| <= band``, per item's own lengths.

    1.0 for a clean monotonic alignment that spans the input; uniform attention scores about ``2 band - band^2``.

    ``update(alignments (B, S, N), dec_lengths (B,) valid decoder steps, enc_lengths (B,) valid encoder steps)``.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, band: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.band = band
        self.add_state("in_band", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, alignments: Tensor, dec_lengths: Tensor, enc_lengths: Tensor) -> None:
        _, steps, n_enc = alignments.shape
        t = torch.arange(steps, device=alignments.device).view(1, -1, 1) / dec_lengths.view(-1, 1, 1).clamp_min(1)
        n = torch.arange(n_enc, device=alignments.device).view(1, 1, -1) / enc_lengths.view(-1, 1, 1).clamp_min(1)
        weights = alignments.detach().float().masked_fill(~_valid_mask(alignments, dec_lengths, enc_lengths), 0.0)
        in_band = (t - n).abs() <= self.band + 1e-6  # inclusive; tolerance for float32 rounding on the boundary
        self.in_band += (weights * in_band).sum()
        self.total += weights.sum()

    def compute(self) -> Tensor:
        return self.in_band / self.total.clamp_min(1e-12)


class AttentionFocus(Metric):
    """Mean over valid decoder steps of the largest attention weight (1 = one-hot, 1 / N = uniform).

    ``update(alignments (B, S, N), dec_lengths (B,), enc_lengths (B,))``.
    """

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("focus", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("steps", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, alignments: Tensor, dec_lengths: Tensor, enc_lengths: Tensor) -> None:
        weights = alignments.detach().float().masked_fill(~_valid_mask(alignments, dec_lengths, enc_lengths), 0.0)
        step_mask = lengths_to_mask(dec_lengths, alignments.size(1))  # (B, S)
        self.focus += weights.amax(-1).masked_fill(~step_mask, 0.0).sum()
        self.steps += step_mask.sum()

    def compute(self) -> Tensor:
        return self.focus / self.steps.clamp_min(1)
