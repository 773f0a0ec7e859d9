"""Attention metrics: diagonal share and focus."""

import pytest
import torch

from tts_lab.metrics.attention import AttentionDiagonal, AttentionFocus


def diagonal_alignment(steps: int, n_enc: int) -> torch.Tensor:
    """(S, N) one-hot alignment on the diagonal n = floor(t * N / S)."""
    a = torch.zeros(steps, n_enc)
    a[torch.arange(steps), torch.arange(steps) * n_enc // steps] = 1.0
    return a


def test_perfect_diagonal_scores_one_with_per_item_lengths() -> None:
    alignments = torch.full((2, 12, 10), 0.5)  # padding filled with garbage
    alignments[0] = diagonal_alignment(12, 10)
    alignments[1, :6, :8] = diagonal_alignment(6, 8)  # shorter item: its own diagonal
    metric = AttentionDiagonal(band=0.2)
    metric.update(alignments, torch.tensor([12, 6]), torch.tensor([10, 8]))
    assert metric.compute().item() == pytest.approx(1.0)


def test_uniform_attention_gives_band_area() -> None:
    steps = n_enc = 40
    band = 0.2
    metric = AttentionDiagonal(band=band)
    metric.update(torch.full((1, steps, n_enc), 1.0 / n_enc), torch.tensor([steps]), torch.tensor([n_enc]))
    inside = sum(abs(t / steps - n / n_enc) <= band + 1e-9 for t in range(steps) for n in range(n_enc))
    value = metric.compute().item()
    assert value == pytest.approx(inside / (steps * n_enc), abs=1e-5)
    assert value == pytest.approx(2 * band - band**2, abs=0.03)  # continuous limit: 0.36


def test_anti_diagonal_scores_low_and_states_accumulate() -> None:
    metric = AttentionDiagonal(band=0.1)
    anti = diagonal_alignment(10, 10).flip(-1).unsqueeze(0)
    metric.update(anti, torch.tensor([10]), torch.tensor([10]))
    assert metric.compute().item() == pytest.approx(0.2)  # only the 2 central steps cross the band
    metric.update(diagonal_alignment(10, 10).unsqueeze(0), torch.tensor([10]), torch.tensor([10]))
    assert 0.4 < metric.compute().item() < 0.7  # mass-weighted over both updates
    metric.reset()
    metric.update(diagonal_alignment(10, 10).unsqueeze(0), torch.tensor([10]), torch.tensor([10]))
    assert metric.compute().item() == pytest.approx(1.0)


def test_focus() -> None:
    metric = AttentionFocus()
    one_hot = torch.zeros(2, 5, 4)
    one_hot[0] = diagonal_alignment(5, 4)
    one_hot[1, :3, :2] = diagonal_alignment(3, 2)
    metric.update(one_hot, torch.tensor([5, 3]), torch.tensor([4, 2]))
    assert metric.compute().item() == pytest.approx(1.0)
    metric.reset()
    metric.update(torch.full((1, 3, 4), 0.25), torch.tensor([3]), torch.tensor([4]))
    assert metric.compute().item() == pytest.approx(0.25)


def test_states_are_summed_across_processes() -> None:
    for metric in (AttentionDiagonal(), AttentionFocus()):
        assert all(fx is not None and fx.__name__ in ("dim_zero_sum", "sum") for fx in metric._reductions.values())
