"""Paired (blurry, ground-truth) mel spectrograms for the postnet GAN / WGAN.

``PostnetDataModule`` is a `SpeechDataModule` (same corpus, cache, splits, DDP-aware sampler and feature config)
whose examples are pairs:

- the **ground truth** is the corpus log-mel of an utterance (from the feature cache);
- the **blurry input** is either the utterance's teacher-forced ("GTA") mel from ``gta_dir``::

      <gta_dir>/<utterance id with / replaced by __>.npy    float32 (T, n_mels), same T and features as the corpus

  (what ``tts-lab predict`` of a Tacotron task with ``predict_mode: gta`` writes), or, with ``gta_dir: null``, an
  on-the-fly degradation of the ground truth (`degrade`: Gaussian smoothing along time and frequency plus noise),
  seeded per utterance id, so a given utterance always gets the same input (a fixed paired data set, like a dump).

Batches (all mels raw log-mels; the task normalises them with the statistics this module fits, see `normalizer`):

- training: random crops. Each utterance gives ``crops_per_utterance`` crops of ``crop_size`` frames, and of all
  mel bins unless ``crop_mels`` is set (then a random band of ``crop_mels`` bins: ``crop_mels: 64`` gives the
  literal 64x64 crops of the notes; the default keeps every bin because a bin's position on the mel axis carries
  meaning and inference runs on the whole band). Crops lie inside the valid frames (never in padding); a candidate
  with more than ``max_silence`` silent frames (`silent_frames` of the ground truth) is rejected, redrawn and
  counted (``skipped_crops``, logged by the tasks as ``train/skipped_crops``)::

      {"ids": [B], "input": (B*k, crop_size, F), "target": (B*k, crop_size, F), "skipped_crops": () long}

  Crop positions are a function of (``seed``, epoch, utterance), identical with any number of workers.
- validation / test / predict: whole utterances, padded with the silence level::

      {"ids": [B], "input": (B, T, n_mels), "target": (B, T, n_mels), "lengths": (B,)}

  (``target`` is absent for ``predict_files``, whose own mels are the inputs).

Skipped items (no GTA dump, a GTA dump whose length differs from the ground truth, an utterance shorter than
``crop_size``, or one without any crop that passes the silence test) are counted in one problem summary.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from tts_lab.data.cache import FeatureCache
from tts_lab.data.collate import _pad
from tts_lab.data.datamodule import SpeechDataModule
from tts_lab.data.dataset import Example
from tts_lab.data.postnet_transforms import MelNormalizer, degrade, sample_crop, silent_frames
from tts_lab.data.problems import ProblemReport
from tts_lab.data.sampler import BucketBatchSampler, require_shareable


def gta_path(gta_dir: str | Path, utt_id: str) -> Path:
    """Where the GTA dump of ``utt_id`` lives (CMU Arctic ids contain a ``/``)."""
    return Path(gta_dir) / f"{utt_id.replace('/', '__')}.npy"


def _seed(*parts: Any) -> int:
    """A stable 63-bit seed from any printable parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha1(":".join(map(str, parts)).encode()).digest()[:8], "big") >> 1


class BlurrySource:
    """Gives the blurry input of an utterance: its GTA dump, or a seeded degradation of the ground truth.

    Args:
        gta_dir: folder of GTA dumps, or None to degrade.
        time_sigma, freq_sigma, noise_std: `degrade` parameters (frames, mel bins, log-mel units).
        seed: degradation seed; combined with the utterance id.
    """

    def __init__(
        self, gta_dir: str | None, time_sigma: float, freq_sigma: float, noise_std: float, seed: int = 0
    ) -> None:
        self.gta_dir = gta_dir
        self.time_sigma, self.freq_sigma, self.noise_std, self.seed = time_sigma, freq_sigma, noise_std, seed

    def __call__(self, utt_id: str, target: Tensor) -> Tensor:
        """(T, n_mels) ground truth -> (T, n_mels) float32 blurry input."""
        if self.gta_dir is not None:
            return torch.from_numpy(np.load(gta_path(self.gta_dir, utt_id))).float()
        g = torch.Generator().manual_seed(_seed("degrade", self.seed, utt_id))
        return degrade(target, self.time_sigma, self.freq_sigma, self.noise_std, generator=g)


