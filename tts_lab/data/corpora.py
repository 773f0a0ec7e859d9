"""Readers for LJSpeech 1.1 and CMU Arctic: lists of utterances, with bad lines reported, not fatal.

Every bad metadata line becomes a skip in the given :class:`ProblemReport` (path, line, reason);
blank lines are ignored. A missing corpus folder or metadata file is a :class:`DataError`.
Audio content is not opened here (the feature cache checks it); only the file's existence is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tts_lab.data.problems import DataError, ProblemReport

LJSPEECH_DIR = "LJSpeech-1.1"
LJSPEECH_SPEAKER = "ljspeech"
ARCTIC_DIR_RE = re.compile(r"^cmu_us_([A-Za-z0-9]+)_arctic$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # also keeps ids from naming paths outside the corpus


@dataclass(frozen=True)
class Utterance:
    """One recording with its transcript."""

    id: str  # unique in the corpus: "LJ001-0001", "bdl/arctic_a0001"
    audio_path: Path
    text: str
    speaker: str  # "ljspeech", "bdl", ...
    prompt_id: str  # same for the same sentence across speakers: "arctic_a0001"
    source: str  # where it was listed: "path/to/metadata.csv:12"


def _decoded_lines(path: Path, report: ProblemReport) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for each non-blank line; undecodable lines are reported."""
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # UTF-8 byte-order mark
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            report.add(path, number, f"not valid UTF-8: bad byte at offset {err.start} of the line")
            continue
        if line.strip():
            yield number, line


def _valid_id(utt_id: str) -> bool:
    return bool(_ID_RE.match(utt_id))


class _Collector:
    """Shared per-line checks: duplicate ids, empty text, missing audio."""

    def __init__(self, report: ProblemReport) -> None:
        self.report = report
        self.first_seen: dict[str, str] = {}  # id -> source of its first listing
        self.utterances: list[Utterance] = []

    def offer(self, path: Path, line: int, utt: Utterance) -> None:
        if utt.id in self.first_seen:
            self.report.add(path, line, f"duplicate id: {utt.id} (first listed at {self.first_seen[utt.id]})")
            return
        self.first_seen[utt.id] = utt.source
        if not utt.text.strip():
            self.report.add(path, line, f"empty transcript: {utt.id}")
        elif not utt.audio_path.is_file():
            self.report.add(path, line, f"missing audio file: {utt.audio_path}")
        else:
            self.utterances.append(utt)


def read_ljspeech(root: str | Path, report: ProblemReport) -> list[Utterance]:
    """Read ``root/LJSpeech-1.1/metadata.csv`` (``ID|raw text|normalized text``, no header).

    The text is the normalized column, or the raw one where that is empty. Quotes are plain
    characters (the file does not use CSV quoting), so lines are split on ``|`` directly.
    """
    root = Path(root)
    corpus = root / LJSPEECH_DIR
    metadata = corpus / "metadata.csv"
    if not metadata.is_file():
        hint = ""
        if (root / "metadata.csv").is_file():
            hint = f" ({root} looks like the corpus folder itself: pass its parent)"
        raise DataError(
            f"LJSpeech not found: expected {metadata}; pass --data.root=DIR where DIR contains "
            f"{LJSPEECH_DIR}/ (or download it with tts_lab.data.download){hint}"
        )
    collector = _Collector(report)
    for number, line in _decoded_lines(metadata, report):
        fields = line.split("|")
        if len(fields) != 3:
            report.add(metadata, number, f"malformed line: expected 3 '|'-separated fields, got {len(fields)}")
            continue
        utt_id, raw_text, norm_text = (f.strip() for f in fields)
        if not _valid_id(utt_id):
            report.add(metadata, number, f"malformed line: bad or empty id {utt_id!r}")
            continue
        utt = Utterance(
            id=utt_id,
            audio_path=corpus / "wavs" / f"{utt_id}.wav",
            text=norm_text or raw_text,
            speaker=LJSPEECH_SPEAKER,
            prompt_id=utt_id,
            source=f"{metadata}:{number}",
        )
        collector.offer(metadata, number, utt)
    return collector.utterances


