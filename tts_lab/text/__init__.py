"""Text front end: normalisation, symbol sets and the character tokenizer."""

from tts_lab.text.normalize import normalize_text
from tts_lab.text.symbols import ASR_SYMBOLS, TTS_SYMBOLS
from tts_lab.text.tokenizer import Tokenizer

__all__ = ["ASR_SYMBOLS", "TTS_SYMBOLS", "Tokenizer", "normalize_text"]
