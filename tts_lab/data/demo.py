"""A small deterministic demo corpus in the real LJSpeech and CMU Arctic on-disk layouts.

For newcomers without the real corpora: ``ensure_demo_corpus("data/demo")`` writes, in seconds,

* ``LJSpeech-1.1/metadata.csv`` (``ID|raw text|normalized text``) and ``LJSpeech-1.1/wavs/ID.wav``
  (one speaker, 22050 Hz, 16-bit PCM), raw text with digits, abbreviations and quotes;
* ``cmu_us_<spk>_arctic/etc/txt.done.data`` and ``cmu_us_<spk>_arctic/wav/arctic_a0001.wav`` (16000 Hz)
  for every speaker, all reading the same prompts.

The audio comes from a toy letter-by-letter synthesizer (`tts_lab.data.demo_synth`), so ASR, TTS attention
and voice conversion all have a real, quickly learnable mapping. Generation is atomic: everything is written
to a hidden sibling folder which is renamed into place with a completion marker written last, so a killed
run never leaves a corpus that a later run trusts.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from tts_lab.data.demo_synth import VOICES, synthesize

log = logging.getLogger(__name__)

DEMO_VERSION = 1  # bump whenever text or audio generation changes, so old corpora are regenerated
DEMO_SPEAKERS: tuple[str, ...] = ("dm1", "df1")
MARKER_NAME = ".tts_lab_demo.json"
LJ_DIR = "LJSpeech-1.1"
LJ_VOICE = "lj"
LJ_SAMPLE_RATE = 22050
ARCTIC_SAMPLE_RATE = 16000
DEFAULT_N_LJ = 400
DEFAULT_N_ARCTIC = 200

WORDS: tuple[str, ...] = tuple(
    """
    the a an and or but if then so because when while after before until since as of to in on at by for
    with from into over under about above below near far up down out off back again still just only also
    very more most less some many few all each every both other same new old good bad big small long short
    high low first last next early late young great little own right left open close hard soft warm cold
    dark light quick slow quiet loud happy sad kind wild clean full empty green blue red white black brown
    man woman child boy girl people friend family mother father king queen doctor farmer teacher captain
    house room door window table chair bed book letter paper story word name voice song music picture
    city town village street road bridge river lake sea ship boat train horse dog cat bird fish tree
    garden field forest mountain hill stone water fire wind rain snow sun moon star sky night day morning
    evening summer winter year week hour time money bread milk apple dinner school office church market
    is was are were has had will would can could shall should may must do did go went come came see saw
    look find found give gave take took make made know knew think thought tell told say said ask asked
    walk walked run ran sit sat stand stood hold held keep kept leave bring brought write wrote read
    play played work worked live lived love loved help helped call called turn turned wait waited carry
    never always often sometimes soon here there where why how what who which this that these those
    """.split()
)
NAMES: tuple[str, ...] = ("Smith", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Clark", "Hall")
TITLES: dict[str, str] = {"Mr.": "Mister", "Mrs.": "Missus", "Dr.": "Doctor"}
NUMBERS: dict[int, str] = dict(
    enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
        " seventeen eighteen nineteen twenty".split()
    )
) | {30: "thirty", 40: "forty", 50: "fifty", 100: "one hundred"}

# Streams of the per-item random generators: one per (purpose, corpus), so items never depend on n or order.
_LJ_TEXT, _LJ_AUDIO, _ARCTIC_TEXT, _ARCTIC_AUDIO = range(4)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


def make_sentence(rng: np.random.Generator, rich: bool) -> tuple[str, str]:
    """One prompt of 3-8 words as (raw, normalized).

    ``rich`` adds LJSpeech-style raw text: sometimes a title ("Mr. Smith" -> "Mister Smith"), a number
    ("3" -> "three") or a quoted phrase (kept, unescaped, in both columns as in the real corpus).
    """
    n = int(rng.integers(3, 9))
    raw = [str(w) for w in rng.choice(WORDS, size=n)]
    norm = list(raw)
    if rich and rng.random() < 0.25:  # a number replaces one word
        k, value = int(rng.integers(n)), int(rng.choice(list(NUMBERS)))
        raw[k], norm[k] = str(value), NUMBERS[value]
    if rich and rng.random() < 0.2:  # a titled name replaces the first two words
        title, name = str(rng.choice(list(TITLES))), str(rng.choice(NAMES))
        raw[:2], norm[:2] = [title, name], [TITLES[title], name]
    if rng.random() < 0.2 and n >= 5:  # a comma after some word in the middle
        k = int(rng.integers(1, n - 2))
        raw[k], norm[k] = raw[k] + ",", norm[k] + ","
    if rich and rng.random() < 0.15:  # a quoted span of two or more words
        a = int(rng.integers(0, n - 1))
        b = int(rng.integers(a + 1, n))
        for words in (raw, norm):
            words[a], words[b] = '"' + words[a], words[b] + '"'
    end = str(rng.choice([".", ".", ".", "?", "!"]))
    return _capitalise(" ".join(raw)) + end, _capitalise(" ".join(norm)) + end


def _capitalise(text: str) -> str:
    """Upper-case the first letter, even behind an opening quote."""
    i = next(i for i, ch in enumerate(text) if ch.isalnum())
    return text[:i] + text[i].upper() + text[i + 1 :]


def lj_ids(n: int) -> list[str]:
    """LJSpeech-style ids in chapters of 100: DM001-0001 ... DM001-0100, DM002-0001, ..."""
    return [f"DM{i // 100 + 1:03d}-{i % 100 + 1:04d}" for i in range(n)]


def arctic_ids(n: int) -> list[str]:
    """Arctic-style ids: arctic_a0001 ... arctic_a0593, then arctic_b0001 ... as in the real prompt set."""
    return [f"arctic_a{i + 1:04d}" if i < 593 else f"arctic_b{i - 592:04d}" for i in range(n)]


def _params(
    seed: int = 0, n_lj: int = DEFAULT_N_LJ, n_arctic: int = DEFAULT_N_ARCTIC, speakers: Sequence[str] = DEMO_SPEAKERS
) -> dict:
    """The validated generation parameters; also what the completion marker records."""
    unknown = [s for s in speakers if s not in VOICES]
    if unknown or len(set(speakers)) != len(speakers) or isinstance(speakers, str):
        raise ValueError(f"speakers must be distinct names from {sorted(VOICES)}, got {speakers!r}")
    if n_lj < 0 or n_arctic < 0:
        raise ValueError(f"n_lj and n_arctic must be >= 0, got {n_lj}, {n_arctic}")
    return {"version": DEMO_VERSION, "seed": seed, "n_lj": n_lj, "n_arctic": n_arctic, "speakers": list(speakers)}


def _fingerprint(params: dict) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    buffer = io.BytesIO()  # encoding in memory skips libsndfile's per-file sync, ~2x faster for small files
    sf.write(buffer, wave, sample_rate, subtype="PCM_16", format="WAV")
    path.write_bytes(buffer.getvalue())


def _write_lj(out: Path, seed: int, n: int) -> None:
    wavs = out / LJ_DIR / "wavs"
    wavs.mkdir(parents=True)
    lines = []
    for i, item in enumerate(lj_ids(n)):
        raw, norm = make_sentence(_rng(seed, _LJ_TEXT, i), rich=True)
        wave, _ = synthesize(norm, VOICES[LJ_VOICE], LJ_SAMPLE_RATE, _rng(seed, _LJ_AUDIO, i))
        _write_wav(wavs / f"{item}.wav", wave, LJ_SAMPLE_RATE)
        lines.append(f"{item}|{raw}|{norm}\n")
    (out / LJ_DIR / "metadata.csv").write_text("".join(lines), encoding="utf-8")


def _write_arctic(out: Path, seed: int, n: int, speakers: Sequence[str]) -> None:
    prompts = [make_sentence(_rng(seed, _ARCTIC_TEXT, i), rich=False)[1] for i in range(n)]
    ids = arctic_ids(n)
    for spk in speakers:
        spk_dir = out / f"cmu_us_{spk}_arctic"
        (spk_dir / "wav").mkdir(parents=True)
        (spk_dir / "etc").mkdir()
        spk_key = zlib.crc32(spk.encode())  # stable across runs and independent of speaker order
        for i, (item, text) in enumerate(zip(ids, prompts)):
            wave, _ = synthesize(text, VOICES[spk], ARCTIC_SAMPLE_RATE, _rng(seed, _ARCTIC_AUDIO, spk_key, i))
            _write_wav(spk_dir / "wav" / f"{item}.wav", wave, ARCTIC_SAMPLE_RATE)
        lines = "".join(f'( {item} "{text}" )\n' for item, text in zip(ids, prompts))
        (spk_dir / "etc" / "txt.done.data").write_text(lines, encoding="utf-8")


def _read_marker(root: Path) -> dict | None:
    try:
        marker = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("format") == "tts_lab-demo" else None


def _count_wavs(folder: Path) -> int:
    try:
        return sum(1 for e in os.scandir(folder) if e.name.endswith(".wav"))
    except OSError:
        return -1


def is_complete(root: str | Path, params: dict) -> bool:
    """True when ``root`` holds a finished demo corpus made with exactly ``params`` and no file is missing."""
    root = Path(root)
    marker = _read_marker(root)
    if marker is None or marker.get("fingerprint") != _fingerprint(params):
        return False
    if params["n_lj"] and not (
        (root / LJ_DIR / "metadata.csv").is_file() and _count_wavs(root / LJ_DIR / "wavs") == params["n_lj"]
    ):
        return False
    for spk in params["speakers"] if params["n_arctic"] else ():
        spk_dir = root / f"cmu_us_{spk}_arctic"
        if not (spk_dir / "etc" / "txt.done.data").is_file() or _count_wavs(spk_dir / "wav") != params["n_arctic"]:
            return False
    return True


def _owned_by_demo(root: Path) -> bool:
    """Whether replacing ``root`` can only destroy a (possibly stale) demo corpus, never real data."""
    if not root.exists():
        return True
    if not root.is_dir():
        return False
    if _read_marker(root) is not None:
        return True
    # No marker (e.g. deleted by hand): ours only if every entry has a demo name and LJ ids are demo ids.
    layout = {LJ_DIR} | {f"cmu_us_{spk}_arctic" for spk in VOICES}
    entries = {e.name for e in os.scandir(root)}
    if not entries <= layout:
        return False
    metadata = root / LJ_DIR / "metadata.csv"
    if metadata.is_file():
        with metadata.open(encoding="utf-8") as f:
            return bool(re.match(r"DM\d{3}-\d{4}\|", f.readline()))
    return True


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Serialise generators of the same root (e.g. several DDP ranks calling ensure) with a sibling lock file."""
    import fcntl  # POSIX only; imported here so importing this module works everywhere

    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _remove_leftovers(root: Path) -> None:
    """Delete temporary folders of killed runs (safe: we hold the lock, so nobody else is writing)."""
    for path in root.parent.glob(f".{root.name}.tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.parent.glob(f".{root.name}.old-*"):
        shutil.rmtree(path, ignore_errors=True)


def _generate_locked(root: Path, params: dict) -> None:
    if not _owned_by_demo(root):
        raise FileExistsError(f"{root} exists and is not a tts_lab demo corpus; remove it or choose another root")
    _remove_leftovers(root)
    start = time.perf_counter()
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        if params["n_lj"]:
            _write_lj(tmp, params["seed"], params["n_lj"])
        if params["n_arctic"]:
            _write_arctic(tmp, params["seed"], params["n_arctic"], params["speakers"])
        marker = {"format": "tts_lab-demo", "fingerprint": _fingerprint(params), "params": params}
        (tmp / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    except BaseException:  # a hard kill skips this; _remove_leftovers catches that case on the next run
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if root.exists():  # rename the old corpus aside first: a directory can only be renamed onto an empty one
        old = root.parent / f".{root.name}.old-{os.getpid()}"
        os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old)
    else:
        os.replace(tmp, root)
    log.info("demo corpus written to %s in %.1f s", root, time.perf_counter() - start)


def generate_demo_corpus(
    root: str | Path,
    seed: int = 0,
    n_lj: int = DEFAULT_N_LJ,
    n_arctic: int = DEFAULT_N_ARCTIC,
    speakers: Sequence[str] = DEMO_SPEAKERS,
) -> Path:
    """(Re)generate the demo corpus at ``root``, replacing any previous demo corpus there; returns ``root``.

    Args:
        root: folder that will hold ``LJSpeech-1.1/`` and ``cmu_us_<spk>_arctic/`` (0 items skip a layout).
        seed: same seed -> byte-identical files; item i does not depend on the sizes or the speaker order.
        n_lj: number of LJSpeech-like utterances.
        n_arctic: number of Arctic prompts, read by every speaker.
        speakers: Arctic speakers, names from `tts_lab.data.demo_synth.VOICES`.

    Raises FileExistsError rather than touching a ``root`` that holds anything other than a demo corpus.
    """
    root, params = Path(root), _params(seed, n_lj, n_arctic, speakers)
    with _locked(root):
        _generate_locked(root, params)
    return root


def ensure_demo_corpus(root: str | Path, **kwargs) -> Path:
    """Return ``root``, generating the corpus first unless a complete one with the same parameters is there.

    ``kwargs`` are those of `generate_demo_corpus`. A corpus whose marker is missing or names other parameters
    or another `DEMO_VERSION`, or with missing files, is regenerated.
    """
    root = Path(root)
    params = _params(**kwargs)
    if is_complete(root, params):  # fast path without the lock
        return root
    with _locked(root):
        if not is_complete(root, params):  # another process may have finished it while we waited
            _generate_locked(root, params)
    return root
