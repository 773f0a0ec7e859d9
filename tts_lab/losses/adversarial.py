"""Adversarial losses: pix2pix GAN (BCE / least squares) and WGAN (critic loss, gradient penalty, clipping).

All functions take raw discriminator outputs (logits / critic scores) of any shape, e.g. PatchGAN maps
(B, 1, h, w); every patch counts as one sample in the means. Scaling (lambda, 0.5 factors) is the caller's.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GanKind = Literal["bce", "lsgan"]


def _check_kind(kind: str) -> None:
    if kind not in ("bce", "lsgan"):
        raise ValueError(f"unknown GAN loss kind {kind!r}; expected 'bce' or 'lsgan'")


def generator_adv_loss(fake_logits: Tensor, kind: GanKind = "bce") -> Tensor:
    """Generator's adversarial term: make D call the fakes real.

    "bce" is the non-saturating E[-log D(G(x))] (strong gradients when D wins early); "lsgan" is
    E[(D(G(x)) - 1)^2] (Mao et al., no 1/2 factor, as in pix2pix).
    """
    _check_kind(kind)
    target = torch.ones_like(fake_logits)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, target)
    return F.mse_loss(fake_logits, target)


def discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, kind: GanKind = "bce", real_label: float = 1.0
) -> Tensor:
    """-E[log D(y)] - E[log(1 - D(G(x)))] for "bce", E[(D(y) - r)^2] + E[D(G(x))^2] for "lsgan".

    ``real_label`` < 1 (e.g. 0.9) is one-sided label smoothing: only real targets are softened, so D is not
    rewarded for giving fakes some probability of being real. Pass detached fakes.
    """
    _check_kind(kind)
    real_target = torch.full_like(real_logits, real_label)
    fake_target = torch.zeros_like(fake_logits)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(
            real_logits, real_target
        ) + F.binary_cross_entropy_with_logits(fake_logits, fake_target)
    return F.mse_loss(real_logits, real_target) + F.mse_loss(fake_logits, fake_target)


def critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """WGAN critic loss E[f(fake)] - E[f(real)]: minimising it maximises the Wasserstein estimate."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_estimate(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """E[f(real)] - E[f(fake)], the critic's estimate of W1 (up to the Lipschitz constant); detached, for logging."""
    return (real_scores.mean() - fake_scores.mean()).detach()


def gradient_penalty(
    critic: Callable[..., Tensor], real: Tensor, fake: Tensor, condition: Tensor | None = None
) -> Tensor:
    """WGAN-GP penalty mean_i (||grad_x f(x_hat_i)||_2 - 1)^2 at random interpolates (Gulrajani et al.).

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample. f(x_hat_i) is the mean of the
    critic's output for sample i (the value ``critic_loss`` averages), and the norm runs over all non-batch
    dims. Runs in fp32 with autocast disabled: the double backward of a bf16/fp16 graph is too imprecise for a
    unit-norm target. ``create_graph=True`` so the penalty trains the critic; the result is a fp32 scalar
    (multiply by lambda = 10 yourself).

    Args:
        critic: called as ``critic(x_hat)`` or ``critic(x_hat, condition)``; returns (B, ...) scores.
        real: (B, ...) real samples, e.g. (B, T, n_mels).
        fake: (B, ...) generated samples (detached here: the penalty only trains the critic).
        condition: passed unchanged to the critic (real and fake share it, so it is not interpolated).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} shapes differ")
    with torch.autocast(device_type=real.device.type, enabled=False):
        real32, fake32 = real.detach().float(), fake.detach().float()
        eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)  # (B, 1, ..., 1)
        x_hat = (eps * real32 + (1 - eps) * fake32).requires_grad_(True)
        args = (x_hat,) if condition is None else (x_hat, condition.float())
        scores = critic(*args).float()
        f = scores.reshape(scores.shape[0], -1).mean(dim=1)  # (B,)
        (grad,) = torch.autograd.grad(f.sum(), x_hat, create_graph=True)  # (B, ...)
        grad_norm = grad.reshape(grad.shape[0], -1).norm(2, dim=1)  # (B,)
        return ((grad_norm - 1) ** 2).mean()


@torch.no_grad()
def clip_weights_(module: nn.Module, c: float = 0.01) -> None:
    """Original WGAN Lipschitz constraint: clamp every parameter of ``module`` to [-c, c] in place."""
    if c <= 0:
        raise ValueError(f"clip value must be positive, got {c}")
    for p in module.parameters():
        p.clamp_(-c, c)
