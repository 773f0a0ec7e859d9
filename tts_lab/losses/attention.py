"""Attention distillation: the student's alignment is pulled towards a frozen teacher's."""

import torch
from torch import Tensor


def attention_distillation_kl(
    teacher: Tensor, student: Tensor, step_mask: Tensor, enc_mask: Tensor, eps: float = 1e-8
) -> Tensor:
    """``KL(p_teacher || p_student)`` summed over encoder steps, averaged over valid decoder steps of the batch.

    Up to the (constant) teacher entropy this is the cross-entropy ``-sum_n p_t log p_s``. The teacher is detached;
    everything is computed in fp32 with probabilities clamped to ``eps`` inside the logs, so zero weights (padding,
    a sharp teacher) cannot produce inf/NaN. Terms with ``p_t = 0`` contribute exactly 0.

    Args:
        teacher: (B, S, N) teacher alignments (rows sum to 1 over valid encoder steps).
        student: (B, S, N) student alignments; same decoder steps S and encoder resolution N as the teacher
            (same reduction factor and encoder time reduction).
        step_mask: (B, S) bool, valid decoder steps.
        enc_mask: (B, N) bool, valid encoder steps.

    Returns:
        scalar, >= 0 (up to eps), 0 for identical alignments.
    """
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher alignments {tuple(teacher.shape)} and student alignments {tuple(student.shape)} differ: "
            "teacher and student need the same reduction factor and encoder time reduction"
        )
    p_t = teacher.detach().float()
    p_s = student.float()
    kl = p_t * (torch.log(p_t.clamp_min(eps)) - torch.log(p_s.clamp_min(eps)))  # (B, S, N)
    mask = step_mask.unsqueeze(-1) & enc_mask.unsqueeze(1)  # (B, S, N)
    per_step = kl.masked_fill(~mask, 0.0).sum(-1)  # (B, S)
    return per_step.sum() / step_mask.sum().clamp_min(1)
