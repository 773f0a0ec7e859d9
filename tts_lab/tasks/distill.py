"""Attention distillation: a small Tacotron student learns its attention from a frozen Tacotron teacher.

The task is a wrapper that holds two untouched networks: the teacher (loaded from a ``TacotronTask`` checkpoint,
frozen) and the student (built from the config like a teacher, with its own sizes). Each training batch runs the
teacher teacher-forced on the same inputs and targets, so both produce alignments over the same decoder steps and
encoder steps, and adds ``distill_weight * KL(teacher || student)`` to the student's usual Tacotron losses
(:func:`~tts_lab.losses.attention.attention_distillation_kl`: summed over encoder steps, averaged over valid decoder
steps). ``distill_weight: 0`` is the no-distillation baseline (the teacher is then not run in training).
"""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor
from torchmetrics.text import CharErrorRate

from tts_lab.audio.features import FeatureConfig
from tts_lab.losses.attention import attention_distillation_kl
from tts_lab.metrics.attention import AttentionDiagonal, AttentionFocus
from tts_lab.metrics.means import StageMeans
from tts_lab.models.tacotron import Tacotron, TacotronOutput, lengths_to_mask, n_steps
from tts_lab.models.tacotron.builder import TacotronBuilder
from tts_lab.tasks import checkpoint
from tts_lab.tasks.guard import NonFiniteGuard, load_guards, save_guards
from tts_lab.tasks.loading import Frozen, FrozenASR, drop_frozen, load_asr, load_tacotron, restore_frozen
from tts_lab.tasks.tacotron import (INFERENCE_ARGS, LinearTarget, TacotronLosses, build_optimizers, log_attention_metrics,
                                    log_training_terms, predict, score_asr, stamp)
from tts_lab.tasks.tacotron_runs import media_items, media_runs, network_inputs, teacher_forced
from tts_lab.text import Tokenizer

TASK_NAME = "tacotron_student"
FROZEN = ("teacher.", "asr.")


class TeacherMismatch(ValueError):
    """Teacher and student cannot be compared step by step."""


def check_compatible(teacher: Tacotron, student: Tacotron, teacher_symbols: str | None = None,
                     student_symbols: str | None = None) -> None:
    """Attention distillation compares alignments entry by entry: both must read the same input (for text, with the
    same symbol ids), emit the same frames per step (same decoder steps) and reduce input time alike (same encoder
    steps)."""
    checks = [
        ("input type", teacher.input_type, student.input_type),
        ("reduction factor r", teacher.reduction_factor, student.reduction_factor),
        ("encoder time reduction", teacher.time_reduction, student.time_reduction),
    ]
    if teacher.input_type == student.input_type == "text":
        checks.append(("text symbols", teacher_symbols, student_symbols))
    problems = [f"{name}: teacher {t!r} vs student {s!r}" for name, t, s in checks if t != s]
    if problems:
        raise TeacherMismatch(
            "teacher and student alignments cannot be matched step by step; they differ in " + "; ".join(problems)
        )


def step_and_encoder_masks(out: TacotronOutput, mel_lengths: Tensor, r: int) -> tuple[Tensor, Tensor]:
    """(B, S) valid decoder steps and (B, N) valid encoder steps of teacher-forced alignments (B, S, N)."""
    _, steps, n_enc = out.alignments.shape
    return lengths_to_mask(n_steps(mel_lengths, r), steps), lengths_to_mask(out.memory_lengths, n_enc)


