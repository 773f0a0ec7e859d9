"""Per-batch seeding: each training batch's randomness (dropout, noise, a gradient penalty's interpolates) is a
function of (seed, epoch, batch index, rank) only, so a run resumed mid-epoch from a checkpoint draws exactly what
the uninterrupted run drew.

Saving and restoring the generators' states instead would be exact only if the resumed run consumed random numbers
between loading and its first batch precisely as the original did after saving (dataloader iterators draw a base
seed, sanity validation may run, and prefetching reads ahead): re-seeding at every batch start does not depend on
any of that. fairseq re-seeds per update for the same reason. The data side is keyed the same way already (the
batch sampler by (seed, epoch), postnet crops and degradations by (seed, epoch, utterance)).

`tts_lab.cli.TTSLabCLI` always adds this callback (``--batch_seed.seed`` overrides its seed).
"""

from __future__ import annotations

import os

import numpy as np
import pytorch_lightning as pl
import torch


class PerBatchSeed(pl.Callback):
    """Args:
    seed: base seed; None takes the run's ``seed_everything`` value (``PL_GLOBAL_SEED``, else 0).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def batch_seed(self, epoch: int, batch_idx: int, rank: int) -> int:
        base = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        return int(np.random.SeedSequence([base, epoch, batch_idx, rank]).generate_state(1, np.uint64)[0])

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        # torch.manual_seed seeds the CPU generator and every CUDA device's; ranks draw different dropout masks.
        torch.manual_seed(self.batch_seed(trainer.current_epoch, batch_idx, trainer.global_rank))
