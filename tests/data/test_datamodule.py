from types import SimpleNamespace

import pytest
import torch

from tts_lab.audio.features import FeatureConfig
from tts_lab.data.datamodule import SpeechDataModule
from tts_lab.data.problems import DataError
from tests.data.corpus_builders import write_lj

FEATS = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, f_max=8000.0)


def make(root, cache_dir, **kw) -> SpeechDataModule:
    dm = SpeechDataModule(root=str(root), features=FEATS, cache_dir=str(cache_dir), demo=False, batch_size=4, **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_bad_items_are_skipped_and_reported_once(tmp_path, cache_dir, recwarn):
    root = write_lj(tmp_path / "c", n_good=12, bad=True)
    dm = make(root, cache_dir, val_fraction=0.2, test_fraction=0.0)
    summary = [str(w.message) for w in recwarn if ": skipped " in str(w.message)]
    assert len(summary) == 1  # ONE summary, not one warning per item
    counts = dm.report.counts_by_reason()
    assert sum(counts.values()) == 8, counts
    for kind in ["malformed", "missing audio", "empty transcript", "not valid UTF-8", "zero-length audio", "unreadable audio"]:
        assert any(kind in k for k in counts), (kind, counts)
    assert "LJ004-0005" in summary[0] or any("LJ004-0005" in str(p) or "###" in p.reason for p in dm.report.problems)
    used = {ex.target.id for split in ("train", "val", "test") for ex in dm.datasets[split].examples}
    # Every good item and every odd-but-valid format (stereo, 16 kHz, 8/24-bit, float) is kept.
    assert {f"LJ001-{i:04d}" for i in range(12)} | {f"LJ002-000{i}" for i in range(1, 6)} == used


def test_strict_mode_names_file_and_line(tmp_path, cache_dir):
    root = write_lj(tmp_path / "c", n_good=3, bad=True)
    dm = SpeechDataModule(root=str(root), features=FEATS, cache_dir=str(cache_dir), demo=False, strict=True)
    with pytest.raises(DataError, match=r"metadata\.csv:\d+: "):
        dm.prepare_data()


def test_missing_corpus_is_a_clear_error(tmp_path, cache_dir):
    dm = SpeechDataModule(root=str(tmp_path / "nowhere"), features=FEATS, cache_dir=str(cache_dir), demo=False)
    with pytest.raises(DataError, match="LJSpeech-1.1"):
        dm.prepare_data()


def test_asr_batches(demo_root, cache_dir):
    dm = make(demo_root, cache_dir, task="asr")
    batch = next(iter(dm.train_dataloader()))
    B = len(batch["ids"])
    assert batch["mel"].shape[0] == B and batch["mel"].shape[2] == 40
    assert batch["mel_lengths"].max() == batch["mel"].shape[1]
    assert batch["tokens"].shape == (B, int(batch["token_lengths"].max()))
    # Padding is silence, text round-trips through the tokenizer.
    short = int(batch["mel_lengths"].argmin())
    assert torch.all(batch["mel"][short, batch["mel_lengths"][short] :] == FEATS.silence_level)
    assert dm.tokenizer.decode(batch["tokens"][0, : batch["token_lengths"][0]]) == dm.tokenizer.decode(dm.tokenizer.encode(batch["texts"][0]))
    assert "src_mel" not in batch


def test_an_eval_split_smaller_than_the_world_is_a_clear_error(demo_root, cache_dir):
    dm = make(demo_root, cache_dir, task="asr")
    n_val = len(dm.datasets["val"])
    dm.trainer = SimpleNamespace(world_size=n_val + 1, global_rank=0)
    with pytest.raises(ValueError, match=rf"the val split has {n_val} utterance\(s\), fewer than the {n_val + 1} processes"
                                         ".*larger val_fraction"):
        dm.val_dataloader()


def test_autoencoder_and_vc_examples(demo_root, cache_dir):
    ae = make(demo_root, cache_dir, task="autoencoder")
    batch = next(iter(ae.train_dataloader()))
    assert torch.equal(batch["src_mel"], batch["mel"])
    vc = make(demo_root, cache_dir, task="vc", corpus="cmu_arctic", source_speaker="dm1", target_speaker="df1")
    for ex in vc.datasets["train"].examples:
        assert ex.source.speaker == "dm1" and ex.target.speaker == "df1" and ex.source.prompt_id == ex.target.prompt_id
    batch = next(iter(vc.train_dataloader()))
    assert batch["src_mel"].shape[0] == batch["mel"].shape[0]
    assert set(batch["speakers"]) == {"df1"}


def test_splits_are_deterministic_disjoint_and_prompt_level(demo_root, cache_dir):
    a = make(demo_root, cache_dir, task="asr", corpus="cmu_arctic", val_fraction=0.2, test_fraction=0.2)
    b = make(demo_root, cache_dir, task="asr", corpus="cmu_arctic", val_fraction=0.2, test_fraction=0.2)
    prompts = {}
    for split in ("train", "val", "test"):
        ids = [ex.target.id for ex in a.datasets[split].examples]
        assert ids == [ex.target.id for ex in b.datasets[split].examples]
        prompts[split] = {ex.target.prompt_id for ex in a.datasets[split].examples}
    assert not (prompts["train"] & prompts["val"]) and not (prompts["train"] & prompts["test"])
    speakers = {ex.target.speaker for ex in a.datasets["train"].examples}
    assert speakers == {"dm1", "df1"}  # ASR uses every speaker found


def test_vc_needs_arctic_and_both_speakers():
    with pytest.raises(ValueError, match="source_speaker"):
        SpeechDataModule(task="vc", corpus="cmu_arctic", source_speaker="dm1")


def test_predict_files_featurised_and_bad_ones_counted(tmp_path, cache_dir, demo_root):
    good = sorted((demo_root / "LJSpeech-1.1" / "wavs").glob("*.wav"))[:2]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    dm = make(demo_root, cache_dir, predict_files=[str(good[0]), str(bad), str(good[1])])
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert [i for b in batches for i in b["ids"]] == [str(good[0]), str(good[1])]
