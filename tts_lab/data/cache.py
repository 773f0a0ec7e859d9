"""On-disk log-mel cache: computed once per (corpus, feature config), reused across runs.

Layout: ``<cache_dir>/<corpus_key>-<feature fingerprint>/``
    ``manifest.json``   features, {utterance id: [frames, wav size, wav mtime]}, audio problems found
    ``mels/<id>.npy``   float32 (frames, n_mels)

Every file is written to a temporary name and renamed into place, so a killed run never leaves a half file that a
later run trusts. The manifest is rewritten every few hundred items, so a killed build resumes where it stopped.
A changed feature config lands in another folder (the fingerprint); a changed WAV (size or mtime) is recomputed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tts_lab.audio.features import FeatureConfig, LogMel
from tts_lab.audio.io import AudioError, load_audio
from tts_lab.data.corpora import Utterance
from tts_lab.data.problems import ProblemReport

_FLUSH_EVERY = 200


def _atomic_write(path: Path, write) -> None:
    """Write via ``write(file_object)`` into a temp file next to ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _safe_name(utt_id: str) -> str:
    return utt_id.replace("/", "__")


class FeatureCache:
    """Log-mels of one corpus under one feature config."""

    def __init__(self, cache_dir: str | Path, corpus_key: str, features: FeatureConfig) -> None:
        self.features = features
        self.dir = Path(cache_dir) / f"{corpus_key}-{features.fingerprint()}"
        self.manifest_path = self.dir / "manifest.json"

    # -- manifest ---------------------------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        if not self.manifest_path.is_file():
            return {"features": self.features.to_dict(), "items": {}, "problems": []}
        manifest = json.loads(self.manifest_path.read_text())
        if manifest.get("features") != self.features.to_dict():
            raise RuntimeError(f"{self.manifest_path}: feature config does not match its folder's fingerprint")
        return manifest

    def _write_manifest(self, manifest: dict) -> None:
        _atomic_write(self.manifest_path, lambda f: f.write(json.dumps(manifest, indent=0).encode()))

    @staticmethod
    def _stamp(path: Path) -> list[int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return [st.st_size, st.st_mtime_ns]

    # -- build / read -----------------------------------------------------------------------------------------
    def build(self, utterances: list[Utterance], progress: bool = True) -> None:
        """Compute missing or stale items. Audio that cannot be used is recorded (not raised) in the manifest."""
        manifest = self._read_manifest()
        items: dict[str, list] = manifest["items"]
        problems = {p["path"]: p for p in manifest["problems"]}
        # Fresh = same WAV size and mtime as when it was cached (or found bad): anything else is (re)computed.
        def fresh(utt: Utterance) -> bool:
            stamp = self._stamp(utt.audio_path)
            bad = problems.get(str(utt.audio_path))
            return (bad is not None and bad["stamp"] == stamp) or (utt.id in items and items[utt.id][1:] == stamp)

        todo = [u for u in utterances if not fresh(u)]
        if not todo:
            return
        # One line per build: under DDP only one process per node builds (LightningDataModule.prepare_data).
        print(f"tts_lab: caching log-mels of {len(todo)} utterances (pid {os.getpid()}) in {self.dir}", flush=True)
        logmel = LogMel(self.features)
        (self.dir / "mels").mkdir(parents=True, exist_ok=True)
        bar = tqdm(todo, desc=f"caching log-mels in {self.dir}", disable=not progress, unit="utt")
        for n, utt in enumerate(bar, 1):
            try:
                with torch.inference_mode():
                    mel = logmel(load_audio(utt.audio_path, self.features.sample_rate)).numpy()  # (T, n_mels)
            except AudioError as err:
                stamp = self._stamp(utt.audio_path)
                problems[str(utt.audio_path)] = {"path": str(utt.audio_path), "reason": _reason(err), "stamp": stamp}
                items.pop(utt.id, None)
            else:
                _atomic_write(self.mel_path(utt.id), lambda f: np.save(f, mel.astype(np.float32)))
                problems.pop(str(utt.audio_path), None)
                items[utt.id] = [int(mel.shape[0]), *self._stamp(utt.audio_path)]
            if n % _FLUSH_EVERY == 0:
                self._write_manifest({**manifest, "items": items, "problems": list(problems.values())})
        self._write_manifest({**manifest, "items": items, "problems": list(problems.values())})

    def mel_path(self, utt_id: str) -> Path:
        return self.dir / "mels" / f"{_safe_name(utt_id)}.npy"

    def index(self, utterances: list[Utterance], report: ProblemReport) -> dict[str, int]:
        """Frame counts of the usable utterances; audio problems recorded at build time go to ``report``."""
        manifest = self._read_manifest()
        bad = {p["path"]: p for p in manifest["problems"]}
        frames: dict[str, int] = {}
        for utt in utterances:
            entry = manifest["items"].get(utt.id)
            if str(utt.audio_path) in bad:
                report.add(str(utt.audio_path), None, bad[str(utt.audio_path)]["reason"])
            elif entry is None:
                raise RuntimeError(f"{utt.id} is not in the feature cache {self.dir}; was prepare_data() run?")
            else:
                frames[utt.id] = entry[0]
        return frames

    def load(self, utt_id: str) -> torch.Tensor:
        """(T, n_mels) float32."""
        return torch.from_numpy(np.load(self.mel_path(utt_id)))


def _reason(err: AudioError) -> str:
    # AudioError messages are "<path>: <reason>"; the report stores path and reason separately.
    return str(err).split(": ", 1)[-1]
