"""Spectral-quality metrics for predicted mels (B, T, n_mels) against ground truth with valid ``lengths`` (B,).

All states are sums, counts or concatenated frames reduced across DDP ranks, so the results are those of the
pooled data (exact, not a mean of per-rank values). Sums are float64: variances are taken as E[x^2] - E[x]^2
on log-mels around -5, where float32 cancellation is visible.
"""

from __future__ import annotations

from typing import Literal

import ot
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def _valid_frames(x: Tensor, lengths: Tensor | None) -> Tensor:
    """(B, T, n_mels) -> (N, n_mels): frames t < lengths[b] of every utterance (all if ``lengths`` is None)."""
    if lengths is None:
        return x.reshape(-1, x.shape[-1])
    mask = torch.arange(x.shape[1], device=x.device) < lengths.to(x.device)[:, None]  # (B, T)
    return x[mask]


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"expected pred and target of one shape (B, T, n_mels), got {pred.shape}, {target.shape}")


class GVRatio(Metric):
    """Global-variance ratio: mean over mel bins of var(pred[:, bin]) / var(target[:, bin]).

    Variances are over all valid frames pooled across utterances (and ranks). Over-smoothed ("blurry")
    predictions give < 1, a perfect match 1; GAN post-filters aim to push it back towards 1.

    The per-bin states are allocated with their (n_mels,) shape up front, so a DDP rank that saw no data (e.g.
    fewer validation batches than ranks) still takes part in the state sync with tensors of the right shape.

    Args:
        n_mels: number of mel bins (size of the per-bin states); updates with another size raise.
        eps: floor of the target variance.
    """

    full_state_update = False
    higher_is_better = None  # closer to 1 is better

    def __init__(self, n_mels: int = 80, eps: float = 1e-8) -> None:
        super().__init__()
        if n_mels < 1:
            raise ValueError(f"n_mels must be positive, got {n_mels}")
        self.n_mels, self.eps = n_mels, eps
        for name in ("pred_sum", "pred_sq", "target_sum", "target_sq"):
            self.add_state(name, torch.zeros(n_mels, dtype=torch.float64), dist_reduce_fx="sum")  # (n_mels,)
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, lengths: Tensor | None = None) -> None:
        _check(pred, target)
        if pred.shape[-1] != self.n_mels:
            raise ValueError(f"GVRatio was built for n_mels={self.n_mels}, got {pred.shape[-1]} mel bins")
        p = _valid_frames(pred.detach(), lengths).double()  # (N, n_mels)
        t = _valid_frames(target.detach(), lengths).double()
        self.pred_sum = self.pred_sum + p.sum(0)
        self.pred_sq = self.pred_sq + (p**2).sum(0)
        self.target_sum = self.target_sum + t.sum(0)
        self.target_sq = self.target_sq + (t**2).sum(0)
        self.count = self.count + p.shape[0]

    def compute(self) -> Tensor:
        if self.count == 0:
            raise RuntimeError("GVRatio.compute() called before any valid frame was seen")
        n = self.count
        var_pred = self.pred_sq / n - (self.pred_sum / n) ** 2  # (n_mels,)
        var_target = self.target_sq / n - (self.target_sum / n) ** 2
        return (var_pred.clamp_min(0) / var_target.clamp_min(self.eps)).mean().float()