class PairedMels(Dataset):
    """Whole utterances as {"id", "input": (T, F), "target": (T, F)} (inputs only when ``source`` is None)."""

    def __init__(self, examples: list[Example], cache: FeatureCache, source: BlurrySource | None) -> None:
        self.examples, self.cache, self.source = examples, cache, source

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def lengths(self) -> list[int]:
        return [ex.frames for ex in self.examples]

    def __getitem__(self, index: int) -> dict:
        utt_id = self.examples[index].target.id
        target = self.cache.load(utt_id)  # (T, n_mels)
        return {"id": utt_id, "input": self.source(utt_id, target), "target": target}


class _MelFiles(Dataset):
    """predict_files: their own mels are the (blurry) inputs; there is no ground truth."""

    def __init__(self, items: Dataset) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        return {"id": item["id"], "input": item["mel"]}


class CropPairs(Dataset):
    """Training crops of paired mels; indexed by (utterance index, epoch) (see `_EpochTagged`).

    Args:
        pairs: the whole-utterance pairs (every one at least ``crop_size`` frames with an acceptable crop).
        crop_size: frames per crop.
        crop_mels: mel bins per crop (None: all).
        crops_per_utterance: crops drawn from each utterance.
        max_silence: largest accepted fraction of silent frames in a crop.
        silence_level, silence_margin: `silent_frames` threshold on the ground truth.
        seed: crop seed (combined with epoch and utterance id).
        max_tries: rejected draws per crop before falling back to the utterance's least silent window.
    """

    def __init__(
        self,
        pairs: PairedMels,
        crop_size: int,
        crop_mels: int | None,
        crops_per_utterance: int,
        max_silence: float,
        silence_level: float,
        silence_margin: float,
        seed: int = 0,
        max_tries: int = 20,
    ) -> None:
        self.pairs, self.crop_size, self.crop_mels, self.k = pairs, crop_size, crop_mels, crops_per_utterance
        self.max_silence, self.silence_level, self.silence_margin = max_silence, silence_level, silence_margin
        self.seed, self.max_tries = seed, max_tries

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def lengths(self) -> list[int]:
        return self.pairs.lengths

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.pairs[index]
        x, y = item["input"], item["target"]  # (T, F)
        length, n_mels = y.shape
        g = torch.Generator().manual_seed(_seed("crop", self.seed, epoch, item["id"]))
        silent = silent_frames(y, self.silence_level, self.silence_margin)  # (T,) bool
        inputs, targets, skipped = [], [], 0
        for _ in range(self.k):
            start = None
            for _ in range(self.max_tries):
                start = sample_crop(length, self.crop_size, silent, self.max_silence, generator=g, max_tries=1)
                if start is not None:
                    break
                skipped += 1
            if start is None:  # rare: fall back to the least silent window (setup checked it passes)
                start = least_silent_window(silent, self.crop_size)[0]
            f0 = 0
            if self.crop_mels is not None and self.crop_mels < n_mels:
                f0 = int(torch.randint(0, n_mels - self.crop_mels + 1, (), generator=g))
            f1 = f0 + (self.crop_mels or n_mels)
            inputs.append(x[start : start + self.crop_size, f0:f1])
            targets.append(y[start : start + self.crop_size, f0:f1])
        return {"id": item["id"], "input": torch.stack(inputs), "target": torch.stack(targets), "skipped": skipped}


def least_silent_window(silent: Tensor, size: int) -> tuple[int, float]:
    """(T,) bool silence mask -> (start, silent fraction) of the ``size``-frame window with the fewest silent frames."""
    c = torch.cat([torch.zeros(1), silent.float().cumsum(0)])  # (T + 1,)
    counts = c[size:] - c[:-size]  # (T - size + 1,) silent frames per window
    start = int(counts.argmin())
    return start, float(counts[start]) / size


