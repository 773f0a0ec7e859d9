"""Writes predicted mels (e.g. the postnet's polished spectrograms) as one ``.npy`` per utterance.

``predict_step`` returns ``[{"id": str, "mel": (T, n_mels) tensor}, ...]`` per batch; each row becomes
``<output_dir>/<id with / replaced by __>.npy`` (float32, (T, n_mels)), the layout of the GTA dumps, so a folder of
polished mels can be read wherever a folder of mels is expected. Rows are written as batches finish, so predicting a
whole corpus does not hold every mel in memory. Under DDP each rank writes the utterances it was dealt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pytorch_lightning.callbacks import BasePredictionWriter

from tts_lab.callbacks.media import run_dir


class MelWriter(BasePredictionWriter):
    """Args:
    output_dir: folder to write to (default ``<run dir>/mels``).
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.written: list[Path] = []
        self._folder: Path | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        # Resolved once here, on every rank together: the trainer's log_dir is a DDP broadcast, which must not
        # run per batch (ranks may get different numbers of predict batches).
        self._folder = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "mels"
        self._folder.mkdir(parents=True, exist_ok=True)
        self.written = []

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        for row in prediction:
            path = self._folder / f"{row['id'].replace('/', '__')}.npy"
            np.save(path, row["mel"].detach().float().cpu().numpy())
            self.written.append(path)
            row["mel"] = str(path)  # the predict loop keeps returned rows: keep paths, not arrays
