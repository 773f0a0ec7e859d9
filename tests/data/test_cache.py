import numpy as np
import pytest

from tts_lab.audio.features import FeatureConfig
from tts_lab.data.cache import FeatureCache
from tts_lab.data.corpora import read_ljspeech
from tts_lab.data.problems import ProblemReport
from tests.data.corpus_builders import write_lj

FEATS = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, f_max=8000.0)


@pytest.fixture()
def corpus(tmp_path):
    root = write_lj(tmp_path / "corpus", n_good=4, bad=False)
    return read_ljspeech(root, ProblemReport("t"))


def mtimes(cache: FeatureCache) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (cache.dir / "mels").glob("*.npy")}


def test_build_then_reuse_without_recomputing(tmp_path, corpus):
    cache = FeatureCache(tmp_path / "c", "lj", FEATS)
    cache.build(corpus, progress=False)
    frames = cache.index(corpus, ProblemReport("t"))
    assert len(frames) == 4
    mel = cache.load(corpus[0].id)
    assert mel.shape == (frames[corpus[0].id], 40) and mel.dtype.is_floating_point
    before = mtimes(cache)
    FeatureCache(tmp_path / "c", "lj", FEATS).build(corpus, progress=False)
    assert mtimes(cache) == before  # nothing recomputed


def test_feature_change_invalidates(tmp_path, corpus):
    a = FeatureCache(tmp_path / "c", "lj", FEATS)
    a.build(corpus, progress=False)
    b = FeatureCache(tmp_path / "c", "lj", FeatureConfig(sample_rate=16000, n_fft=512, hop_length=80, n_mels=40, f_max=8000.0))
    assert b.dir != a.dir
    with pytest.raises(RuntimeError, match="prepare_data"):
        b.index(corpus, ProblemReport("t"))  # never silently served the old features
    b.build(corpus, progress=False)
    assert b.load(corpus[0].id).shape[0] > a.load(corpus[0].id).shape[0]  # hop halved: twice the frames


def test_changed_wav_is_recomputed(tmp_path, corpus):
    cache = FeatureCache(tmp_path / "c", "lj", FEATS)
    cache.build(corpus, progress=False)
    before = mtimes(cache)
    import soundfile as sf

    sf.write(corpus[1].audio_path, np.zeros(8000) + 0.1, 22050)
    cache.build(corpus, progress=False)
    after = mtimes(cache)
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {f"{corpus[1].id}.npy"}


def test_killed_build_leaves_nothing_trusted_and_resumes(tmp_path, corpus, monkeypatch):
    cache = FeatureCache(tmp_path / "c", "lj", FEATS)
    calls = {"n": 0}
    real_save = np.save

    def dying_save(f, arr):  # the 3rd write dies half-way, like a killed process
        calls["n"] += 1
        if calls["n"] == 3:
            f.write(b"\x93NUMPY half")
            raise KeyboardInterrupt
        real_save(f, arr)

    monkeypatch.setattr(np, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        cache.build(corpus, progress=False)
    monkeypatch.setattr(np, "save", real_save)
    assert not list((cache.dir / "mels").glob("*.tmp")) and len(list((cache.dir / "mels").glob("*.npy"))) == 2
    assert not cache.manifest_path.exists() or len(__import__("json").loads(cache.manifest_path.read_text())["items"]) < 4
    with pytest.raises(RuntimeError):
        cache.index(corpus, ProblemReport("t"))  # the unfinished cache is not trusted
    cache.build(corpus, progress=False)
    assert len(cache.index(corpus, ProblemReport("t"))) == 4
    assert all(cache.load(u.id).shape[1] == 40 for u in corpus)


def test_bad_audio_is_recorded_once_and_reported_on_every_index(tmp_path):
    root = write_lj(tmp_path / "corpus", n_good=2, bad=True)
    utts = read_ljspeech(root, ProblemReport("t"))
    cache = FeatureCache(tmp_path / "c", "lj", FEATS)
    cache.build(utts, progress=False)
    for _ in range(2):
        report = ProblemReport("t")
        frames = cache.index(utts, report)
        reasons = report.counts_by_reason()
        assert sum(reasons.values()) == 3 and "zero-length audio" in reasons
        assert len(frames) == len(utts) - 3
