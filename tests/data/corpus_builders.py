"""Tiny corpora with good, odd and bad items, written into a test's tmp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

TEXTS = ["the cat sat on the mat", "a quick brown fox", "hello there world", "she sells sea shells", "it is what it is"]


def tone(seconds: float, rate: int, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return 0.3 * np.sin(2 * np.pi * freq * t)


def write_lj(root: Path, n_good: int = 10, bad: bool = True) -> Path:
    """LJSpeech-1.1 layout. With ``bad``: one of every bad-input case, plus odd-but-valid audio formats."""
    lj = root / "LJSpeech-1.1"
    wavs = lj / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    lines: list[bytes] = []
    for i in range(n_good):
        uid = f"LJ001-{i:04d}"
        sf.write(wavs / f"{uid}.wav", tone(0.5 + 0.1 * (i % 5), 22050, 150 + 20 * i), 22050)
        lines.append(f'{uid}|{TEXTS[i % 5]} "{i}"|{TEXTS[i % 5]} "number {i}"'.encode())
    if bad:
        odd = {  # valid audio in other formats: must be used, not dropped
            "LJ002-0001": dict(data=np.stack([tone(0.6, 22050), tone(0.6, 22050, 300)], 1), rate=22050, subtype="PCM_16"),
            "LJ002-0002": dict(data=tone(0.6, 16000), rate=16000, subtype="PCM_16"),
            "LJ002-0003": dict(data=tone(0.6, 22050), rate=22050, subtype="PCM_U8"),
            "LJ002-0004": dict(data=tone(0.6, 22050), rate=22050, subtype="PCM_24"),
            "LJ002-0005": dict(data=tone(0.6, 22050), rate=22050, subtype="FLOAT"),
        }
        for uid, spec in odd.items():
            sf.write(wavs / f"{uid}.wav", spec["data"], spec["rate"], subtype=spec["subtype"])
            lines.append(f"{uid}|odd format|odd format".encode())
        # Unusable audio, listed correctly: found when the cache is built.
        (wavs / "LJ003-0001.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")  # truncated header
        sf.write(wavs / "LJ003-0002.wav", np.zeros(0), 22050)  # zero-length
        good = (wavs / "LJ001-0000.wav").read_bytes()
        (wavs / "LJ003-0003.wav").write_bytes(good[:30])  # truncated inside the header
        lines += [b"LJ003-0001|truncated|truncated", b"LJ003-0002|empty audio|empty audio", b"LJ003-0003|cut|cut"]
        # Metadata problems.
        lines += [
            b"LJ004-0001|only two fields",  # malformed
            b"LJ004-0002|missing wav|missing wav",  # wav missing
            b"LJ004-0003| | ",  # empty transcript
            b"LJ004-0004|caf\xe9 bytes|caf\xe9 bytes",  # not UTF-8
        ]
        sf.write(wavs / "LJ004-0005.wav", tone(0.5, 22050), 22050)
        lines.append("LJ004-0005|###|###".encode())  # empty after normalisation
    (lj / "metadata.csv").write_bytes(b"\n".join(lines) + b"\n")
    return root
