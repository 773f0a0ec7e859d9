"""Prints the validation metrics after every validation epoch, so a run shows its real numbers in the terminal."""

from __future__ import annotations

import time

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info


class MetricsSummary(pl.Callback):
    """One line per validation epoch: epoch, step, minutes since fit start, and every ``val/...`` metric."""

    def __init__(self, prefix: str = "val/") -> None:
        self.prefix = prefix
        self._start: float | None = None
        self.history: list[dict] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.monotonic()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(self.prefix) and v.numel() == 1}
        minutes = (time.monotonic() - self._start) / 60 if self._start is not None else 0.0
        self.history.append({"epoch": trainer.current_epoch, "step": trainer.global_step, "minutes": minutes, **metrics})
        shown = "  ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
        rank_zero_info(f"[epoch {trainer.current_epoch} | step {trainer.global_step} | {minutes:.1f} min] {shown}")
