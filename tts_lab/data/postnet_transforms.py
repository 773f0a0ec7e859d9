"""Data helpers for the postnet GAN: synthetic blurring, value normalisation, silence-aware crop sampling.

Mels are time-major (T, n_mels) log-mels (natural log, silence at ``FeatureConfig.silence_level``).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LOG_SILENCE = math.log(1e-5)  # FeatureConfig.log_floor's default, ~ -11.51


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()  # (2 * radius + 1,)


def _smooth(img: Tensor, sigma: float, dim: int) -> Tensor:
    """Gaussian-smooth (N, 1, T, F) along ``dim`` (2 = time, 3 = freq); reflect padding, replicate if too short."""
    if sigma <= 0:
        return img
    k = _gaussian_kernel(sigma, img.dtype, img.device)
    r = k.numel() // 2
    size = img.shape[dim]
    mode = "reflect" if r < size else "replicate"  # reflect padding needs pad < size
    if dim == 2:
        padded = F.pad(img, (0, 0, r, r), mode=mode)
        return F.conv2d(padded, k.view(1, 1, -1, 1))
    padded = F.pad(img, (r, r, 0, 0), mode=mode)
    return F.conv2d(padded, k.view(1, 1, 1, -1))


def degrade(
    mel: Tensor,
    time_sigma: float = 1.5,
    freq_sigma: float = 1.0,
    noise_std: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Make a 'blurry' mel: separable Gaussian smoothing along time and frequency plus Gaussian noise.

    A stand-in for an over-smoothed upstream model's output when real pairs are unavailable (and for tests).
    Sigmas are in frames / mel bins; ``noise_std`` is in the units of ``mel``. Deterministic given
    ``generator`` (a CPU generator works for any device of ``mel``).

    Args:
        mel: (T, n_mels) or batched (..., T, n_mels).

    Returns:
        Same shape and dtype as ``mel``.
    """
    shape = mel.shape
    img = mel.reshape(-1, 1, shape[-2], shape[-1])  # (N, 1, T, n_mels)
    out = _smooth(_smooth(img, time_sigma, dim=2), freq_sigma, dim=3).reshape(shape)
    if noise_std > 0:
        device = generator.device if generator is not None else mel.device
        noise = torch.randn(shape, generator=generator, device=device, dtype=mel.dtype)
        out = out + noise_std * noise.to(mel.device)
    return out


class MelNormalizer(nn.Module):
    """Affine map of log-mels to about [-1, 1]: ``(x - mean[bin]) / scale``.

    ``mean`` is the per-bin mean over all training frames; ``scale`` is one global number, the ``percentile``-th
    percentile of |x - mean| (a single scale keeps the relative level of the bins, i.e. the spectral shape).
    Log-mels are bounded (log floor below, loudness above), so a high percentile is close to the max while
    ignoring rare clicks. Statistics are buffers: they move with ``.to()`` and are saved in ``state_dict()``
    and hence in a LightningModule's checkpoint when it is a submodule.

    Args:
        n_mels: number of mel bins (buffer shape, so ``load_state_dict`` works on a fresh instance).
        percentile: percentile of |x - mean| that maps to 1.
    """

    mean: Tensor
    scale: Tensor
    fitted: Tensor

    def __init__(self, n_mels: int = 80, percentile: float = 99.9) -> None:
        super().__init__()
        if not 0 < percentile <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percentile}")
        self.percentile = percentile
        self.register_buffer("mean", torch.zeros(n_mels))  # (n_mels,)
        self.register_buffer("scale", torch.ones(()))  # ()
        self.register_buffer("fitted", torch.tensor(False))  # lets callers refuse to train un-fitted

    @torch.no_grad()
    def fit(self, mels: Iterable[Tensor], max_frames: int = 100_000, seed: int = 0) -> MelNormalizer:
        """Fit in one pass over (T, n_mels) mels; returns ``self``.

        The mean is exact (float64 sums); the percentile uses a uniform random sample of at most ``max_frames``
        frames (the frames with the smallest seeded random keys), so memory stays bounded on large corpora.
        """
        g = torch.Generator().manual_seed(seed)
        n_mels = self.mean.numel()
        total = torch.zeros(n_mels, dtype=torch.float64)
        count = 0
        frames: list[Tensor] = []  # chunks of (T_i, n_mels); pruned to max_frames whenever they reach 2x
        keys: list[Tensor] = []
        pending = 0

        def prune() -> None:
            x, k = torch.cat(frames), torch.cat(keys)
            if k.numel() > max_frames:
                keep = k.topk(max_frames, largest=False).indices
                x, k = x[keep], k[keep]
            frames[:], keys[:] = [x], [k]

        for mel in mels:
            x = mel.detach().cpu().float().reshape(-1, n_mels)  # (T, n_mels)
            total += x.double().sum(0)
            count += x.shape[0]
            frames.append(x)
            keys.append(torch.rand(x.shape[0], generator=g))
            pending += x.shape[0]
            if pending > 2 * max_frames:
                prune()
                pending = frames[0].shape[0]
        if count == 0:
            raise ValueError("MelNormalizer.fit() got no frames")
        prune()
        sample = frames[0].double()  # (<= max_frames, n_mels)
        mean = total / count  # (n_mels,)
        dev = (sample - mean).abs().flatten()
        k = max(1, math.ceil(self.percentile / 100 * dev.numel()))
        scale = dev.kthvalue(k).values.clamp_min(1e-8)
        self.mean.copy_(mean.to(self.mean))
        self.scale.copy_(scale.to(self.scale))
        self.fitted.fill_(True)
        return self

    def normalize(self, x: Tensor) -> Tensor:
        """(..., n_mels) log-mel -> (..., n_mels) in about [-1, 1]."""
        return (x - self.mean) / self.scale

    def denormalize(self, x: Tensor) -> Tensor:
        """Inverse of ``normalize``."""
        return x * self.scale + self.mean

    def forward(self, x: Tensor) -> Tensor:
        return self.normalize(x)


def silent_frames(mel: Tensor, silence_level: float = LOG_SILENCE, margin: float = 2.0) -> Tensor:
    """(..., T, n_mels) raw (un-normalised) log-mel -> (..., T) bool: mean log-mel < silence_level + margin.

    ``margin`` is in natural-log units (2.0 ~ 17 dB above the log floor).
    """
    return mel.mean(dim=-1) < silence_level + margin


def sample_crop(
    length: int,
    size: int,
    silence_mask: Tensor | None = None,
    max_silence: float = 0.5,
    generator: torch.Generator | None = None,
    max_tries: int = 20,
) -> int | None:
    """Random start of a ``size``-frame crop inside the first ``length`` (valid) frames, by rejection sampling.

    A candidate is rejected when more than ``max_silence`` of its frames are silent (``silence_mask``, (T,) bool,
    True = silent or padding). Returns None when ``length < size`` or no acceptable crop was drawn in
    ``max_tries`` (the caller drops the sample and counts a skip).
    """
    if length < size or size <= 0:
        return None
    if silence_mask is not None and silence_mask.shape[0] < length:
        raise ValueError(f"silence_mask has {silence_mask.shape[0]} frames, fewer than length {length}")
    for _ in range(max_tries):
        start = int(torch.randint(0, length - size + 1, (), generator=generator))
        if silence_mask is None:
            return start
        silent = silence_mask[start : start + size].float().mean().item()
        if silent <= max_silence:
            return start
    return None
