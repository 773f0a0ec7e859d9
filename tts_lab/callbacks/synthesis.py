"""Writes what a Tacotron task's ``predict`` returns: mels, attention images and Griffin-Lim audio, or GTA dumps.

Per item, named by its utterance id with ``/`` replaced by ``__`` (CMU Arctic ids are ``<speaker>/<prompt>``):

* ``predict_mode: synthesize`` (free-running): ``<id>.npy`` (float32 log-mel, (T, n_mels)), ``<id>_attention.png``
  (encoder step x decoder step) and ``<id>.wav`` (Griffin-Lim; from the linear spectrogram when the network has a
  Tacotron 1 linear postnet, else from the mel);
* ``predict_mode: gta`` (teacher-forced, "ground-truth aligned"): only ``<id>.npy``, float32 log-mel (T, n_mels)
  with exactly the target's T frames, so frame t of the dump lines up with frame t of the ground truth. This folder
  is the training input of the postnet GAN::

      <gta_dir>/<utterance id with / replaced by __>.npy    float32 (T, n_mels), same T as the target features

After writing, each returned row's arrays are replaced by the paths written, so predicting a whole corpus does not
accumulate every mel in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio
from pytorch_lightning.callbacks import BasePredictionWriter

from tts_lab.audio.features import FeatureConfig
from tts_lab.audio.griffin_lim import GriffinLim
from tts_lab.audio.io import save_audio
from tts_lab.callbacks.media import plot_matrix, run_dir
from tts_lab.tasks.tacotron_runs import audible


def file_stem(utterance_id: str) -> str:
    """File name (no extension) for an utterance id: ``dm1/arctic_a0001`` -> ``dm1__arctic_a0001``."""
    return utterance_id.replace("/", "__")


class LinearGriffinLim(torch.nn.Module):
    """Griffin-Lim from a log linear-magnitude spectrogram (..., T, n_fft // 2 + 1), as Tacotron 1 does."""

    def __init__(self, config: FeatureConfig, n_iter: int = 32) -> None:
        super().__init__()
        window_fn = {"hann": torch.hann_window, "hamming": torch.hamming_window}[config.window]
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=config.n_fft, n_iter=n_iter, win_length=config.win_length, hop_length=config.hop_length,
            window_fn=window_fn, power=config.power, momentum=0.99, rand_init=False,
        )

    @torch.no_grad()
    def forward(self, log_linear: torch.Tensor) -> torch.Tensor:
        return self.griffin_lim(torch.exp(log_linear.float()).transpose(-1, -2))


class SynthesisWriter(BasePredictionWriter):
    """Args:
    output_dir: folder to write to (default ``<run dir>/synthesis``, or ``<run dir>/gta`` for GTA predictions).
    audio: write Griffin-Lim WAVs in synthesize mode.
    griffin_lim_iters: Griffin-Lim iterations.
    """

    def __init__(self, output_dir: str | None = None, audio: bool = True, griffin_lim_iters: int = 32) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.audio = audio
        self.griffin_lim_iters = griffin_lim_iters
        self.written: list[Path] = []
        self.folder: Path | None = None
        self._vocoders: dict[str, torch.nn.Module] = {}

    def on_predict_start(self, trainer, pl_module) -> None:
        # Resolved once, on every rank together (the trainer's log_dir is a DDP broadcast: never per batch).
        mode = getattr(pl_module, "predict_mode", "synthesize")
        self.folder = Path(self.output_dir) if self.output_dir else run_dir(trainer) / ("gta" if mode == "gta" else "synthesis")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.written = []

    def _vocoder(self, kind: str, features: FeatureConfig) -> torch.nn.Module:
        if kind not in self._vocoders:
            cls = LinearGriffinLim if kind == "linear" else GriffinLim
            self._vocoders[kind] = cls(features, n_iter=self.griffin_lim_iters)
        return self._vocoders[kind]

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        features: FeatureConfig = pl_module.features
        for row in prediction:
            folder = self.folder
            stem = file_stem(row["id"])
            mel = row["mel"].float().cpu()  # (T, n_mels) log-mel
            mel_path = folder / f"{stem}.npy"
            np.save(mel_path, mel.numpy().astype(np.float32))
            self.written.append(mel_path)
            row["mel"] = str(mel_path)
            if row["mode"] == "gta":
                continue
            image = folder / f"{stem}_attention.png"
            plot_matrix(row.pop("alignment").T, image, f"{row['id']} attention", "decoder step", "encoder step")
            row["attention"] = str(image)
            self.written.append(image)
            linear = row.pop("linear", None)  # (T, n_fft // 2 + 1) log magnitude, Tacotron 1 postnet
            if self.audio:
                if linear is not None:  # silence-padded like a mel if very short: log floor is silence too
                    wave = self._vocoder("linear", features)(audible(linear, features))
                else:
                    wave = self._vocoder("mel", features)(audible(mel, features))
                wav = folder / f"{stem}.wav"
                save_audio(wav, wave, features.sample_rate)
                row["audio"] = str(wav)
                self.written.append(wav)