def arctic_speakers(root: str | Path) -> list[str]:
    """Speakers present as ``root/cmu_us_<spk>_arctic/`` folders, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = (ARCTIC_DIR_RE.match(p.name) for p in root.iterdir() if p.is_dir())
    return sorted(m.group(1) for m in found if m)


def _parse_arctic_line(line: str) -> tuple[str, str] | None:
    """``( arctic_a0001 "Some text." )`` -> (prompt id, text); None if the line has no such shape.

    Tolerant of inner and escaped quotes: the text is everything between the first and last ``"``.
    """
    body = line.strip()
    if not (body.startswith("(") and body.endswith(")")):
        return None
    body = body[1:-1].strip()
    first, last = body.find('"'), body.rfind('"')
    if first < 0 or last == first:
        return None
    head = body[:first].split()
    if len(head) != 1 or body[last + 1 :].strip():
        return None
    return head[0], body[first + 1 : last].replace('\\"', '"').strip()


def read_cmu_arctic(
    root: str | Path, report: ProblemReport, speakers: Sequence[str] | None = None
) -> list[Utterance]:
    """Read ``root/cmu_us_<spk>_arctic/etc/txt.done.data`` for each speaker (None = all found).

    Ids are ``<spk>/<prompt>``; audio is ``cmu_us_<spk>_arctic/wav/<prompt>.wav``.
    """
    root = Path(root)
    found = arctic_speakers(root)
    if not found:
        raise DataError(
            f"CMU Arctic not found: expected folders like {root / 'cmu_us_bdl_arctic'}/; "
            "pass --data.root=DIR where DIR contains cmu_us_<speaker>_arctic/ folders "
            "(or download them with tts_lab.data.download)"
        )
    wanted = list(found if speakers is None else speakers)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise DataError(
            f"CMU Arctic speaker(s) {', '.join(missing)} not found under {root}; "
            f"found: {', '.join(found)}"
        )
    collector = _Collector(report)
    for speaker in dict.fromkeys(wanted):  # keeps order, drops repeats
        folder = root / f"cmu_us_{speaker}_arctic"
        prompts = folder / "etc" / "txt.done.data"
        if not prompts.is_file():
            raise DataError(f"CMU Arctic speaker {speaker}: expected transcript file {prompts}")
        for number, line in _decoded_lines(prompts, report):
            parsed = _parse_arctic_line(line)
            if parsed is None:
                report.add(prompts, number, 'malformed line: expected ( <id> "<text>" )')
                continue
            prompt_id, text = parsed
            if not _valid_id(prompt_id):
                report.add(prompts, number, f"malformed line: bad id {prompt_id!r}")
                continue
            utt = Utterance(
                id=f"{speaker}/{prompt_id}",
                audio_path=folder / "wav" / f"{prompt_id}.wav",
                text=text,
                speaker=speaker,
                prompt_id=prompt_id,
                source=f"{prompts}:{number}",
            )
            collector.offer(prompts, number, utt)
    return collector.utterances


def pair_by_prompt(
    utts: list[Utterance], source_speaker: str, target_speaker: str
) -> list[tuple[Utterance, Utterance]]:
    """(source, target) pairs of the same prompt, for prompts both speakers have; sorted by prompt id."""
    by_speaker: dict[str, dict[str, Utterance]] = {}
    for utt in utts:
        by_speaker.setdefault(utt.speaker, {})[utt.prompt_id] = utt
    for speaker in (source_speaker, target_speaker):
        if speaker not in by_speaker:
            raise DataError(
                f"no utterances of speaker {speaker!r} to pair; speakers present: "
                f"{', '.join(sorted(by_speaker)) or 'none'}"
            )
    source, target = by_speaker[source_speaker], by_speaker[target_speaker]
    return [(source[p], target[p]) for p in sorted(source.keys() & target.keys())]
