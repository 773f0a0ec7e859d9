"""Per-batch seeding: the randomness of every batch is a function of where it is, not of what ran before it.

- Training: each batch's randomness (dropout, noise, a gradient penalty's interpolates) comes from (seed, epoch,
  batch index, rank), so a run resumed mid-epoch from a checkpoint draws exactly what the uninterrupted run drew.
  Saving and restoring the generators' states instead would be exact only if the resumed run consumed random
  numbers between loading and its first batch precisely as the original did after saving (dataloader iterators draw
  a base seed, sanity validation may run, prefetching reads ahead); re-seeding at every batch start does not
  depend on any of that (fairseq re-seeds per update for the same reason). The data side is keyed the same way (the
  batch sampler by (seed, epoch), postnet crops and degradations by (seed, epoch, utterance)).
- Validation, test, predict: from (seed, the batch's utterance ids). Tacotron's prenet keeps its dropout at
  inference, so without this its validation metrics would change with whatever ran before; keyed by content, a
  batch gets the same draws in every epoch, on any rank and with any number of processes.

`tts_lab.cli.TTSLabCLI` always adds this callback (``--batch_seed.seed`` overrides its seed).
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytorch_lightning as pl
import torch


class PerBatchSeed(pl.Callback):
    """Args:
    seed: base seed; None takes the run's ``seed_everything`` value (``PL_GLOBAL_SEED``, else 0).
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def _base(self) -> int:
        return self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def batch_seed(self, epoch: int, batch_idx: int, rank: int) -> int:
        """The seed of a training batch."""
        return _seed([self._base(), epoch, batch_idx, rank])

    def eval_seed(self, batch, batch_idx: int, rank: int) -> int:
        """The seed of an evaluation batch: from its utterance ids (else its index and rank)."""
        ids = batch.get("ids") if isinstance(batch, dict) else None
        key = [zlib.crc32("\n".join(map(str, ids)).encode())] if ids else [batch_idx, rank]
        return _seed([self._base(), 1 << 20, *key])  # 1 << 20: apart from the training seeds' epochs

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        # torch.manual_seed seeds the CPU generator and every CUDA device's; ranks draw different dropout masks.
        torch.manual_seed(self.batch_seed(trainer.current_epoch, batch_idx, trainer.global_rank))

    def _eval(self, trainer: pl.Trainer, batch, batch_idx: int) -> None:
        torch.manual_seed(self.eval_seed(batch, batch_idx, trainer.global_rank))

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval(trainer, batch, batch_idx)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval(trainer, batch, batch_idx)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._eval(trainer, batch, batch_idx)


def _seed(keys: list[int]) -> int:
    return int(np.random.SeedSequence(keys).generate_state(1, np.uint64)[0])
