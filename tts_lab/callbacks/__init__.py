"""Callbacks shared by every task: console metrics, media (images/audio), prediction writers."""

from tts_lab.callbacks.console import MetricsSummary
from tts_lab.callbacks.media import MediaLogger
from tts_lab.callbacks.predictions import JsonlPredictionWriter

__all__ = ["MediaLogger", "MetricsSummary", "JsonlPredictionWriter"]
