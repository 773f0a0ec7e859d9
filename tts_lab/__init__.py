"""tts_lab: a PyTorch Lightning platform for speech-model research."""

__version__ = "0.1.0"
