"""pix2pix-style U-Net generator over mel spectrograms treated as 1-channel images.

Mels are time-major ``(B, T, n_mels)``; the network sees them as images ``(B, 1, T, n_mels)``. It is fully
convolutional, so it trains on crops and runs on whole utterances of any length (see ``UNet.forward``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NormKind = Literal["batch", "instance", "layer", "none"]


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """A 2-D normalisation layer; "layer" normalises each sample over (C, H, W), as used by WGAN-GP critics."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        # track_running_stats=False: the same per-sample statistics at train and test time (pix2pix).
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def init_gan_weights_(module: nn.Module, std: float = 0.02) -> None:
    """DCGAN/pix2pix init in place: conv weights ~ N(0, std), norm scales ~ N(1, std), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class UNet(nn.Module):
    """pix2pix U-Net: ``depth`` stride-2 4x4 convs down, mirrored transposed convs up, skip connections.

    Channels double per level from ``base_channels`` and are capped at 8x (as in pix2pix). The innermost and
    outermost encoder convs have no norm: the bottleneck can be 1 pixel wide on short inputs, where instance
    norm is undefined.

    Output choice: **unbounded** (no tanh). Inputs are normalised to about [-1, 1] but not hard-bounded; a tanh
    would saturate on the tails and, with ``residual=True``, fight the identity path. With ``residual=True``
    the network predicts a correction added to its input, so an untrained generator is close to the identity
    (the blurry input is already a good guess), which stabilises early GAN training.

    Args:
        in_channels: image channels in (1 for a mel spectrogram).
        out_channels: image channels out; must equal ``in_channels`` when ``residual``.
        base_channels: channels of the first level.
        depth: number of down/up levels; inputs are padded to a multiple of ``2**depth``.
        norm: normalisation of the inner layers ("instance" is the pix2pix choice for batch size 1).
        dropout: dropout probability in the inner decoder layers (pix2pix uses 0.5 as its noise source).
        residual: add the input to the output.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 32,
        depth: int = 4,
        norm: Literal["batch", "instance", "none"] = "instance",
        dropout: float = 0.0,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if residual and in_channels != out_channels:
            raise ValueError(f"residual needs in_channels == out_channels, got {in_channels} != {out_channels}")
        self.depth = depth
        self.residual = residual
        ch = [base_channels * 2 ** min(i, 3) for i in range(depth)]  # channels after encoder level i
        bias = norm == "none"  # a norm's shift makes the conv bias redundant

        self.down = nn.ModuleList()
        for i in range(depth):
            c_in = in_channels if i == 0 else ch[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            inner_norm = 0 < i < depth - 1
            layers.append(nn.Conv2d(c_in, ch[i], 4, stride=2, padding=1, bias=bias or not inner_norm))
            if inner_norm:
                layers.append(make_norm(norm, ch[i]))
            self.down.append(nn.Sequential(*layers))

        # up[i] undoes down[i]; all but the innermost take [decoder features, skip] concatenated.
        self.up = nn.ModuleList()
        for i in range(depth):
            c_in = ch[i] if i == depth - 1 else 2 * ch[i]
            c_out = out_channels if i == 0 else ch[i - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=bias or i == 0)]
            if i > 0:
                layers.append(make_norm(norm, c_out))
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        init_gan_weights_(self)

    def forward(self, x: Tensor) -> Tensor:
        """Polish a mel spectrogram of any size.

        Args:
            x: (B, T, n_mels) mel, or (B, C, T, n_mels) image with C = ``in_channels``.

        Returns:
            Same layout as ``x``: (B, T, n_mels), or (B, out_channels, T, n_mels) for a 4-D input.
        """
        squeeze = x.dim() == 3
        img = x.unsqueeze(1) if squeeze else x  # (B, C, T, n_mels)
        t, f = img.shape[-2:]
        m = 2**self.depth
        pad_t, pad_f = -t % m, -f % m
        # Replicate (not reflect) padding: reflect needs pad < size and fails on very short inputs.
        h = F.pad(img, (0, pad_f, 0, pad_t), mode="replicate") if pad_t or pad_f else img  # (B, C, T', F')

        skips = []
        for down in self.down:
            h = down(h)
            skips.append(h)  # level i: (B, ch[i], T'/2^(i+1), F'/2^(i+1))
        h = self.up[-1](skips[-1])
        for i in range(self.depth - 2, -1, -1):
            h = self.up[i](torch.cat([h, skips[i]], dim=1))
        out = h[..., :t, :f]  # (B, out_channels, T, n_mels): crop the padding back off
        if self.residual:
            out = out + img
        return out.squeeze(1) if squeeze else out