class MelL1(Metric):
    """Mean absolute error over valid frames x mel bins (padding excluded)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("abs_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, lengths: Tensor | None = None) -> None:
        _check(pred, target)
        err = _valid_frames((pred.detach() - target.detach()).abs(), lengths)  # (N, n_mels)
        self.abs_sum = self.abs_sum + err.double().sum()
        self.count = self.count + err.numel()

    def compute(self) -> Tensor:
        if self.count == 0:
            raise RuntimeError("MelL1.compute() called before any valid frame was seen")
        return (self.abs_sum / self.count).float()


class FrameWasserstein(Metric):
    """Optimal-transport distance between the SET of predicted frames and the SET of ground-truth frames.

    Each valid frame is a point in R^n_mels; frame order is ignored. This is a distributional distance: a
    prediction that is the per-frame conditional mean (blurry) has a low L1 but a collapsed, too-narrow frame
    distribution, which L1 cannot see and this metric does. Lower is better; 0 for identical sets.

    Methods (POT, float64, deterministic):
        "sliced": sliced 2-Wasserstein distance over ``n_projections`` random directions drawn with ``seed``.
            O(n log n) per projection, so it scales; the default.
        "sinkhorn": debiased Sinkhorn divergence with Euclidean cost (a W1 approximation, same units as the
            mels): S = OT(p, t) - (OT(p, p) + OT(t, t)) / 2 with ``OT = ot.sinkhorn2`` under uniform weights.
            Debiasing removes the entropic blur, so identical sets give exactly 0. ``reg`` is relative to the
            mean within-set cost (translation invariant), so it means the same on any data scale.
            O(n^2) memory and time per iteration, run on the metric's device: a few seconds on a CPU for
            2000 frames (lower ``max_frames`` there), negligible on a GPU.

    Args:
        method: "sliced" or "sinkhorn".
        n_projections: directions for "sliced".
        max_frames: each set is subsampled (seeded, deterministic) to at most this many frames at compute.
        seed: seed of the projections and of the subsampling.
        reg: relative entropic regularisation for "sinkhorn".
        n_mels: frame size; when given, a DDP rank that saw no data syncs an empty (0, n_mels) set instead of
            torchmetrics' 1-D placeholder, whose shape the other ranks' (N, n_mels) sets cannot be gathered with.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(
        self,
        method: Literal["sliced", "sinkhorn"] = "sliced",
        n_projections: int = 64,
        max_frames: int = 2000,
        seed: int = 0,
        reg: float = 0.05,
        n_mels: int | None = None,
    ) -> None:
        super().__init__()
        if method not in ("sliced", "sinkhorn"):
            raise ValueError(f"unknown method {method!r}")
        self.method, self.n_projections, self.max_frames = method, n_projections, max_frames
        self.seed, self.reg, self.n_mels = seed, reg, n_mels
        self.add_state("pred_frames", [], dist_reduce_fx="cat")  # list of (N_i, n_mels)
        self.add_state("target_frames", [], dist_reduce_fx="cat")

    def update(self, pred: Tensor, target: Tensor, lengths: Tensor | None = None) -> None:
        _check(pred, target)
        self.pred_frames.append(_valid_frames(pred.detach(), lengths).float())
        self.target_frames.append(_valid_frames(target.detach(), lengths).float())

    def _sync_dist(self, *args, **kwargs) -> None:
        if self.n_mels is not None:
            for name in ("pred_frames", "target_frames"):
                if not getattr(self, name):  # this rank saw nothing: an empty set of the right frame size
                    getattr(self, name).append(torch.zeros(0, self.n_mels, device=self.device))
        super()._sync_dist(*args, **kwargs)

    def _subsample(self, x: Tensor) -> Tensor:
        """(N, n_mels) -> (min(N, max_frames), n_mels) float64: a seeded draw that depends on the set of frames only.

        The frames are first put in a canonical order (by a seeded random projection; ties are identical frames or
        practically so), so the draw does not depend on the order they arrived in: batch order, or how DDP ranks
        shared the utterances. 1 and N processes then measure the same subsample."""
        x = x.double()
        if x.shape[0] > self.max_frames:
            g = torch.Generator().manual_seed(self.seed)
            key = x @ torch.randn(x.shape[1], generator=g, dtype=torch.float64).to(x.device)  # (N,)
            idx = torch.randperm(x.shape[0], generator=g)[: self.max_frames].sort().values
            x = x[key.argsort(stable=True)[idx.to(x.device)]]
        return x

    def compute(self) -> Tensor:
        if len(self.pred_frames) == 0 or len(self.target_frames) == 0:  # lists, or one tensor after a DDP sync
            raise RuntimeError("FrameWasserstein.compute() called before update()")
        p = self._subsample(dim_zero_cat(self.pred_frames))  # (n, n_mels)
        t = self._subsample(dim_zero_cat(self.target_frames))  # (m, n_mels)
        if p.shape[0] == 0 or t.shape[0] == 0:
            raise RuntimeError("FrameWasserstein: no valid frames")
        if self.method == "sliced":
            # numpy backend: POT's own seeded RandomState, so the projections do not depend on the device.
            value = ot.sliced_wasserstein_distance(
                p.cpu().numpy(), t.cpu().numpy(), n_projections=self.n_projections, seed=self.seed
            )
        else:
            value = self._sinkhorn_divergence(p, t)
        return torch.tensor(float(value), dtype=torch.float32, device=self.device)

    def _sinkhorn_divergence(self, p: Tensor, t: Tensor) -> float:
        # Torch backend on the metric's device: O(n^2) per iteration is slow on a CPU for n ~ 2000.
        a, b = ot.unif(p.shape[0], type_as=p), ot.unif(t.shape[0], type_as=t)
        m_pp, m_tt = ot.dist(p, p, metric="euclidean"), ot.dist(t, t, metric="euclidean")
        scale = float(0.5 * (m_pp.mean() + m_tt.mean()))
        if scale <= 0:  # both sets are single repeated points: OT is just the distance between them
            return float((p[0] - t[0]).norm())
        reg = self.reg * scale

        def cost(u: Tensor, v: Tensor, m: Tensor) -> float:
            return float(ot.sinkhorn2(u, v, m, reg, numItermax=2000))

        m_pt = ot.dist(p, t, metric="euclidean")
        return cost(a, b, m_pt) - 0.5 * (cost(a, a, m_pp) + cost(b, b, m_tt))
