"""Frame reshaping at r > 1 (order, not only shape), masks, and the autocast-safe masked softmax."""

import pytest
import torch

from tts_lab.models.tacotron import (
    decoder_inputs,
    group_frames,
    lengths_to_mask,
    masked_softmax,
    pad_to_multiple,
    ungroup_frames,
)



def numbered_frames(batch: int, time: int, n_mels: int) -> torch.Tensor:
    """(B, T, n_mels) where every value of frame t of item b is 1000 * b + t."""
    frames = torch.arange(time).float().view(1, -1, 1) + 1000 * torch.arange(batch).float().view(-1, 1, 1)
    return frames.expand(batch, time, n_mels).clone()


@pytest.mark.parametrize("r", [1, 2, 3])
def test_group_frames_order(r: int) -> None:
    mels = numbered_frames(2, 4 * r, 3)
    grouped = group_frames(mels, r)  # (B, S, r * n_mels)
    assert grouped.shape == (2, 4, r * 3)
    for t in range(4):
        for k in range(r):
            # k-th frame of step t occupies channels [k * n_mels, (k + 1) * n_mels) and is frame t * r + k
            assert torch.all(grouped[1, t, k * 3 : (k + 1) * 3] == 1000 + t * r + k)


@pytest.mark.parametrize("r", [1, 2, 3])
def test_ungroup_frames_order_and_roundtrip(r: int) -> None:
    steps, n_mels = 5, 4
    # build step outputs by hand: step t, slot k holds value t * r + k
    x = torch.zeros(1, steps, r * n_mels)
    for t in range(steps):
        for k in range(r):
            x[0, t, k * n_mels : (k + 1) * n_mels] = t * r + k
    mels = ungroup_frames(x, r)
    assert mels.shape == (1, steps * r, n_mels)
    assert torch.equal(mels[0, :, 0], torch.arange(steps * r).float())
    assert torch.equal(group_frames(mels, r), x)


def test_decoder_inputs_takes_last_frame_of_each_group() -> None:
    mels = numbered_frames(2, 9, 2)  # T = 9, r = 3: groups (0,1,2) (3,4,5) (6,7,8)
    inputs = decoder_inputs(mels, 3)
    assert inputs.shape == (2, 3, 2)
    assert torch.all(inputs[:, 0] == 0)  # go frame
    assert torch.equal(inputs[0, 1:, 0], torch.tensor([2.0, 5.0]))
    assert torch.equal(inputs[1, 1:, 0], torch.tensor([1002.0, 1005.0]))


def test_pad_to_multiple_and_errors() -> None:
    mels = numbered_frames(1, 7, 2)
    padded = pad_to_multiple(mels, 3, value=-5.0)
    assert padded.shape == (1, 9, 2)
    assert torch.equal(padded[:, :7], mels) and torch.all(padded[:, 7:] == -5.0)
    assert pad_to_multiple(mels, 7) is mels
    with pytest.raises(ValueError):
        group_frames(mels, 3)
    with pytest.raises(ValueError):
        decoder_inputs(mels, 2)


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask(torch.tensor([3, 1, 0]), 4)
    expected = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    assert lengths_to_mask(torch.tensor([2, 5])).shape == (2, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_masked_softmax_low_precision(dtype: torch.dtype) -> None:
    energies = (torch.randn(3, 6) * 1e4).to(dtype)
    mask = lengths_to_mask(torch.tensor([6, 2, 0]), 6)
    weights = masked_softmax(energies, mask)
    assert weights.dtype == torch.float32 and torch.isfinite(weights).all()
    assert torch.allclose(weights[:2].sum(-1), torch.ones(2))
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights[2] == 0)  # no valid step: zeros, not NaN
