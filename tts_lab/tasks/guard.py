"""Non-finite losses: skip the optimisation step on every rank, count it, and stop a run that keeps diverging.

One bad batch (a clipped file, an empty transcript the filters missed, an fp16 overflow) should not wreck the weights
of a long run; a run whose losses stay NaN should stop at once and say which utterances it was training on.

:class:`NonFiniteGuard` is a small helper a task holds and calls; it needs no callback and no config:

- ``check(loss, batch, module)`` in ``training_step`` (before any backward): ``True`` when the loss is finite on every
  rank. The decision is reduced across ranks (``trainer.strategy.reduce_boolean_decision``), so all DDP processes
  agree and none waits in a collective the others skipped. A non-finite loss is counted, logged as
  ``train/skipped_nonfinite`` (the running total, logged every step) and warned about with the batch's utterance
  ids; after ``max_consecutive`` non-finite losses in a row it raises :class:`NonFiniteLossError` naming them.
- Automatic optimisation: Lightning refuses a ``training_step`` that returns ``None`` under DDP, so the step still
  returns the (non-finite) loss; backward and the gradient all-reduce run as usual, and ``on_before_optimizer_step``
  drops every gradient so that the optimiser leaves the weights and its own state (moments, step counts) untouched::

      self.guard = NonFiniteGuard()                                  # __init__

      loss = ...                                                     # training_step
      self.guard.check(loss, batch, self)
      return loss

      def on_before_optimizer_step(self, optimizer):                 # the task's hook
          self.guard.on_before_optimizer_step(optimizer)

  With 16-mixed precision the gradient scaler sees the non-finite gradients first and skips the step as well (and
  lowers its scale). With gradient accumulation, a non-finite micro-batch drops the whole accumulated update.
  Lightning still counts the step (``global_step``, step-wise schedulers advance); only the update is skipped.
  What the forward pass itself changed is not undone: if non-finite values reached the model's buffers (BatchNorm
  running statistics, e.g. from a NaN input), the run stops at once with the same kind of error.
- Manual optimisation (e.g. a GAN): skip the backward and the step yourself, on every rank alike::

      if not self.guard.check(loss, batch, self):
          return  # before manual_backward / opt.step()

  Use one guard per loss that has its own optimiser step (``name`` tells their counters apart).
- Checkpoints: ``save_guards(ckpt, *guards)`` in the task's ``on_save_checkpoint`` and ``load_guards(ckpt, *guards)``
  in its ``on_load_checkpoint``, so a resumed run's ``train/skipped_nonfinite`` (and its count of bad steps in a row)
  continues instead of restarting at 0.
"""

from __future__ import annotations

import logging
from collections import deque

