"""One LightningDataModule for every task on either corpus.

``corpus`` picks the on-disk layout under ``root`` (as torchaudio's datasets name it): ``ljspeech`` expects
``root/LJSpeech-1.1/``, ``cmu_arctic`` expects ``root/cmu_us_<spk>_arctic/``. ``task`` picks what an example is:

- ``asr``: mel -> text (every speaker found unless ``speakers`` says otherwise);
- ``tts``: text -> mel;
- ``autoencoder``: mel -> the same mel (``src_mel`` is the target itself);
- ``vc``: ``source_speaker``'s mel -> ``target_speaker``'s mel of the same prompt (parallel CMU Arctic).

Batches are dicts (see `tts_lab.data.collate.collate_speech`). With ``demo=True`` and no corpus under ``root``,
the built-in demo corpus is generated there first, so every config runs out of the box.

The training loader is a `ResumableDataLoader`: checkpoints record the sampler position, and ``--ckpt_path`` resumes
mid-epoch with exactly the batches the interrupted run had not yet trained on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import BatchSampler, DataLoader, Dataset

from tts_lab.audio.features import FeatureConfig, LogMel
from tts_lab.audio.io import AudioError, load_audio
from tts_lab.data.cache import FeatureCache
from tts_lab.data.collate import collate_speech
from tts_lab.data.corpora import LJSPEECH_DIR, Utterance, arctic_speakers, pair_by_prompt, read_cmu_arctic, read_ljspeech
from tts_lab.data.dataset import Example, SpeechDataset
from tts_lab.data.demo import ensure_demo_corpus
from tts_lab.data.download import download_corpus
from tts_lab.data.problems import ProblemReport
from tts_lab.data.sampler import BucketBatchSampler, require_shareable
from tts_lab.data.splits import Split, split_of
from tts_lab.text import ASR_SYMBOLS, TTS_SYMBOLS, Tokenizer

Task = Literal["asr", "tts", "autoencoder", "vc"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("TTS_LAB_CACHE", Path.home() / ".cache" / "tts_lab"))


class SpeechDataModule(pl.LightningDataModule):
    """Args:
    root: folder that holds the corpus folder(s).
    corpus: on-disk layout under ``root``.
    task: what an example is (see module docstring).
    speakers: CMU Arctic speakers to use (``None`` = all found); ignored for LJSpeech.
    source_speaker, target_speaker: the voice-conversion pair (task ``vc``).
    features: log-mel configuration; linked to the model so both always agree.
    symbols: the tokenizer's symbol set (``None``: letters+space+apostrophe for asr, plus punctuation otherwise).
    batch_size, eval_batch_size: utterances per batch for training and for val/test/predict.
    num_workers: DataLoader workers.
    val_fraction, test_fraction, split_seed: deterministic split by hash of the prompt id (see splits.py).
    max_frames: utterances longer than this many frames are skipped and counted (``None`` = keep all).
    seed: shuffling seed of the batch sampler (epoch-dependent, identical on every rank).
    cache_dir: where log-mels are cached (default ``$TTS_LAB_CACHE`` or ``~/.cache/tts_lab``).
    demo: generate the demo corpus into ``root`` when the corpus is absent.
    download: download the corpus from its official URL into ``root`` when absent (checksum-verified).
    strict: turn the first bad item into an error naming its file and line instead of a counted skip.
    predict_split: the split ``predict`` runs on, unless ``predict_files`` lists audio files.
    predict_files: audio files to run ``predict`` on (e.g. to transcribe).
    """

    def __init__(
        self,
        root: str = "data/demo",
        corpus: Literal["ljspeech", "cmu_arctic"] = "ljspeech",
        task: Task = "asr",
        speakers: list[str] | None = None,
        source_speaker: str | None = None,
        target_speaker: str | None = None,
        features: FeatureConfig = FeatureConfig(),
        symbols: str | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        split_seed: int = 0,
        max_frames: int | None = None,
        seed: int = 0,
        cache_dir: str | None = None,
        demo: bool = True,
        download: bool = False,
        strict: bool = False,
        predict_split: Split = "test",
        predict_files: list[str] | None = None,
    ) -> None:
        super().__init__()
        if task == "vc" and (corpus != "cmu_arctic" or not source_speaker or not target_speaker):
            raise ValueError("task 'vc' needs corpus 'cmu_arctic' and both source_speaker and target_speaker")
        self.root = Path(root)
        self.corpus = corpus
        self.task = task
        self.speakers = speakers
        self.source_speaker, self.target_speaker = source_speaker, target_speaker
        self.features = features
        self.tokenizer = Tokenizer(symbols or (ASR_SYMBOLS if task == "asr" else TTS_SYMBOLS))
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers = num_workers
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.max_frames = max_frames
        self.seed = seed
        self.demo, self.download, self.strict = demo, download, strict
        self.predict_split, self.predict_files = predict_split, predict_files
        root_key = hashlib.sha1(str(self.root.resolve()).encode()).hexdigest()[:8]
        self.cache = FeatureCache(cache_dir or default_cache_dir(), f"{corpus}-{root_key}", features)
        self.datasets: dict[str, Dataset] = {}
        self.report: ProblemReport | None = None

    # -- corpus -----------------------------------------------------------------------------------------------
    def _corpus_present(self) -> bool:
        if self.corpus == "ljspeech":
            return (self.root / LJSPEECH_DIR / "metadata.csv").is_file()
        return bool(self.root.is_dir() and arctic_speakers(self.root))

    def _needed_speakers(self) -> list[str] | None:
        if self.task == "vc":
            return sorted({self.source_speaker, self.target_speaker})
        return self.speakers

    def _report(self) -> ProblemReport:
        return ProblemReport(f"{self.corpus} at {self.root}", strict=self.strict)

    def _read_corpus(self, report: ProblemReport) -> list[Utterance]:
        if self.corpus == "ljspeech":
            return read_ljspeech(self.root, report)
        return read_cmu_arctic(self.root, report, speakers=self._needed_speakers())

    def prepare_data(self) -> None:
        """Runs on one process per node (Lightning): fetch or generate the corpus, fill the feature cache."""
        if not self._corpus_present():
            if self.download:
                download_corpus(self.corpus, self.root, **({"speakers": self._needed_speakers()} if self.corpus == "cmu_arctic" and self._needed_speakers() else {}))
            elif self.demo:
                ensure_demo_corpus(self.root)
        report = self._report()
        self.cache.build(self._read_corpus(report))

    # -- examples ---------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Runs on every process: index the cached corpus, encode texts, split, report skipped items once."""
        if stage == "predict" and self.predict_files and "predict" not in self.datasets:
            self.datasets["predict"] = _audio_file_dataset(self.predict_files, self.features, self._report())
        if "train" in self.datasets:
            return
        report = self._report()
        utterances = self._read_corpus(report)
        frames = self.cache.index(utterances, report)
        usable: list[Utterance] = []
        tokens: dict[str, tuple[int, ...]] = {}
        for utt in utterances:
            if utt.id not in frames:
                continue
            ids = tuple(self.tokenizer.encode(utt.text))
            if not ids:
                report.add(utt.source, None, f"empty transcript after normalisation: {utt.text!r}")
            elif self.max_frames is not None and frames[utt.id] > self.max_frames:
                report.add(utt.source, None, f"too long: {frames[utt.id]} frames > max_frames={self.max_frames}")
            else:
                usable.append(utt)
                tokens[utt.id] = ids
        examples = self._examples(usable, tokens, frames)
        by_split: dict[str, list[Example]] = {"train": [], "val": [], "test": []}
        for ex in examples:
            by_split[split_of(ex.target.prompt_id, self.val_fraction, self.test_fraction, self.split_seed)].append(ex)
        for name, exs in by_split.items():
            if not exs and (name == "train" or (name == "val" and self.val_fraction > 0)):
                raise ValueError(f"{self.corpus} at {self.root}: the {name} split is empty ({len(examples)} usable examples)")
            self.datasets[name] = SpeechDataset(exs, self.cache)
        self.report = report
        if len(report):
            rank_zero_warn(report.summary())
        if self.tokenizer.dropped:
            rank_zero_warn(f"{self.corpus} at {self.root}: {self.tokenizer.unknown_report()}")
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.datasets.items())
        rank_zero_info(f"{self.corpus} ({self.task}) at {self.root}: {sizes} examples")

    def _examples(self, utts: list[Utterance], tokens: dict, frames: dict) -> list[Example]:
        if self.task == "vc":
            pairs = pair_by_prompt(utts, self.source_speaker, self.target_speaker)
            return [Example(tgt, tokens[tgt.id], frames[tgt.id], source=src) for src, tgt in pairs]
        if self.task == "tts" and self.corpus == "cmu_arctic" and self.speakers is None and len({u.speaker for u in utts}) > 1:
            raise ValueError("task 'tts' on several CMU Arctic speakers: pick one with --data.speakers=[SPK]")
        own = self.task == "autoencoder"
        return [Example(u, tokens[u.id], frames[u.id], source=u if own else None) for u in utts]

    # -- loaders ----------------------------------------------------------------------------------------------
    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def _train_batches_done(self) -> int:
        """Training batches this rank has finished in the current epoch (Lightning's own progress counter)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.datasets[split]
        world, rank = self._ranks()
        if not train:
            require_shareable(len(dataset), world, split)
        if isinstance(dataset, SpeechDataset):
            sampler = BucketBatchSampler(
                dataset.lengths, self.batch_size if train else self.eval_batch_size,
                num_replicas=world, rank=rank, shuffle=train, seed=self.seed, even=train,
            )
        else:  # predict files: in order, dealt out to ranks without repeats
            sampler = BatchSampler(range(rank, len(dataset), world), self.eval_batch_size, drop_last=False)
        kwargs = dict(batch_sampler=sampler, num_workers=self.num_workers, collate_fn=self.collate,
                      persistent_workers=self.num_workers > 0)
        if train:
            if self.trainer is not None:  # workers draw batches before Lightning's first set_epoch: start right
                sampler.set_epoch(self.trainer.current_epoch)
            return ResumableDataLoader(dataset, batches_done=self._train_batches_done, **kwargs)
        return DataLoader(dataset, **kwargs)

    def collate(self, items: list[dict]) -> dict:
        return collate_speech(items, mel_pad_value=self.features.silence_level)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict" if self.predict_files else self.predict_split, train=False)


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `BucketBatchSampler` that Lightning checkpoints and restores.

    Lightning's fit loop stores ``state_dict()`` of every training loader that has one in the checkpoint
    (``loops.fit_loop.state_dict.combined_loader``) and, when ``--ckpt_path`` resumes an unfinished epoch, calls
    ``load_state_dict()`` before iterating. The state is the sampler's position: its epoch and the batches trained
    on so far, read from Lightning's progress counter (``batches_done``), not from the iterator, which workers and
    prefetching run ahead of.
    """

    def __init__(self, *args, batches_done: Callable[[], int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches_done = batches_done

    def state_dict(self) -> dict:
        return self.batch_sampler.state_at(self.batches_done())

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.resume(state)


class _AudioFiles(Dataset):
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def _audio_file_dataset(paths: list[str], features: FeatureConfig, report: ProblemReport) -> _AudioFiles:
    """Arbitrary audio files (e.g. to transcribe), featurised up front so a bad file is a counted skip."""
    logmel = LogMel(features)
    items = []
    for path in paths:
        try:
            with torch.inference_mode():
                mel = logmel(load_audio(path, features.sample_rate))
        except AudioError as err:
            report.add(path, None, str(err).split(": ", 1)[-1])
            continue
        items.append({"id": str(path), "speaker": "", "text": "", "tokens": torch.zeros(0, dtype=torch.long), "mel": mel})
    if len(report):
        rank_zero_warn(report.summary())
    if not items:
        raise ValueError(f"none of the {len(paths)} predict_files could be read")
    return _AudioFiles(items)
