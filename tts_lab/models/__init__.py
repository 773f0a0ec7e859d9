"""Plain nn.Module networks (no Lightning here)."""

from tts_lab.models.ctc import CTCAcousticModel

__all__ = ["CTCAcousticModel"]
