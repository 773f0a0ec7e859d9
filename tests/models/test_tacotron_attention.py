"""Attention mechanisms: proper distributions over valid steps, autocast safety, GMM monotonicity."""

import pytest
import torch

from tts_lab.models.tacotron import ContentAttention, GMMAttention, LocationSensitiveAttention, lengths_to_mask



QUERY, MEMORY = 12, 10
MECHANISMS = {
    "location": lambda: LocationSensitiveAttention(QUERY, MEMORY, attention_dim=8, n_filters=4, kernel_size=5),
    "content": lambda: ContentAttention(QUERY, MEMORY, attention_dim=8),
    "gmm": lambda: GMMAttention(QUERY, MEMORY, n_mixtures=3, hidden_dim=8),
}


def run_steps(attention, memory, lengths, n_steps: int = 4):
    """Run ``n_steps`` steps with random queries; returns the weights of every step (S, B, T_enc) and final state."""
    mask = lengths_to_mask(lengths, memory.size(1))
    processed = attention.process_memory(memory)
    state = attention.init_state(memory, mask)
    all_weights, contexts = [], []
    for _ in range(n_steps):
        context, weights, state = attention(torch.randn(memory.size(0), QUERY), memory, processed, mask, state)
        all_weights.append(weights)
        contexts.append(context)
    return torch.stack(all_weights), torch.stack(contexts), mask, state


@pytest.mark.parametrize("name", MECHANISMS)
def test_rows_sum_to_one_and_zero_on_padding(name: str) -> None:
    torch.manual_seed(0)
    lengths = torch.tensor([7, 3, 5])
    memory = torch.randn(3, 7, MEMORY)
    weights, contexts, mask, _ = run_steps(MECHANISMS[name](), memory, lengths)
    assert weights.shape == (4, 3, 7) and contexts.shape == (4, 3, MEMORY)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 3), atol=1e-5)
    assert torch.all(weights[:, ~mask] == 0)


@pytest.mark.parametrize("name", MECHANISMS)
def test_context_ignores_padded_memory(name: str) -> None:
    torch.manual_seed(0)
    attention = MECHANISMS[name]()
    memory = torch.randn(2, 6, MEMORY)
    lengths = torch.tensor([6, 4])
    torch.manual_seed(1)
    _, contexts, _, _ = run_steps(attention, memory, lengths)
    memory[1, 4:] = 1e4  # garbage in padding must not reach the context
    torch.manual_seed(1)
    _, contexts_garbage, _, _ = run_steps(attention, memory, lengths)
    assert torch.allclose(contexts, contexts_garbage)


@pytest.mark.parametrize("name", MECHANISMS)
def test_bf16_autocast_no_nan_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    attention = MECHANISMS[name]()
    memory = (torch.randn(3, 9, MEMORY) * 100).requires_grad_()
    lengths = torch.tensor([9, 2, 5])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        weights, contexts, mask, _ = run_steps(attention, memory, lengths)
        loss = contexts.float().pow(2).mean() + weights.sum()
    loss.backward()
    assert torch.isfinite(weights).all() and torch.all(weights[:, ~mask] == 0)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 3), atol=1e-3)
    assert torch.isfinite(memory.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in attention.parameters() if p.grad is not None)


def test_gmm_means_move_forward() -> None:
    torch.manual_seed(0)
    attention = GMMAttention(QUERY, MEMORY, n_mixtures=3, hidden_dim=8)
    memory = torch.randn(2, 30, MEMORY)
    mask = lengths_to_mask(torch.tensor([30, 20]), 30)
    state = attention.init_state(memory, mask)
    means, peaks = [state["mu"]], []
    for _ in range(8):
        _, weights, state = attention(torch.randn(2, QUERY), memory, memory, mask, state)
        means.append(state["mu"])
        peaks.append(weights.argmax(-1))
    means = torch.stack(means)  # (S + 1, B, K)
    assert torch.all(means[1:] > means[:-1])  # strictly forward (softplus increments)
    # the initial pace is about one encoder step per decoder step, so the peak travels forward
    assert torch.all(peaks[-1] > peaks[0])


def test_gmm_mean_past_the_end_is_still_a_distribution() -> None:
    attention = GMMAttention(QUERY, MEMORY, n_mixtures=2, hidden_dim=8)
    memory = torch.randn(1, 10, MEMORY)
    mask = lengths_to_mask(torch.tensor([4]), 10)
    state = attention.init_state(memory, mask)
    state["mu"] = torch.full((1, 2), 500.0)  # far beyond the 4 valid steps: densities underflow
    _, weights, _ = attention(torch.randn(1, QUERY), memory, memory, mask, state)
    assert torch.isfinite(weights).all() and torch.allclose(weights.sum(), torch.tensor(1.0))
    assert weights[0].argmax() == 3 and torch.all(weights[0, 4:] == 0)


def test_location_kernel_must_be_odd() -> None:
    with pytest.raises(ValueError):
        LocationSensitiveAttention(QUERY, MEMORY, kernel_size=4)