class DistillationTask(pl.LightningModule):
    """Args:
    network: the student's architecture (:class:`~tts_lab.models.tacotron.builder.TacotronBuilder`), sized
        independently of the teacher.
    teacher_checkpoint: a ``TacotronTask`` checkpoint (the teacher); loaded, frozen and checked for compatibility
        when fitting or validating starts. Not needed to predict with a trained student.
    distill_weight: weight of the attention KL; 0 trains the same student without distillation (baseline).
    losses: the student's Tacotron losses (:class:`~tts_lab.tasks.tacotron.TacotronLosses`).
    optimizer, scheduler, scheduler_interval, features, tokenizer, asr_checkpoint, asr_utterances,
    max_decoder_steps, stop_threshold, predict_mode, media_utterances, max_nonfinite: as in
        :class:`~tts_lab.tasks.tacotron.TacotronTask`.

    Logs the student's ``train/...`` and ``val/...`` terms like a teacher, ``train/distill_loss`` (when the
    weight is > 0) and ``val/distill_kl`` (always, when a teacher is loaded: how far the student's attention is from
    the teacher's).
    """

    def __init__(
        self,
        network: TacotronBuilder,
        teacher_checkpoint: str | None = None,
        distill_weight: float = 1.0,
        losses: TacotronLosses = TacotronLosses(),
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: str = "epoch",
        features: FeatureConfig = FeatureConfig(),
        tokenizer: Tokenizer | None = None,
        asr_checkpoint: str | None = None,
        asr_utterances: int = 8,
        max_decoder_steps: int = 1000,
        stop_threshold: float = 0.5,
        predict_mode: Literal["synthesize", "gta"] = "synthesize",
        media_utterances: int = 2,
        max_nonfinite: int = 5,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=INFERENCE_ARGS)
        if distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0, got {distill_weight}")
        self.features = features
        self.tokenizer = tokenizer or Tokenizer()
        self.network = network(self.tokenizer.vocab_size, features.n_mels, features.n_fft // 2 + 1)
        self.teacher_checkpoint, self.distill_weight = teacher_checkpoint, distill_weight
        self.losses = losses
        self.linear_target = LinearTarget(features) if self.network.linear_postnet is not None else None
        self.optimizer, self.scheduler, self.scheduler_interval = optimizer, scheduler, scheduler_interval
        self.asr_checkpoint, self.asr_utterances = asr_checkpoint, asr_utterances
        self.max_decoder_steps, self.stop_threshold = max_decoder_steps, stop_threshold
        self.predict_mode, self.media_utterances = predict_mode, media_utterances
        self.val_diagonal, self.val_focus = AttentionDiagonal(), AttentionFocus()
        self.val_asr_cer = CharErrorRate()
        self.teacher: Frozen | None = None
        self.asr: FrozenASR | None = None
        self.guard = NonFiniteGuard(max_nonfinite)
        self.val_losses = StageMeans()
        self._asr_scored = 0

    @property
    def r(self) -> int:
        return self.network.reduction_factor

    def load_teacher(self) -> None:
        """Load, freeze and check the teacher named by ``teacher_checkpoint`` (once)."""
        if self.teacher is not None or self.teacher_checkpoint is None:
            return
        teacher, meta = load_tacotron(self.teacher_checkpoint, self.features, what="teacher_checkpoint")
        check_compatible(teacher, self.network, meta.get("symbols"), self.tokenizer.symbols)
        self.teacher = Frozen(teacher).to(self.device)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            self.load_teacher()
            if stage == "fit" and self.distill_weight > 0 and self.teacher is None:
                raise ValueError("distill_weight > 0 needs model.teacher_checkpoint (or set distill_weight: 0)")
            if self.asr_checkpoint and self.asr is None:
                self.asr = load_asr(self.asr_checkpoint, self.features)

    # -- steps ------------------------------------------------------------------------------------------------
    def _terms(self, batch: dict) -> tuple[TacotronOutput, dict[str, Tensor]]:
        out = teacher_forced(self.network, batch)
        target = self.linear_target(batch["mel"]) if self.linear_target is not None else None
        return out, self.losses(out, batch, self.r, target)

    def teacher_alignments(self, batch: dict) -> Tensor:
        """The frozen teacher's teacher-forced attention on this batch, (B, S, N), without gradients."""
        inputs, lengths = network_inputs(self.teacher.module, batch)
        with torch.no_grad():
            return self.teacher(inputs, lengths, batch["mel"], batch["mel_lengths"]).alignments

    def distill_kl(self, out: TacotronOutput, batch: dict) -> Tensor:
        step_mask, enc_mask = step_and_encoder_masks(out, batch["mel_lengths"], self.r)
        return attention_distillation_kl(self.teacher_alignments(batch), out.alignments, step_mask, enc_mask)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        out, terms = self._terms(batch)
        if self.distill_weight > 0:
            terms["distill_loss"] = self.distill_kl(out, batch)
            terms["loss"] = terms["loss"] + self.distill_weight * terms["distill_loss"]
        return log_training_terms(self, terms, batch)

    def on_before_optimizer_step(self, optimizer) -> None:
        self.guard.on_before_optimizer_step(optimizer)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out, terms = self._terms(batch)
        n = len(batch["ids"])
        self.val_losses.update(terms, weight=n)
        if self.teacher is not None:
            self.val_losses.update({"distill_kl": self.distill_kl(out, batch)}, weight=n)
        log_attention_metrics(self, out, batch)
        score_asr(self, batch)

    def on_validation_epoch_start(self) -> None:
        self._asr_scored = 0

    def on_validation_epoch_end(self) -> None:
        self.val_losses.log(self, "val")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        return predict(self, batch)

    @torch.no_grad()
    def media(self, batch: dict) -> list[dict]:
        """As a teacher's media, plus the teacher's attention on the same utterances."""
        batch, out, inf = media_runs(self, batch)
        extra = {"attention_teacher": self.teacher_alignments(batch)} if self.teacher is not None else None
        return media_items(batch, out, inf, self.r, self.features, extra)

    # -- optimisation and checkpoints -------------------------------------------------------------------------
    def configure_optimizers(self):
        return build_optimizers(self, self.network.parameters())  # the student only

    def on_save_checkpoint(self, ckpt: dict) -> None:
        stamp(ckpt, TASK_NAME, self)
        ckpt[checkpoint.KEY]["teacher_checkpoint"] = self.teacher_checkpoint
        save_guards(ckpt, self.guard)
        drop_frozen(ckpt, FROZEN)  # the teacher's weights live in its own checkpoint

    def on_load_checkpoint(self, ckpt: dict) -> None:
        checkpoint.check(ckpt, TASK_NAME, self.features, symbols=self.tokenizer.symbols)
        load_guards(ckpt, self.guard)
        restore_frozen(ckpt, self, FROZEN)