class _EpochTagged(Sampler):
    """Yields the wrapped batch sampler's batches as [(index, epoch), ...] so crops depend on the epoch.

    Lightning calls ``set_epoch`` on ``dataloader.batch_sampler.sampler``: that is the wrapped sampler here.
    """

    def __init__(self, sampler: BucketBatchSampler) -> None:
        self.sampler = sampler

    def __iter__(self):
        epoch = self.sampler.epoch
        for batch in self.sampler:
            yield [(i, epoch) for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


def collate_crops(items: list[dict]) -> dict:
    return {
        "ids": [it["id"] for it in items],
        "input": torch.cat([it["input"] for it in items]),  # (B*k, crop, F)
        "target": torch.cat([it["target"] for it in items]),
        "skipped_crops": torch.tensor(sum(it["skipped"] for it in items)),
    }


def collate_utterances(items: list[dict], pad_value: float) -> dict:
    batch = {"ids": [it["id"] for it in items]}
    batch["input"], batch["lengths"] = _pad([it["input"] for it in items], pad_value)  # (B, T, F), (B,)
    if all("target" in it for it in items):
        batch["target"], _ = _pad([it["target"] for it in items], pad_value)
    return batch


class PostnetDataModule(SpeechDataModule):
    """`SpeechDataModule` of (blurry, ground truth) mel pairs (module docstring). Extra args:

    gta_dir: folder of GTA mel dumps (``<id with / -> __>.npy``); None degrades the ground truth instead.
    time_sigma, freq_sigma, noise_std: degradation (used only without ``gta_dir``), in frames, mel bins and log-mel
        units. The defaults destroy detail for good, as an upstream model's over-smoothing does; a milder blur
        (e.g. 1.5, 1.0, 0.05) is almost inverted by an L1-trained U-Net alone (gv_ratio ~0.99 on the demo).
    degrade_seed: seed of the degradation noise (per utterance id).
    crop_size: frames per training crop.
    crop_mels: mel bins per training crop (None: all bins; 64 gives 64x64 crops).
    crops_per_utterance: crops per utterance per batch (a batch holds ``batch_size * crops_per_utterance`` crops).
    max_silence: crops with a larger fraction of silent frames are skipped (and counted).
    silence_margin: a frame is silent when its mean log-mel is below ``silence_level + silence_margin``.
    normalizer_percentile, normalizer_max_frames: `MelNormalizer` fit on the training split's ground truth.
    Other args: `SpeechDataModule` (``task`` is irrelevant here; only the mels are used).
    """

    def __init__(
        self,
        gta_dir: str | None = None,
        time_sigma: float = 3.0,
        freq_sigma: float = 3.0,
        noise_std: float = 0.3,
        degrade_seed: int = 0,
        crop_size: int = 64,
        crop_mels: int | None = None,
        crops_per_utterance: int = 4,
        max_silence: float = 0.5,
        silence_margin: float = 2.0,
        normalizer_percentile: float = 99.9,
        normalizer_max_frames: int = 100_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if crop_size < 1 or crops_per_utterance < 1:
            raise ValueError(f"crop_size and crops_per_utterance must be positive, got {crop_size}, {crops_per_utterance}")
        if crop_mels is not None and not 1 <= crop_mels <= self.features.n_mels:
            raise ValueError(f"crop_mels must be in [1, n_mels={self.features.n_mels}], got {crop_mels}")
        if not 0 <= max_silence <= 1:
            raise ValueError(f"max_silence must be in [0, 1], got {max_silence}")
        self.gta_dir = gta_dir
        self.source = BlurrySource(gta_dir, time_sigma, freq_sigma, noise_std, degrade_seed)
        self.crop_size, self.crop_mels, self.crops_per_utterance = crop_size, crop_mels, crops_per_utterance
        self.max_silence, self.silence_margin = max_silence, silence_margin
        self.normalizer_percentile, self.normalizer_max_frames = normalizer_percentile, normalizer_max_frames
        self.pairs: dict[str, Dataset] = {}
        self._normalizer: MelNormalizer | None = None
        self._pair_report = ProblemReport("postnet pairs")
        self._reported = 0

    # -- examples ---------------------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.predict_files and "predict" in self.datasets and "predict" not in self.pairs:
            self.pairs["predict"] = _MelFiles(self.datasets["predict"])
        if "train" not in self.pairs:
            self._pair_report = ProblemReport(f"{self.corpus} at {self.root} (postnet pairs)", strict=self.strict)
            total = matched = 0
            for split in ("train", "val", "test"):
                examples = self.datasets[split].examples
                keep = self._paired(examples, self._pair_report)
                total, matched = total + len(examples), matched + len(keep)
                self.pairs[split] = PairedMels(keep, self.cache, self.source)
            if total and not matched:
                raise ValueError(
                    f"none of the {total} utterances has a usable GTA mel in {self.gta_dir} (expected "
                    "<gta_dir>/<utterance id with / replaced by __>.npy with the corpus mel's frame count)"
                )
            for split in ("train", "val"):
                if len(self.datasets[split]) and not len(self.pairs[split]):
                    raise ValueError(f"no {split} utterance has a usable GTA mel in {self.gta_dir}")
        if stage in (None, "fit"):
            self._scan_train()
        self._warn_problems()

    def _paired(self, examples: list[Example], report: ProblemReport) -> list[Example]:
        """Examples with a usable blurry input: all when degrading; with GTA, those with a same-length dump."""
        if self.gta_dir is None:
            return list(examples)
        keep = []
        for ex in examples:
            path = gta_path(self.gta_dir, ex.target.id)
            if not path.is_file():
                report.add(path, None, "missing GTA mel")
                continue
            try:
                shape = np.load(path, mmap_mode="r").shape
            except (OSError, ValueError) as err:
                report.add(path, None, f"unreadable GTA mel: {err}")
                continue
            if len(shape) != 2 or shape[1] != self.features.n_mels:
                report.add(path, None, f"GTA mel shape: {tuple(shape)}, expected (T, {self.features.n_mels})")
            elif shape[0] != ex.frames:
                report.add(path, None, f"GTA length mismatch: {shape[0]} frames vs {ex.frames} in the ground truth")
            else:
                keep.append(ex)
        return keep

    def _scan_train(self) -> None:
        """One pass over the training ground truth: fit the normaliser, keep utterances that can give a crop."""
        if self._normalizer is not None:
            return
        report = self._pair_report
        usable: list[Example] = []

        def ground_truth():
            for ex in self.pairs["train"].examples:
                mel = self.cache.load(ex.target.id)  # (T, n_mels)
                silent = silent_frames(mel, self.features.silence_level, self.silence_margin)  # (T,)
                if ex.frames < self.crop_size:
                    report.add(ex.target.source, None, f"shorter than crop_size: {ex.frames} < {self.crop_size} frames")
                elif least_silent_window(silent, self.crop_size)[1] > self.max_silence:
                    report.add(ex.target.source, None, f"no crop with at most {self.max_silence:.0%} silent frames")
                else:
                    usable.append(ex)
                yield mel  # every training utterance counts for the statistics

        normalizer = MelNormalizer(self.features.n_mels, self.normalizer_percentile)
        normalizer.fit(ground_truth(), max_frames=self.normalizer_max_frames, seed=self.split_seed)
        if not usable:
            raise ValueError(f"{self.corpus} at {self.root}: no training utterance gives a {self.crop_size}-frame crop")
        self.pairs["crops"] = CropPairs(
            PairedMels(usable, self.cache, self.source), self.crop_size, self.crop_mels, self.crops_per_utterance,
            self.max_silence, self.features.silence_level, self.silence_margin, seed=self.seed,
        )
        self._normalizer = normalizer
        kind = f"GTA mels from {self.gta_dir}" if self.gta_dir else "degraded ground truth"
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.pairs.items() if k != "crops")
        rank_zero_info(f"postnet pairs ({kind}): {sizes}; {len(usable)} training utterances give crops")

    def _warn_problems(self) -> None:
        """Skipped pairs go into ``self.report`` (with the corpus problems) and are summarised once."""
        report = self._pair_report
        if len(report) > self._reported:
            if self.report is not None:
                self.report.problems += report.problems[self._reported :]
            self._reported = len(report)
            rank_zero_warn(report.summary())

    @property
    def normalizer(self) -> MelNormalizer:
        """`MelNormalizer` fitted on the training split's ground-truth mels (fitted on first use)."""
        if self._normalizer is None:
            if "train" not in self.pairs:
                self.setup("fit")
            self._scan_train()
            self._warn_problems()
        return self._normalizer

    # -- loaders ----------------------------------------------------------------------------------------------
    def _pair_loader(self, split: str) -> DataLoader:
        dataset = self.pairs[split]
        world, rank = self._ranks()
        require_shareable(len(dataset), world, split)
        if isinstance(dataset, PairedMels):
            sampler = BucketBatchSampler(
                dataset.lengths, self.eval_batch_size, num_replicas=world, rank=rank, shuffle=False, even=False
            )
        else:  # predict files: in order, dealt out to ranks without repeats
            ids = list(range(rank, len(dataset), world))
            sampler = [ids[i : i + self.eval_batch_size] for i in range(0, len(ids), self.eval_batch_size)]
        return DataLoader(
            dataset, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=self.collate_utterances,
            persistent_workers=self.num_workers > 0,
        )

    def collate_utterances(self, items: list[dict]) -> dict:
        return collate_utterances(items, self.features.silence_level)

    def train_dataloader(self) -> DataLoader:
        self.normalizer  # noqa: B018 -- makes sure the training split was scanned
        crops: CropPairs = self.pairs["crops"]
        world, rank = self._ranks()
        batches = BucketBatchSampler(
            crops.lengths, self.batch_size, num_replicas=world, rank=rank, shuffle=True, seed=self.seed, even=True
        )
        return DataLoader(
            crops, batch_sampler=_EpochTagged(batches), num_workers=self.num_workers, collate_fn=collate_crops,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._pair_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._pair_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._pair_loader("predict" if self.predict_files else self.predict_split)
