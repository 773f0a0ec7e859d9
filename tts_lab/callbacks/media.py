"""Spectrogram / attention images and Griffin-Lim audio for a fixed set of validation utterances.

Tasks expose ``media(batch) -> list[dict]`` with, per utterance: ``id``, ``spectrograms`` {name: (T, n_mels)},
``alignments`` {name: (rows, cols)}, ``audio`` {name: log-mel (T, n_mels) to invert}, and an optional ``caption``.
This callback renders them: PNG/WAV files under ``<run dir>/media/epoch_NNN/`` always (works with no logger),
plus images/audio in wandb or TensorBoard when such a logger is active. The first validation batch is the fixed
set: validation batches are built without shuffling.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on training nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger  # noqa: E402

from tts_lab.audio.griffin_lim import GriffinLim  # noqa: E402
from tts_lab.audio.io import save_audio  # noqa: E402


def run_dir(trainer: pl.Trainer) -> Path:
    """Where a run's files go: the logger's version folder, else the trainer's root dir.

    What ``trainer.log_dir`` answers, without its DDP broadcast: callbacks call this on rank 0 only, and a
    collective there deadlocks the run (rank 0 waits in the broadcast, the others in the next collective).
    """
    if trainer.loggers:
        logger = trainer.loggers[0]
        path = logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir
        if path:
            return Path(path)
    return Path(trainer.default_root_dir)


def plot_matrix(matrix: torch.Tensor, path: Path, title: str, xlabel: str, ylabel: str) -> np.ndarray:
    """Save a (rows, cols) matrix as an image with rows drawn bottom-up; returns the RGB pixels (H, W, 3)."""
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    im = ax.imshow(matrix.detach().float().cpu().numpy(), aspect="auto", origin="lower", interpolation="none")
    fig.colorbar(im, ax=ax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


class MediaLogger(pl.Callback):
    """Args:
    every_n_epochs: render every n-th validation epoch.
    num_examples: utterances from the first validation batch.
    audio: also invert mels with Griffin-Lim and save/log WAVs.
    griffin_lim_iters: Griffin-Lim iterations.
    """

    def __init__(self, every_n_epochs: int = 1, num_examples: int = 2, audio: bool = True, griffin_lim_iters: int = 32) -> None:
        self.every_n_epochs = every_n_epochs
        self.num_examples = num_examples
        self.audio = audio
        self.griffin_lim_iters = griffin_lim_iters
        self._vocoder: GriffinLim | None = None
        self.written: list[Path] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if (
            batch_idx != 0
            or trainer.sanity_checking
            or not trainer.is_global_zero
            or trainer.current_epoch % self.every_n_epochs
            or not hasattr(pl_module, "media")
        ):
            return
        self.render(trainer, pl_module.media(batch)[: self.num_examples], pl_module.features)

    def render(self, trainer: pl.Trainer, items: list[dict], features) -> None:
        out = run_dir(trainer) / "media" / f"epoch_{trainer.current_epoch:03d}"
        step = trainer.global_step
        for index, item in enumerate(items):
            caption = f"{item['id']}\n{item.get('caption', '')}".strip()
            for name, mel in item.get("spectrograms", {}).items():
                path = out / f"{index}_{name}.png"
                pixels = plot_matrix(mel.T, path, f"{item['id']} {name}", "frame", "mel bin")
                self._log_image(trainer, f"val/spectrogram/{name}_{index}", path, pixels, caption, step)
            for name, matrix in item.get("alignments", {}).items():
                path = out / f"{index}_{name}.png"
                pixels = plot_matrix(matrix, path, f"{item['id']} {name}", "decoder step", "encoder step")
                self._log_image(trainer, f"val/alignment/{name}_{index}", path, pixels, caption, step)
            if self.audio:
                for name, mel in item.get("audio", {}).items():
                    wave = self._invert(mel, features)
                    path = out / f"{index}_{name}.wav"
                    save_audio(path, wave, features.sample_rate)
                    self.written.append(path)
                    self._log_audio(trainer, f"val/audio/{name}_{index}", path, wave, features.sample_rate, caption, step)

    def _invert(self, mel: torch.Tensor, features) -> torch.Tensor:
        if self._vocoder is None or self._vocoder.config != features:
            self._vocoder = GriffinLim(features, n_iter=self.griffin_lim_iters)
        return self._vocoder(mel.detach().float().cpu())

    def _log_image(self, trainer, key: str, path: Path, pixels: np.ndarray, caption: str, step: int) -> None:
        self.written.append(path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key=key, images=[str(path)], caption=[caption], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image(key, pixels, step, dataformats="HWC")

    def _log_audio(self, trainer, key: str, path: Path, wave: torch.Tensor, rate: int, caption: str, step: int) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log({key: wandb.Audio(str(path), sample_rate=rate, caption=caption), "trainer/global_step": step})
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_audio(key, wave.clamp(-1, 1)[None], step, sample_rate=rate)
