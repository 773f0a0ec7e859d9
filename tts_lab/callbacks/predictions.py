"""Writes what ``predict`` returns (a list of dicts per batch) as JSON lines and a tab-separated text file."""

from __future__ import annotations

import json
from pathlib import Path

from pytorch_lightning.callbacks import BasePredictionWriter

from tts_lab.callbacks.media import run_dir


class JsonlPredictionWriter(BasePredictionWriter):
    """``<output_dir>/predictions.jsonl`` (+ ``predictions.tsv`` of id<TAB>text); one file per rank under DDP.

    Args:
        output_dir: folder to write to (default: ``<run dir>/predictions``).
    """

    def __init__(self, output_dir: str | None = None) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.paths: list[Path] = []

    def _stem(self, trainer) -> Path:
        folder = Path(self.output_dir) if self.output_dir else run_dir(trainer) / "predictions"
        folder.mkdir(parents=True, exist_ok=True)
        suffix = f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        return folder / f"predictions{suffix}"

    def on_predict_start(self, trainer, pl_module) -> None:
        stem = self._stem(trainer)
        self.paths = [stem.with_suffix(".jsonl"), stem.with_suffix(".tsv")]
        for path in self.paths:
            path.write_text("")

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        jsonl, tsv = self.paths
        with jsonl.open("a") as fj, tsv.open("a") as ft:
            for row in prediction:
                fj.write(json.dumps(row) + "\n")
                if "text" in row:
                    ft.write(f"{row['id']}\t{row['text']}\n")
