"""Symbol sets shared by the TTS and ASR models.

Id 0 is never a symbol: it is reserved for padding, which doubles as the CTC
blank. Symbol ``i`` of a set gets id ``i + 1``. Changing the order or content
of a set changes every id, so checkpoints record the set they were trained on.
"""

PAD = "_"  # id 0: padding and the CTC blank
BLANK_TOKEN = "<blank>"  # how id 0 is named for torchaudio's ctc_decoder
SIL_TOKEN = "|"  # how the space is named for ctc_decoder (word boundary)

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SPACE = " "
APOSTROPHE = "'"
# Punctuation that carries prosody. Every quote style is normalised to '"'.
PUNCTUATION = "'\",.?!-;:"
# Punctuation that separates words: a set without it maps it to a space, so
# that ASR sees "well-known" as "well known" rather than "wellknown".
WORD_SEPARATORS = "-"

TTS_SYMBOLS = LETTERS + SPACE + PUNCTUATION
# ASR transcripts keep only what can be heard: letters, word breaks and the
# apostrophe of contractions ("don't" is not "dont").
ASR_SYMBOLS = LETTERS + SPACE + APOSTROPHE
