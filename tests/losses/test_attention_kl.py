"""Attention distillation KL: zero for identical alignments, positive otherwise, teacher frozen, fp-safe."""

import pytest
import torch

from tts_lab.losses.attention import attention_distillation_kl
from tts_lab.models.tacotron import lengths_to_mask, masked_softmax


def alignments(batch: int, steps: int, n_enc: int, enc_lengths: torch.Tensor, scale: float = 3.0) -> torch.Tensor:
    mask = lengths_to_mask(enc_lengths, n_enc).unsqueeze(1).expand(batch, steps, n_enc)
    return masked_softmax(torch.randn(batch, steps, n_enc) * scale, mask)


def masks(step_lengths, enc_lengths, steps: int, n_enc: int):
    return lengths_to_mask(torch.tensor(step_lengths), steps), lengths_to_mask(torch.tensor(enc_lengths), n_enc)


def test_zero_for_identical_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    step_mask, enc_mask = masks([5, 3], [6, 4], 5, 6)
    teacher = alignments(2, 5, 6, torch.tensor([6, 4]))
    student = alignments(2, 5, 6, torch.tensor([6, 4]))
    assert attention_distillation_kl(teacher, teacher.clone(), step_mask, enc_mask) == 0
    assert attention_distillation_kl(teacher, student, step_mask, enc_mask) > 0


def test_matches_reference_value_and_ignores_padded_steps() -> None:
    torch.manual_seed(0)
    step_mask, enc_mask = masks([4, 2], [5, 3], 4, 5)
    teacher = alignments(2, 4, 5, torch.tensor([5, 3]))
    student = alignments(2, 4, 5, torch.tensor([5, 3]))
    expected, count = 0.0, 0
    for b, (n_steps, n_enc) in enumerate([(4, 5), (2, 3)]):
        p, q = teacher[b, :n_steps, :n_enc], student[b, :n_steps, :n_enc]
        expected += (p * (p.log() - q.log())).sum().item()
        count += n_steps
    loss = attention_distillation_kl(teacher, student, step_mask, enc_mask)
    assert loss.item() == pytest.approx(expected / count, rel=1e-5)
    student_garbage = student.clone()
    student_garbage[1, 2:] = 0.0  # padded decoder steps
    assert attention_distillation_kl(teacher, student_garbage, step_mask, enc_mask) == loss


def test_teacher_gets_no_gradient() -> None:
    torch.manual_seed(0)
    step_mask, enc_mask = masks([3], [4], 3, 4)
    teacher_logits = torch.randn(1, 3, 4, requires_grad=True)
    student_logits = torch.randn(1, 3, 4, requires_grad=True)
    loss = attention_distillation_kl(teacher_logits.softmax(-1), student_logits.softmax(-1), step_mask, enc_mask)
    loss.backward()
    assert teacher_logits.grad is None
    assert student_logits.grad is not None and student_logits.grad.abs().sum() > 0


def test_numerically_safe_with_zeros_and_bf16() -> None:
    step_mask, enc_mask = masks([2], [3], 2, 3)
    teacher = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])  # one-hot (sharp teacher)
    student = torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]], requires_grad=True)  # zero where teacher is 1
    loss = attention_distillation_kl(teacher, student, step_mask, enc_mask)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and torch.isfinite(student.grad).all()
    loss_bf16 = attention_distillation_kl(teacher.bfloat16(), student.detach().bfloat16(), step_mask, enc_mask)
    assert loss_bf16.dtype == torch.float32 and torch.isfinite(loss_bf16)


def test_shape_mismatch_is_reported() -> None:
    step_mask, enc_mask = masks([2], [3], 2, 3)
    with pytest.raises(ValueError, match="reduction factor"):
        attention_distillation_kl(torch.rand(1, 2, 3), torch.rand(1, 2, 6), step_mask, enc_mask)
