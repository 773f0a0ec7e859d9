"""LightningModules: training logic only; networks, optimisers and schedulers come from the config."""

from tts_lab.tasks.ctc import CTCTask

__all__ = ["CTCTask"]
