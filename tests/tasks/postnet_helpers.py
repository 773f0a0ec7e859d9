"""Tiny postnet tasks, synthetic crop batches and CLI / DDP runners shared by the GAN and WGAN task tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from tts_lab.audio.features import FeatureConfig
from tts_lab.data.postnet_transforms import MelNormalizer, degrade

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
FEATS = FeatureConfig(n_mels=24)
TINY_UNET = ["--model.init_args.generator.init_args.base_channels=4", "--model.init_args.generator.init_args.depth=2"]
TINY_DATA = ["--data.batch_size=2", "--data.eval_batch_size=2", "--data.crops_per_utterance=2", "--data.crop_size=32"]
NO_MEDIA = '[{"class_path": "tts_lab.callbacks.MetricsSummary"}, {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint", "init_args": {"save_last": true}}]'


def fitted_normalizer(n_mels: int = FEATS.n_mels) -> MelNormalizer:
    g = torch.Generator().manual_seed(0)
    return MelNormalizer(n_mels).fit([torch.randn(200, n_mels, generator=g) * 2 - 5])


class CropBatches(Dataset):
    """Synthetic training batches in the PostnetDataModule layout: (blurry, target) crops of raw log-mels."""

    def __init__(self, n: int = 8, crops: int = 4, size: int = 32, n_mels: int = FEATS.n_mels) -> None:
        g = torch.Generator().manual_seed(1)
        self.items = []
        for _ in range(n):
            target = torch.randn(crops, size, n_mels, generator=g) * 2 - 5
            blurry = degrade(target, 1.5, 1.0, 0.05, generator=g)
            self.items.append({"ids": ["x"] * crops, "input": blurry, "target": target, "skipped_crops": torch.tensor(1)})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def loader(n: int = 8) -> DataLoader:
    return DataLoader(CropBatches(n), batch_size=None)


def trainer(**kw) -> pl.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, max_epochs=1)
    args.update(kw)
    return pl.Trainer(**args)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters only (batch-norm running statistics move without any optimiser step)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(before: dict, module: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in module.named_parameters())


class OptimizerSteps(pl.Callback):
    """Counts the steps of each optimizer (in ``configure_optimizers`` order), in all and per training batch."""

    def on_fit_start(self, trainer, pl_module):
        self.steps = [0] * len(trainer.optimizers)
        self.per_batch: list[list[int]] = []
        for i, opt in enumerate(trainer.optimizers):
            opt.register_step_post_hook(lambda *_, i=i: self.steps.__setitem__(i, self.steps[i] + 1))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._before = list(self.steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.per_batch.append([a - b for a, b in zip(self.steps, self._before)])


class Poison(pl.Callback):
    """Sets ``pl_module.<attribute>`` to NaN during the training batches ``batches`` (None: all), so that the loss
    it enters is non-finite there."""

    def __init__(self, attribute: str, batches: set[int] | None) -> None:
        self.attribute, self.batches = attribute, batches

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._saved = getattr(pl_module, self.attribute)
        if self.batches is None or batch_idx in self.batches:
            setattr(pl_module, self.attribute, float("nan"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        setattr(pl_module, self.attribute, self._saved)


def run_cli_ddp(args: list[str], cache_dir, timeout: int = 240) -> str:
    """Two CPU processes (gloo) through the real command line; returns stdout + stderr."""
    env = {**os.environ, "TTS_LAB_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "tts_lab.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "GLOBAL_RANK: 1" in out  # really two processes
    return out
