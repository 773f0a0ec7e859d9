"""Masked mel loss, stop-token loss and guided attention loss."""

import pytest
import torch

from tts_lab.losses.tacotron import guided_attention_loss, masked_mel_loss, stop_loss, stop_targets


@pytest.mark.parametrize("kind,expected", [("l1", 2.0), ("mse", 4.0)])
def test_masked_mel_loss_ignores_padding(kind: str, expected: float) -> None:
    target = torch.zeros(2, 5, 3)
    pred = torch.full((2, 6, 3), 2.0)  # one frame longer (padded to a multiple of r)
    lengths = torch.tensor([5, 2])
    pred[1, 2:] = 1e6  # garbage beyond the valid frames
    assert torch.allclose(masked_mel_loss(pred, target, lengths, kind), torch.tensor(expected))


def test_masked_mel_loss_low_precision_and_kind_check() -> None:
    pred = torch.randn(2, 4, 3, dtype=torch.bfloat16)
    loss = masked_mel_loss(pred, torch.zeros(2, 4, 3), torch.tensor([4, 1]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    with pytest.raises(ValueError):
        masked_mel_loss(pred, pred, torch.tensor([4, 1]), "huber")  # type: ignore[arg-type]


def test_stop_targets_one_at_and_after_last_step() -> None:
    # r = 2: 5 frames -> 3 steps (last valid step 2); 4 frames -> 2 steps (last 1); 8 frames -> 4 steps (last 3)
    targets = stop_targets(torch.tensor([5, 4, 8]), 5, r=2)
    expected = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 1, 1]]).float()
    assert torch.equal(targets, expected)


def test_stop_loss_weighting() -> None:
    lengths = torch.tensor([5, 4])
    targets = stop_targets(lengths, 4, r=2)
    good = stop_loss((targets * 2 - 1) * 20, lengths, r=2)
    bad = stop_loss((1 - targets * 2) * 20, lengths, r=2)
    assert good < 1e-6 < bad
    wrong_positive = torch.full((2, 4), -5.0)  # predicts "continue" everywhere
    assert stop_loss(wrong_positive, lengths, 2, pos_weight=5.0) > stop_loss(wrong_positive, lengths, 2, pos_weight=1.0)


def test_guided_attention_loss() -> None:
    steps, n_enc = 8, 8
    diagonal = torch.eye(steps, n_enc).unsqueeze(0)  # (1, S, N)
    anti = diagonal.flip(-1)
    lengths, out_steps = torch.tensor([n_enc]), torch.tensor([steps])
    assert guided_attention_loss(diagonal, lengths, out_steps) < 1e-6
    assert guided_attention_loss(anti, lengths, out_steps) > 0.3


def test_guided_attention_loss_uses_each_items_lengths() -> None:
    # item 1 has 4 encoder and 4 decoder steps: its own diagonal, padding filled with garbage
    alignments = torch.zeros(2, 8, 8)
    alignments[0] = torch.eye(8)
    alignments[1, :4, :4] = torch.eye(4)
    alignments[1, 4:] = 1.0
    alignments[1, :, 4:] = 1.0
    loss = guided_attention_loss(alignments, torch.tensor([8, 4]), torch.tensor([8, 4]))
    assert loss < 1e-6