import pytorch_lightning as pl
import torch
from torch import Tensor

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training stopped: too many non-finite losses in a row, or non-finite values in the model's buffers. The
    message names the utterances."""


class NonFiniteGuard:
    """Args:
    max_consecutive: stop after this many non-finite losses in a row (a finite loss resets the count).
    name: the logged counter.
    """

    def __init__(self, max_consecutive: int = 5, name: str = "train/skipped_nonfinite") -> None:
        if max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = max_consecutive
        self.name = name
        self.skipped = 0  # non-finite losses so far (steps skipped) in this run
        self.consecutive = 0
        self._drop_next_step = False
        self._recent: deque[tuple[int, list[tuple[int, str, list[str]]]]] = deque(maxlen=max_consecutive)

    def check(self, loss: Tensor, batch: dict, module: pl.LightningModule) -> bool:
        """``True`` if ``loss`` is finite on every rank; otherwise count, log and warn, and raise after
        ``max_consecutive`` in a row. Every rank must call this for every batch (it is a collective under DDP)."""
        finite_here = bool(torch.isfinite(loss.detach()).all())
        trainer = module.trainer
        finite = trainer.strategy.reduce_boolean_decision(finite_here, all=True)
        if finite:
            self.consecutive = 0
            self._recent.clear()
        else:
            self.skipped += 1
            self.consecutive += 1
            self._drop_next_step = True
            # Every rank is here together (the decision is shared), so gathering where the losses went bad is safe.
            mine = (finite_here, float(loss.detach().float().mean()), _ids(batch), trainer.global_rank)
            where = [w for w in _gather(mine) if not w[0]]
            culprits = [(rank, _fmt(value), ids) for _, value, ids, rank in where]
            self._recent.append((trainer.global_step, culprits))
            # Skipping the update cannot undo what the forward pass wrote (e.g. BatchNorm running statistics).
            buffers = [n for n, b in module.named_buffers() if b.is_floating_point() and not torch.isfinite(b).all()]
            if trainer.strategy.reduce_boolean_decision(bool(buffers), all=False):
                raise NonFiniteLossError(
                    "training stopped: non-finite values reached the model's buffers "
                    f"({', '.join(buffers) or 'on another rank'})"
                    f" at global step {trainer.global_step}, so skipping the update cannot save the model: "
                    f"{_describe(culprits)}. Check these utterances (a NaN or infinite input?)."
                )
        batch_size = len(batch["ids"]) if isinstance(batch, dict) and "ids" in batch else None
        module.log(self.name, float(self.skipped), on_step=True, on_epoch=False, batch_size=batch_size)
        if finite:
            return True
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(self._message())
        if trainer.is_global_zero:
            step, culprits = self._recent[-1]
            log.warning("tts_lab: non-finite training loss at step %d, update skipped (%d so far): %s",
                        step, self.skipped, _describe(culprits))
        return False

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Call from the task's ``on_before_optimizer_step``: after a non-finite loss, drop all gradients so the
        optimiser step changes nothing (automatic optimisation)."""
        if not self._drop_next_step:
            return
        for group in optimizer.param_groups:
            for param in group["params"]:
                param.grad = None
        self._drop_next_step = False

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.skipped, self.consecutive = int(state.get("skipped", 0)), int(state.get("consecutive", 0))

    def _message(self) -> str:
        step, culprits = self._recent[-1]
        lines = [
            f"training stopped: {self.consecutive} non-finite losses in a row (max_consecutive={self.max_consecutive}),"
            f" {self.skipped} in this run. The last, at global step {step}: {_describe(culprits)}.",
        ]
        earlier = list(self._recent)[:-1]
        if earlier:
            lines.append("Before it: " + "; ".join(f"step {s}: {_describe(c)}" for s, c in earlier) + ".")
        lines.append(
            "Check these utterances (audio, transcript, length), or lower the learning rate, clip gradients "
            "(trainer.gradient_clip_val) or train at another precision."
        )
        return "\n".join(lines)


CHECKPOINT_KEY = "nonfinite_guards"


def save_guards(checkpoint: dict, *guards: NonFiniteGuard) -> None:
    checkpoint[CHECKPOINT_KEY] = {g.name: g.state_dict() for g in guards}


def load_guards(checkpoint: dict, *guards: NonFiniteGuard) -> None:
    """Counters from ``checkpoint``; zero for a guard it does not have (e.g. written before guards were saved)."""
    saved = checkpoint.get(CHECKPOINT_KEY, {})
    for g in guards:
        g.load_state_dict(saved.get(g.name, {}))


def _ids(batch: object) -> list[str]:
    if isinstance(batch, dict) and "ids" in batch:
        return [str(i) for i in batch["ids"]]
    return ["<batch without 'ids'>"]


def _fmt(value: float) -> str:
    return f"{value:.4g}"  # nan, inf, -inf or the number


def _describe(culprits: list[tuple[int, str, list[str]]]) -> str:
    return "; ".join(f"loss {value} on rank {rank} for utterances {', '.join(ids)}" for rank, value, ids in culprits)


def _gather(obj: object) -> list:
    """``obj`` from every process (one process: ``[obj]``)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out: list = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]
