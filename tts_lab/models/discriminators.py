"""PatchGAN discriminator and WGAN critic over mel spectrograms treated as images (B, C, T, n_mels).

Both return an unnormalised score map (B, 1, h, w), one score per overlapping receptive-field patch (70x70
pixels for ``n_layers=3``). There is never a sigmoid: the GAN losses take logits (numerically stable BCE) and
a WGAN critic must be unbounded.

Output size per spatial dim for an input of size S: ``S // 2**n_layers - 2`` (after ``n_layers`` stride-2
convs, two stride-1 4x4 convs each remove one pixel), so the input must be at least ``3 * 2**n_layers`` pixels
(24 for ``n_layers=3``) in both T and n_mels.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from tts_lab.models.unet import init_gan_weights_, make_norm


class PatchDiscriminator(nn.Module):
    """pix2pix PatchGAN discriminator.

    Conditional by default: the input is ``cat([condition, candidate], dim=1)`` (condition first), so with
    1-channel mels ``in_channels=2``; set ``in_channels=1`` for an unconditional discriminator.

    Args:
        in_channels: channels of the (concatenated) input image.
        base_channels: channels of the first conv; doubles per layer, capped at 8x.
        n_layers: number of stride-2 convs (3 gives the 70x70 PatchGAN); sets the output size (module docstring).
        norm: normalisation of the inner layers (none on the first and last, as in pix2pix).
    """

    def __init__(
        self,
        in_channels: int = 2,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: Literal["batch", "instance", "layer", "none"] = "batch",
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.in_channels = in_channels
        bias = norm == "none"  # a norm's shift makes the conv bias redundant
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base_channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        c_prev = base_channels
        for n in range(1, n_layers + 1):
            c = base_channels * min(2**n, 8)
            stride = 2 if n < n_layers else 1  # the last inner layer keeps resolution (70x70 receptive field)
            layers += [nn.Conv2d(c_prev, c, 4, stride, 1, bias=bias), make_norm(norm, c), nn.LeakyReLU(0.2)]
            c_prev = c
        layers.append(nn.Conv2d(c_prev, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_gan_weights_(self)

    @property
    def conditional(self) -> bool:
        return self.in_channels > 1

    def forward(self, candidate: Tensor, condition: Tensor | None = None) -> Tensor:
        """Score a candidate (real or generated) mel, optionally given the condition it was made from.

        Args:
            candidate: (B, T, n_mels) mel or (B, C, T, n_mels) image.
            condition: same layout as ``candidate`` (e.g. the blurry input); required iff conditional.

        Returns:
            (B, 1, h, w) logits / critic scores, one per patch.
        """
        x = candidate.unsqueeze(1) if candidate.dim() == 3 else candidate  # (B, C, T, n_mels)
        if condition is not None:
            cond = condition.unsqueeze(1) if condition.dim() == 3 else condition
            x = torch.cat([cond, x], dim=1)  # (B, C_cond + C, T, n_mels)
        if x.shape[1] != self.in_channels:
            hint = " (a conditional discriminator needs `condition`)" if condition is None else ""
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]}{hint}")
        return self.net(x)


class Critic(PatchDiscriminator):
    """WGAN critic: the PatchGAN trunk, scores unbounded; f(x) is the mean of the score map.

    No batch norm: WGAN-GP penalises the gradient of f w.r.t. each *sample*; batch norm makes one sample's score
    depend on the rest of the batch, so the per-sample gradient norm is no longer the quantity being
    constrained (Gulrajani et al. recommend layer norm or none). Weight clipping tolerates any norm, but one
    default keeps the two variants interchangeable.

    Args:
        in_channels: 2 for a conditional critic (condition + candidate), 1 for unconditional.
        base_channels: channels of the first conv.
        n_layers: depth of the PatchGAN trunk.
        norm: "none" (default), "layer" (per-sample over C, H, W) or "instance".
    """

    def __init__(
        self,
        in_channels: int = 2,
        base_channels: int = 64,
        n_layers: int = 3,
        norm: Literal["instance", "layer", "none"] = "none",
    ) -> None:
        if norm == "batch":  # jsonargparse enforces the Literal; this guards direct construction
            raise ValueError("Critic must not use batch norm (breaks the per-sample gradient penalty)")
        super().__init__(in_channels, base_channels, n_layers, norm)
