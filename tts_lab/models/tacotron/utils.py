"""Masks and frame-reshaping helpers shared by the Tacotron modules.

The decoder emits ``r`` frames per step. Frame ``t * r + k`` of an utterance is the ``k``-th frame of step ``t``;
every reshape here views the frame axis as ``(steps, r)`` in that order. Reshaping along the wrong axis gives tensors
of the right shape whose frames are silently interleaved, so the tests check the order with numbered frames.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Boolean mask of valid positions.

    Args:
        lengths: (B,) number of valid positions per item.
        max_len: width of the mask; defaults to ``lengths.max()``.

    Returns:
        (B, max_len) bool, True where ``position < length``.
    """
    if max_len is None:
        max_len = int(lengths.max().item()) if lengths.numel() else 0
    positions = torch.arange(max_len, device=lengths.device)  # (max_len,)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)  # (B, max_len)


def n_steps(n_frames: Tensor | int, r: int) -> Tensor | int:
    """Decoder steps needed to emit ``n_frames`` frames at ``r`` frames per step (ceil division)."""
    return -(-n_frames // r)


def pad_to_multiple(mels: Tensor, r: int, value: float = 0.0) -> Tensor:
    """Pad the time axis of ``mels`` (B, T, n_mels) with ``value`` up to ``T_pad = ceil(T / r) * r``.

    The padded frames are never fed back to the decoder (only the last frame of a group is, and the last group's
    frame is never consumed), so ``value`` only matters for losses; they are masked by length anyway.
    """
    extra = n_steps(mels.size(1), r) * r - mels.size(1)
    if extra == 0:
        return mels
    return F.pad(mels, (0, 0, 0, extra), value=value)  # (B, T_pad, n_mels)


def group_frames(mels: Tensor, r: int) -> Tensor:
    """Group ``r`` consecutive frames per decoder step.

    Args:
        mels: (B, T, n_mels) with ``T`` divisible by ``r`` (see :func:`pad_to_multiple`).

    Returns:
        (B, T / r, r * n_mels); row ``t`` is frames ``t*r .. t*r + r - 1`` concatenated in time order.
    """
    batch, time, n_mels = mels.shape
    if time % r != 0:
        raise ValueError(f"group_frames: T={time} is not divisible by r={r}; pad with pad_to_multiple first")
    return mels.reshape(batch, time // r, r, n_mels).reshape(batch, time // r, r * n_mels)


def ungroup_frames(x: Tensor, r: int) -> Tensor:
    """Inverse of :func:`group_frames`: (B, S, r * n_mels) -> (B, S * r, n_mels)."""
    batch, steps, width = x.shape
    if width % r != 0:
        raise ValueError(f"ungroup_frames: last dim {width} is not divisible by r={r}")
    return x.reshape(batch, steps, r, width // r).reshape(batch, steps * r, width // r)


def decoder_inputs(mels: Tensor, r: int) -> Tensor:
    """Teacher-forcing inputs: a zero go-frame, then the LAST frame of each group except the final one.

    Args:
        mels: (B, T, n_mels) with ``T`` divisible by ``r``.

    Returns:
        (B, T / r, n_mels); input of step ``t > 0`` is frame ``t * r - 1``, the frame step ``t - 1`` ended on.
    """
    batch, time, n_mels = mels.shape
    if time % r != 0:
        raise ValueError(f"decoder_inputs: T={time} is not divisible by r={r}; pad with pad_to_multiple first")
    last = mels.reshape(batch, time // r, r, n_mels)[:, :, -1]  # (B, S, n_mels)
    go = mels.new_zeros(batch, 1, n_mels)  # (B, 1, n_mels)
    return torch.cat([go, last[:, :-1]], dim=1)  # (B, S, n_mels)


def masked_softmax(energies: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis restricted to valid positions; safe under fp16/bf16 autocast.

    Computed in fp32 with ``finfo.min`` fill (no ``-inf``, so an all-padded row cannot produce NaN); padded positions
    are then set to exactly 0. Rows with no valid position are all zeros.

    Args:
        energies: (B, N) scores, any float dtype.
        mask: (B, N) bool, True = valid.

    Returns:
        (B, N) fp32 weights, summing to 1 over valid positions.
    """
    energies = energies.float().masked_fill(~mask, torch.finfo(torch.float32).min)
    weights = torch.softmax(energies, dim=-1)
    return weights.masked_fill(~mask, 0.0)
