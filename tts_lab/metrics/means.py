"""Whole-stage means of named scalars (the loss terms of a validation or test pass), exact under DDP.

``self.log(name, loss, batch_size=n, sync_dist=True)`` would weight each batch by its size and average over ranks,
but Lightning (2.6) averages its integer batch-size counters over gloo ranks with a truncating division: with 3
validation utterances on 2 ranks the count becomes 1 instead of 1.5 and every loss comes out 1.5x too large. A
torchmetrics `MeanMetric` sums values and weights over ranks in floating point instead.
"""

from __future__ import annotations

import pytorch_lightning as pl
from torch import Tensor, nn
from torchmetrics import MeanMetric


class StageMeans(nn.Module):
    """Batch-size weighted means over a whole stage. ``update`` per batch, ``log`` once at the end of the stage
    (``on_validation_epoch_end`` / ``on_test_epoch_end``); every rank must call both (``log`` syncs)."""

    def __init__(self) -> None:
        super().__init__()
        self.means = nn.ModuleDict()  # name -> MeanMetric, created on first sight (the terms depend on the config)

    def update(self, values: dict[str, Tensor], weight: int) -> None:
        for name, value in values.items():
            if name not in self.means:
                self.means[name] = MeanMetric(nan_strategy="disable").to(value.device)  # a NaN loss must show
            self.means[name].update(value.detach().float(), weight)

    def log(self, module: pl.LightningModule, stage: str) -> None:
        """Log ``<stage>/<name>`` for every term (already reduced over ranks) and reset."""
        for name, mean in self.means.items():
            module.log(f"{stage}/{name}", mean.compute(), prog_bar=name == "loss")
            mean.reset()
