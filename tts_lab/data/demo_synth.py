"""A toy letter-by-letter speech synthesizer for the demo corpus (see `tts_lab.data.demo`).

Every letter a-z has a fixed acoustic signature, so text -> audio is a real, learnable mapping:

* vowels (a e i o u y): a harmonic source at the speaker's f0 shaped by a vowel-specific formant pattern;
* voiced consonants (b d g j l m n r v w z): weaker harmonic source with their own resonances, some with a
  stop closure + burst (b d g) or frication noise mixed in (j v z);
* unvoiced consonants (c f h k p q s t x): band-passed noise at distinct centre frequencies, plosives with a
  silent closure followed by a short burst.

Spaces and punctuation are pauses. Durations are drawn per occurrence, so alignments are not fixed-length.
Speakers differ by f0, a formant/frequency scale and a speaking-rate factor; the same letter keeps its
relative spectral shape across speakers. Shaping multiplies FFT spectra, all letters of an utterance at once
(one row each), which is fast and has no filter state to carry across letter boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sfft

Band = tuple[float, float, float]  # (centre Hz, bandwidth Hz, relative gain dB)

_REF_RMS = 0.1  # RMS of a part whose level is 0 dB, before peak normalisation
_RAMP_S = 0.010  # attack/decay per letter: doubled letters stay two events
_GEMINATE_GAP_S = 0.040  # extra closure before a repeated letter ("ll") so a CTC model can count it
_BURST_S = 0.008  # plosive burst length
_BREATH = 0.1  # breath-noise power relative to the glottal pulses in voiced sounds


@dataclass(frozen=True)
class Voice:
    """A toy speaker.

    Args:
        name: speaker id as used in corpus paths.
        f0: mean fundamental frequency in Hz.
        formant_scale: multiplies every formant, noise band and burst frequency (vocal-tract length).
        rate: multiplies every duration (< 1 = faster speaker).
    """

    name: str
    f0: float
    formant_scale: float
    rate: float


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("dm1", f0=105.0, formant_scale=1.00, rate=1.00),
        Voice("df1", f0=210.0, formant_scale=1.17, rate=0.85),
        Voice("dm2", f0=125.0, formant_scale=1.05, rate=1.10),
        Voice("df2", f0=240.0, formant_scale=1.22, rate=0.92),
        Voice("lj", f0=185.0, formant_scale=1.12, rate=0.95),  # the LJSpeech-like single speaker
    )
}


@dataclass(frozen=True)
class Phone:
    """The acoustic recipe of one letter.

    Args:
        dur_ms: mean duration (per occurrence it is drawn within +-20 %, then times the speaker's rate).
        formants: resonances applied to the harmonic source (empty = unvoiced).
        voiced_db: RMS level of the harmonic part.
        noise: bands applied to the noise source (empty = no frication).
        noise_db: RMS level of the noise part.
        closure: fraction of the segment that is a stop closure (silence, or a voice bar if voiced).
        burst: (centre Hz, bandwidth Hz) of the release burst after the closure, or None.
    """

    dur_ms: float
    formants: tuple[Band, ...] = ()
    voiced_db: float = 0.0
    noise: tuple[Band, ...] = ()
    noise_db: float = 0.0
    closure: float = 0.0
    burst: tuple[float, float] | None = None


def _vowel(f1: float, f2: float, f3: float) -> Phone:
    return Phone(110.0, ((f1, 80, 0), (f2, 100, -4), (f3, 150, -10), (3500, 250, -18)))


PHONES: dict[str, Phone] = {
    # vowels: textbook F1/F2/F3 (y is a rounded close-mid vowel between i and u)
    "a": _vowel(730, 1090, 2440),
    "e": _vowel(530, 1840, 2480),
    "i": _vowel(270, 2290, 3010),
    "o": _vowel(570, 840, 2410),
    "u": _vowel(300, 870, 2240),
    "y": _vowel(360, 1550, 2700),
    # voiced consonants
    "m": Phone(85, ((250, 60, 0), (1100, 200, -18), (2300, 300, -24)), voiced_db=-8),
    "n": Phone(80, ((260, 60, 0), (1750, 200, -12), (2700, 300, -18)), voiced_db=-8),
    "l": Phone(80, ((360, 70, 0), (1300, 120, -5), (2900, 200, -12)), voiced_db=-5),
    "r": Phone(80, ((420, 80, 0), (1150, 110, -3), (1550, 120, -4)), voiced_db=-5),
    "w": Phone(75, ((300, 60, 0), (650, 80, -4), (2200, 200, -24)), voiced_db=-6),
    "b": Phone(75, ((400, 80, 0), (1000, 120, -8), (2200, 200, -14)), voiced_db=-8, closure=0.45, burst=(700, 900)),
    "d": Phone(75, ((400, 80, 0), (1700, 120, -6), (2600, 200, -10)), voiced_db=-8, closure=0.45, burst=(4000, 1500)),
    "g": Phone(75, ((350, 80, 0), (2000, 150, -4), (2300, 150, -6)), voiced_db=-8, closure=0.45, burst=(2200, 700)),
    "j": Phone(90, ((300, 70, 0), (2100, 150, -8)), -10, ((2800, 1200, 0),), -12, closure=0.3, burst=(2800, 1000)),
    "v": Phone(85, ((300, 70, 0), (1400, 200, -18)), -10, ((4500, 4000, 0),), -20),
    "z": Phone(95, ((300, 70, 0), (1600, 200, -18)), -12, ((4800, 1500, 0),), -12),
    # unvoiced consonants: noise bands spread over 0.8-6.2 kHz; plosives get a closure and a burst
    "p": Phone(70, noise=((800, 1200, 0),), noise_db=-20, closure=0.45, burst=(800, 1200)),
    "k": Phone(75, noise=((1800, 900, 0),), noise_db=-16, closure=0.45, burst=(1800, 700)),
    "q": Phone(80, noise=((1200, 300, -4), (2500, 500, 0)), noise_db=-15, closure=0.4, burst=(2500, 500)),
    "c": Phone(95, noise=((3200, 800, 0),), noise_db=-12, closure=0.25, burst=(3200, 1200)),
    "x": Phone(100, noise=((4000, 900, 0),), noise_db=-13, closure=0.3, burst=(1800, 700)),
    "t": Phone(75, noise=((4800, 2000, 0),), noise_db=-14, closure=0.45, burst=(4800, 2000)),
    "f": Phone(95, noise=((3000, 6000, 0),), noise_db=-17),
    "s": Phone(100, noise=((6200, 2000, 0),), noise_db=-10),
    "h": Phone(80, noise=((700, 300, 0), (1700, 400, -3), (2600, 500, -6)), noise_db=-18),
}

PAUSES_MS: dict[str, float] = {" ": 45.0, ",": 150.0, ";": 150.0, ":": 150.0, ".": 250.0, "?": 250.0, "!": 250.0}
OTHER_PAUSE_MS = 40.0  # quotes, hyphens and anything else unknown


def _resonances(freqs: np.ndarray, bands: tuple[Band, ...], scale: float, nyquist: float) -> np.ndarray:
    """Magnitude response: a sum of Lorentzian peaks (a parallel formant bank)."""
    out = np.zeros_like(freqs)
    for centre, bw, gain_db in bands:
        c, half = min(centre * scale, 0.95 * nyquist), bw * scale / 2
        out += 10 ** (gain_db / 20) / np.sqrt(1.0 + ((freqs - c) / half) ** 2)
    return out


def _noise_bands(freqs: np.ndarray, bands: tuple[Band, ...], scale: float) -> np.ndarray:
    """Magnitude response: a sum of Gaussian bands (bandwidth = full width at half maximum)."""
    out = np.zeros_like(freqs)
    for centre, bw, gain_db in bands:
        sigma = bw * scale / 2.355
        out += 10 ** (gain_db / 20) * np.exp(-0.5 * ((freqs - centre * scale) / sigma) ** 2)
    return out


@lru_cache(maxsize=1024)
def _responses(phone: Phone, scale: float, sr: int, nfft: int) -> np.ndarray:
    """(4, nfft // 2 + 1) magnitude responses: formants, voice bar, noise, burst (zero rows where unused)."""
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    bar = ((200.0, 100.0, 0.0),) if phone.formants and phone.closure else ()
    burst = ((*phone.burst, 0.0),) if phone.burst else ()
    return np.stack(
        [
            _resonances(freqs, phone.formants, scale, sr / 2),
            _resonances(freqs, bar, 1.0, sr / 2),
            _noise_bands(freqs, phone.noise, scale),
            _noise_bands(freqs, burst, scale),
        ]
    ).astype(np.float32)  # float32 keeps the FFTs in single precision


def _at_level(x: np.ndarray, mask: np.ndarray, level_db: np.ndarray | float) -> np.ndarray:
    """Scale each row so its RMS inside ``mask`` is ``level_db``; zero outside the mask (and all-zero rows stay 0)."""
    x = x * mask
    rms = np.sqrt((x**2).sum(axis=1) / np.maximum(mask.sum(axis=1), 1))
    gain = np.where(rms > 0, _REF_RMS * 10 ** (np.asarray(level_db) / 20) / np.maximum(rms, 1e-12), 0.0)
    return x * gain.astype(np.float32)[:, None]


def _raised_cosine(x: np.ndarray) -> np.ndarray:
    """0 -> 1 ramp for x in [0, 1], clipped outside."""
    return np.float32(0.5) - np.float32(0.5) * np.cos(np.float32(np.pi) * np.clip(x, 0.0, 1.0))


def _filter_rows(source: np.ndarray, responses: tuple[np.ndarray, ...], nfft: int) -> list[np.ndarray]:
    """Filter each row of ``source`` by each response; only rows with a nonzero response are transformed."""
    outs = [np.zeros_like(source) for _ in responses]
    rows = np.flatnonzero(np.any([h.any(axis=1) for h in responses], axis=0))
    if len(rows):
        spec = sfft.rfft(source[rows], nfft, axis=1)
        for out, h in zip(outs, responses):
            used = np.flatnonzero(h[rows].any(axis=1))
            if len(used):
                out[rows[used]] = sfft.irfft(spec[used] * h[rows[used]], nfft, axis=1)[:, : source.shape[1]]
    return outs


def _letters(
    phones: list[Phone], n: np.ndarray, pulses: np.ndarray, white: np.ndarray, voice: Voice, sr: int
) -> np.ndarray:
    """Synthesize letters from their source slices (rows of ``pulses``/``white``, valid up to ``n``)."""
    width = pulses.shape[1]
    nfft = 1 << int(np.ceil(np.log2(width + 256)))  # padding keeps most of the filter tails from wrapping
    h = np.stack([_responses(p, voice.formant_scale, sr, nfft) for p in phones], axis=1)  # (4, letters, bins)
    voiced, bar = _filter_rows(pulses, (h[0], h[1]), nfft)
    noise, burst = _filter_rows(white, (h[2], h[3]), nfft)

    col = np.arange(width, dtype=np.float32)[None, :]
    n_ = n[:, None].astype(np.float32)
    start = np.round(np.array([p.closure for p in phones], dtype=np.float32) * n)[:, None]  # end of closure
    burst_len = np.minimum(n_ - start, int(_BURST_S * sr))
    valid, closure = col < n_, col < start
    sound = valid & ~closure
    in_burst = (col >= start) & (col < start + burst_len)
    out = _at_level(voiced, sound, np.array([p.voiced_db for p in phones]))
    out += _at_level(bar, valid & closure, -24.0)  # voiced stops: a weak low "voice bar" during the closure
    out += _at_level(noise, sound, np.array([p.noise_db for p in phones]))
    out += _at_level(burst, in_burst, -6.0) * np.exp(-(col - start) / (0.35 * np.maximum(burst_len, 1)))
    ramp = np.maximum(1, np.minimum(int(_RAMP_S * sr), n_ // 2))  # attack and decay, shrunk for short letters
    return out * (_raised_cosine((col + 0.5) / ramp) * _raised_cosine((n_ - col - 0.5) / ramp) * valid)


def _white(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-variance white noise; uniform rather than Gaussian because it is ~6x faster to draw and
    indistinguishable once band-pass filtered."""
    return (rng.random(n, dtype=np.float32) - np.float32(0.5)) * np.float32(np.sqrt(12.0))


def _intonation(text: str) -> np.ndarray:
    """Per-character f0 factor: the word before "?" rises to 1.35x, before "!" it is raised 1.2x, so the
    three sentence ends (same pause length) stay distinguishable in the audio."""
    factor = np.ones(len(text))
    for end, mark in enumerate(text):
        if mark in "?!":
            start = text.rfind(" ", 0, end) + 1
            factor[start:end] = np.linspace(1.0, 1.35, end - start) if mark == "?" else 1.2
    return factor


def synthesize(
    text: str, voice: Voice, sample_rate: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """Voice ``text`` (normalised; case is ignored) letter by letter.

    Returns the float32 waveform, peak-normalised to 0.9 with a -50 dB noise floor, and one
    ``(char, start_sample, end_sample)`` per input character (lowercased); the segments tile the speech
    between the leading and trailing silences.
    """
    text, sr = text.lower(), sample_rate
    phones = [PHONES.get(ch) for ch in text]
    scales = rng.uniform(0.8, 1.2, size=len(text)) * voice.rate  # per-occurrence duration factor
    jitter = np.exp(rng.normal(0.0, 0.03, size=len(text)))  # per-letter f0 wobble
    lead, trail = (int(d * sr) for d in rng.uniform(0.10, 0.20, size=2))
    ms = np.array([p.dur_ms if p else PAUSES_MS.get(ch, OTHER_PAUSE_MS) for p, ch in zip(phones, text)])
    body = (ms * scales / 1000 * sr).astype(int)
    repeat = [p is not None and i > 0 and text[i - 1] == ch for i, (p, ch) in enumerate(zip(phones, text))]
    gaps = np.where(repeat, int(_GEMINATE_GAP_S * voice.rate * sr), 0)
    ends = lead + np.cumsum(gaps + body, dtype=int)
    begins = ends - body  # where the sound starts, after any geminate gap
    total = int(ends[-1]) + trail if len(text) else lead + trail

    # Source signals for the whole utterance: an impulse per glottal cycle following a declining,
    # per-letter jittered f0 contour (so pitch glides smoothly), and white noise.
    progress = np.arange(len(text)) / max(1, len(text) - 1)
    knots = voice.f0 * (1.08 - 0.16 * progress) * jitter * _intonation(text)
    knot_times = np.concatenate([[lead], ends])
    f0 = np.interp(np.arange(total, dtype=np.float64), knot_times, np.concatenate([[voice.f0 * 1.08], knots]))
    pulses = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0).astype(np.float32)
    # Breath noise at _BREATH x the pulse train's power (1 / period) fills the gaps between harmonics, so a
    # letter's spectral envelope, not where its harmonics happen to fall, dominates its log-mel frames.
    pulses += _white(rng, total) * np.sqrt(_BREATH * f0 / sr).astype(np.float32)
    white = _white(rng, total)

    wave = np.zeros(total, dtype=np.float32)
    letters = [i for i, p in enumerate(phones) if p is not None and body[i] > 0]
    if letters:
        n, width = body[letters], int(body[letters].max())
        # Row i = the sources from the start of letter i, zeroed after its end (views, then one gather each).
        rows = begins[letters]
        valid = np.arange(width)[None, :] < n[:, None]
        pad = np.zeros(width, dtype=np.float32)
        windows = (sliding_window_view(np.concatenate([src, pad]), width)[rows] * valid for src in (pulses, white))
        sound = _letters([phones[i] for i in letters], n, *windows, voice, sr)
        for row, (begin, length) in enumerate(zip(rows, n)):
            wave[begin : begin + length] = sound[row, :length]
    peak = float(np.abs(wave).max())
    if peak > 0:
        wave *= np.float32(0.9 / peak)
    wave += _white(rng, total) * np.float32(0.9 * 10 ** (-50 / 20))  # so silence is never digital zero
    segments = [(ch, int(e - g - b), int(e)) for ch, e, g, b in zip(text, ends, gaps, body)]
    return np.clip(wave, -1.0, 1.0, out=wave), segments
