"""PostnetDataModule: paired crops that respect lengths and silence, data-fitted normalisation, whole-utterance
evaluation batches, seeded degradation, GTA folders with missing / misaligned dumps."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tts_lab.data.postnet import CropPairs, PostnetDataModule, gta_path
from tts_lab.data.postnet_transforms import silent_frames

RATE = 22050


def write_silent_corpus(root: Path, n: int = 24) -> Path:
    """LJSpeech layout; each clip is mostly digital silence with a tone burst, plus one too short and one silent."""
    wavs = root / "LJSpeech-1.1" / "wavs"
    wavs.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        total, burst = 1.4, 0.45 + 0.05 * (i % 4)
        wave = np.zeros(int(total * RATE))
        start = int(rng.uniform(0, total - burst) * RATE)
        t = np.arange(int(burst * RATE)) / RATE
        wave[start : start + len(t)] = 0.3 * np.sin(2 * np.pi * (150 + 10 * i) * t) + 0.01 * rng.standard_normal(len(t))
        if i == 0:
            wave = wave[: int(0.25 * RATE)]  # ~22 frames: shorter than the crop
        if i == 1:
            wave = np.zeros(int(total * RATE))  # nothing but silence: no acceptable crop
        sf.write(wavs / f"SL001-{i:04d}.wav", wave, RATE)
        lines.append(f"SL001-{i:04d}|clip number {i}|clip number {i}")
    (root / "LJSpeech-1.1" / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def make_dm(root, cache_dir, **kw) -> PostnetDataModule:
    args = dict(root=str(root), task="autoencoder", cache_dir=str(cache_dir), batch_size=4, eval_batch_size=3,
                crop_size=32, crops_per_utterance=3, demo=False)
    args.update(kw)
    dm = PostnetDataModule(**args)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def full_input(dm, utt_id):
    """The whole blurry input and ground truth of a training utterance."""
    pairs = dm.pairs["train"]
    index = next(i for i, ex in enumerate(pairs.examples) if ex.target.id == utt_id)
    item = pairs[index]
    return item["input"], item["target"]


def find_window(crop: torch.Tensor, mel: torch.Tensor) -> int | None:
    n = crop.shape[0]
    for start in range(mel.shape[0] - n + 1):
        if torch.equal(mel[start : start + n], crop):
            return start
    return None


def test_crops_lie_inside_valid_frames_and_are_not_silence_dominated(tmp_path, cache_dir):
    root = write_silent_corpus(tmp_path / "corpus")
    dm = make_dm(root, cache_dir, val_fraction=0.25, test_fraction=0.0, max_silence=0.5)
    reasons = dm.report.counts_by_reason()
    assert reasons.get("shorter than crop_size") == 1 and reasons.get("no crop with at most 50% silent frames") == 1
    crops: CropPairs = dm.pairs["crops"]
    kept = {ex.target.id for ex in crops.pairs.examples}
    assert "SL001-0000" not in kept and "SL001-0001" not in kept and len(kept) >= 10

    skipped = 0
    seen = 0
    for batch in dm.train_dataloader():
        k = dm.crops_per_utterance
        assert batch["input"].shape == (len(batch["ids"]) * k, 32, dm.features.n_mels)
        assert batch["target"].shape == batch["input"].shape
        silent = silent_frames(batch["target"], dm.features.silence_level, dm.silence_margin)  # (N, 32)
        assert (silent.float().mean(1) <= 0.5).all()  # never silence- (or padding-) dominated
        for j, uid in enumerate(batch["ids"]):
            x_full, y_full = full_input(dm, uid)
            for c in range(k):
                row = j * k + c
                start = find_window(batch["target"][row], y_full)  # a real window of this utterance's frames
                assert start is not None and start + 32 <= y_full.shape[0]
                torch.testing.assert_close(batch["input"][row], x_full[start : start + 32])  # pairs stay aligned
                seen += 1
        skipped += int(batch["skipped_crops"])
    assert seen == len(kept) * dm.crops_per_utterance
    assert skipped > 0  # mostly-silent clips: many candidates were rejected (and counted)


def test_crop_positions_depend_on_epoch_not_on_call(tmp_path, cache_dir, demo_root):
    dm = make_dm(demo_root, cache_dir)
    crops = dm.pairs["crops"]
    a, b, c = crops[(0, 0)], crops[(0, 0)], crops[(0, 1)]
    assert torch.equal(a["target"], b["target"]) and not torch.equal(a["target"], c["target"])


def test_crop_mels_gives_square_crops(demo_root, cache_dir):
    dm = make_dm(demo_root, cache_dir, crop_mels=32)
    batch = next(iter(dm.train_dataloader()))
    assert batch["input"].shape[1:] == (32, 32)


def test_normaliser_is_fitted_on_training_ground_truth_and_round_trips(demo_root, cache_dir):
    dm = make_dm(demo_root, cache_dir)
    norm = dm.normalizer
    assert bool(norm.fitted)
    frames = torch.cat([dm.cache.load(ex.target.id) for ex in dm.pairs["train"].examples])  # (N, n_mels)
    torch.testing.assert_close(norm.mean, frames.double().mean(0).float(), atol=1e-4, rtol=1e-5)
    z = norm.normalize(frames)
    assert float(norm.scale) not in (0.0, 1.0)
    assert (z.abs() <= 1).float().mean() > 0.99 and z.abs().max() < 3  # "about [-1, 1]" from the data's own spread
    torch.testing.assert_close(norm.denormalize(z), frames, atol=1e-4, rtol=1e-5)


def test_validation_batches_are_whole_utterances_with_fixed_degradation(demo_root, cache_dir):
    dm = make_dm(demo_root, cache_dir)
    batches = list(dm.val_dataloader())
    assert sum(len(b["ids"]) for b in batches) == len(dm.pairs["val"])
    lengths = dict(zip((ex.target.id for ex in dm.pairs["val"].examples), dm.pairs["val"].lengths))
    for batch in batches:
        assert batch["input"].shape == batch["target"].shape and batch["input"].shape[0] == len(batch["ids"])
        for b, uid in enumerate(batch["ids"]):
            n = int(batch["lengths"][b])
            assert n == lengths[uid]
            assert (batch["input"][b, n:] == dm.features.silence_level).all()
            torch.testing.assert_close(batch["target"][b, :n], dm.cache.load(uid))
    again = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(again["input"], batches[0]["input"])  # seeded per utterance: fixed inputs
    assert not torch.equal(batches[0]["input"], batches[0]["target"])


def test_a_validation_split_smaller_than_the_world_is_a_clear_error(demo_root, cache_dir):
    dm = make_dm(demo_root, cache_dir)
    n_val = len(dm.pairs["val"])
    dm._ranks = lambda: (n_val + 1, 0)  # as if n_val + 1 DDP processes shared it
    with pytest.raises(ValueError, match=rf"the val split has {n_val} utterance\(s\), fewer than the {n_val + 1}"):
        dm.val_dataloader()


def test_gta_dir_pairs_and_counted_skips(demo_root, cache_dir, tmp_path):
    dm = make_dm(demo_root, cache_dir)
    gta = tmp_path / "gta"
    gta.mkdir()
    all_examples = [ex for split in ("train", "val", "test") for ex in dm.pairs[split].examples]
    for i, ex in enumerate(all_examples):
        mel = dm.cache.load(ex.target.id).numpy() + 0.5
        if i == 0:
            continue  # missing dump
        if i == 1:
            mel = mel[:-3]  # misaligned: 3 frames short
        np.save(gta_path(gta, ex.target.id), mel.astype(np.float32))
    with pytest.warns(UserWarning, match="postnet pairs"):
        dm2 = make_dm(demo_root, cache_dir, gta_dir=str(gta))
    counts = dm2.report.counts_by_reason()
    assert counts["missing GTA mel"] == 1 and counts["GTA length mismatch"] == 1
    n_pairs = sum(len(dm2.pairs[s]) for s in ("train", "val", "test"))
    assert n_pairs == len(all_examples) - 2
    batch = next(iter(dm2.val_dataloader()))
    n = int(batch["lengths"][0])
    torch.testing.assert_close(batch["input"][0, :n], batch["target"][0, :n] + 0.5)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="none of the .* utterances has a usable GTA mel"):
        make_dm(demo_root, cache_dir, gta_dir=str(empty))


def test_predict_files_are_inputs_without_ground_truth(demo_root, cache_dir):
    wavs = sorted((Path(demo_root) / "LJSpeech-1.1" / "wavs").glob("*.wav"))[:3]
    dm = make_dm(demo_root, cache_dir, predict_files=[str(w) for w in wavs])
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert sum(len(b["ids"]) for b in batches) == 3
    assert all("target" not in b and b["input"].shape[:2] == (len(b["ids"]), int(b["lengths"].max())) for b in batches)
