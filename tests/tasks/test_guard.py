"""Non-finite losses skip their update on every rank, are counted and logged, and stop the run when they persist."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from tts_lab.audio.features import FeatureConfig
from tts_lab.models import CTCAcousticModel
from tts_lab.tasks import CTCTask
from tts_lab.tasks.guard import NonFiniteGuard, NonFiniteLossError
from tts_lab.text import ASR_SYMBOLS, Tokenizer

FEATS = FeatureConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, f_max=8000.0)


def tiny_task(**kw) -> CTCTask:
    torch.manual_seed(0)
    net = functools.partial(CTCAcousticModel, conv_channels=16, hidden=16, num_layers=1, subsample=2, dropout=0.0)
    return CTCTask(network=net, features=FEATS, tokenizer=Tokenizer(ASR_SYMBOLS), **kw)


def batches(task: CTCTask, n: int, prefix: str = "utt") -> list[dict]:
    g = torch.Generator().manual_seed(0)
    out = []
    for k in range(n):
        texts = ["abc", "hello"]
        tokens, token_lengths = task.tokenizer.pad_batch([task.tokenizer.encode(t) for t in texts])
        out.append({"ids": [f"{prefix}{k}a", f"{prefix}{k}b"], "texts": texts, "tokens": tokens,
                    "token_lengths": token_lengths, "mel": torch.randn(2, 60, 40, generator=g),
                    "mel_lengths": torch.tensor([40, 60])})
    return out


def poison(monkeypatch, bad_steps: set[int] | None) -> None:
    """Make the training loss NaN (through the graph, so gradients are NaN too) at ``bad_steps`` (None: always)."""
    original = CTCTask._loss

    def _loss(self, batch):
        loss, log_probs, lengths = original(self, batch)
        if self.training and (bad_steps is None or self.trainer.global_step in bad_steps):
            loss = loss * float("nan")
        return loss, log_probs, lengths

    monkeypatch.setattr(CTCTask, "_loss", _loss)


class Snapshots(pl.Callback):
    """Weights and optimiser state before and after every training batch."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    @staticmethod
    def _state(module, trainer) -> dict:
        opt = trainer.optimizers[0].state_dict()["state"]
        return {"weights": {k: v.clone() for k, v in module.state_dict().items()},
                "opt": {k: {n: t.clone() if torch.is_tensor(t) else t for n, t in s.items()} for k, s in opt.items()}}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.rows.append({"before": self._state(module, trainer)})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.rows[-1]["after"] = self._state(module, trainer)
        self.rows[-1]["skipped"] = float(trainer.callback_metrics["train/skipped_nonfinite"])


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else
                                        (same(a[k], b[k]) if isinstance(a[k], dict) else a[k] == b[k]) for k in a)


def params(task: CTCTask, state: dict) -> dict:
    """The trainable weights of a snapshot (BatchNorm statistics move in every forward pass, skipped or not)."""
    names = {name for name, _ in task.named_parameters()}
    return {k: v for k, v in state["weights"].items() if k in names}


def trainer(tmp_path, callbacks=(), **kw) -> pl.Trainer:
    kw.setdefault("gradient_clip_val", 1.0)
    return pl.Trainer(accelerator="cpu", devices=1, logger=pl.loggers.CSVLogger(tmp_path), enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
                      log_every_n_steps=1, **kw)


def test_a_nan_loss_skips_its_update_and_is_counted_and_logged(tmp_path, monkeypatch, caplog):
    poison(monkeypatch, bad_steps={1})
    task, snaps = tiny_task(), Snapshots()
    data = batches(task, 4)
    t = trainer(tmp_path, [snaps], max_steps=4)
    t.fit(task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    assert [r["skipped"] for r in snaps.rows] == [0, 1, 1, 1]
    nan_step = snaps.rows[1]
    assert same(params(task, nan_step["before"]), params(task, nan_step["after"]))  # weights untouched ...
    assert same(nan_step["before"]["opt"], nan_step["after"]["opt"])  # ... and Adam's moments and step counts too
    for row in (snaps.rows[0], snaps.rows[2]):  # finite steps do update
        assert not same(params(task, row["before"]), params(task, row["after"]))
    assert all(torch.isfinite(v).all() for v in task.state_dict().values())
    assert "utt1a, utt1b" in caplog.text  # the warning names the utterances
    metrics = (Path(t.logger.log_dir) / "metrics.csv").read_text()
    assert "train/skipped_nonfinite" in metrics.splitlines()[0]


def test_repeated_nan_losses_stop_with_the_utterance_ids(tmp_path, monkeypatch):
    poison(monkeypatch, bad_steps=None)
    task = tiny_task(max_nonfinite=3)
    data = batches(task, 6)
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row") as err:
        trainer(tmp_path, max_steps=6).fit(task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    message = str(err.value)
    assert "utt2a, utt2b" in message  # the batch it stopped on
    assert "utt0a" in message and "utt1b" in message  # and the ones before it
    assert task.guard.skipped == 3


def test_a_finite_loss_resets_the_run_of_bad_ones(tmp_path, monkeypatch):
    poison(monkeypatch, bad_steps={0, 1, 3, 4})
    task = tiny_task(max_nonfinite=3)
    trainer(tmp_path, max_steps=6).fit(task, train_dataloaders=torch.utils.data.DataLoader(batches(task, 6), batch_size=None))
    assert task.guard.skipped == 4 and task.guard.consecutive == 0


def test_nan_inputs_that_poison_batchnorm_statistics_stop_at_once(tmp_path):
    task = tiny_task()
    data = batches(task, 4)
    data[1]["mel"][0, 5, 3] = float("nan")
    with pytest.raises(NonFiniteLossError, match="buffers .*running_mean.* utt1a, utt1b"):
        trainer(tmp_path, max_steps=4).fit(task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))


class ManualTask(pl.LightningModule):
    """Manual optimisation (as in the postnet GANs): a skipped check means no backward and no step."""

    def __init__(self, bad_steps: set[int]) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.layer = torch.nn.Linear(3, 1)
        self.guard = NonFiniteGuard(max_consecutive=2)
        self.bad_steps, self.weights = bad_steps, []

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        loss = self.layer(batch["x"]).pow(2).mean()
        if batch_idx in self.bad_steps:
            loss = loss * float("inf")
        if not self.guard.check(loss, batch, self):
            self.weights.append(self.layer.weight.detach().clone())
            return None
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.weights.append(self.layer.weight.detach().clone())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.1)


def test_manual_optimisation_skips_its_own_backward_and_step(tmp_path):
    data = [{"ids": [f"m{k}"], "x": torch.randn(4, 3)} for k in range(4)]
    task = ManualTask(bad_steps={1})
    trainer(tmp_path, max_steps=4, gradient_clip_val=None).fit(
        task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
    assert torch.equal(task.weights[0], task.weights[1]) and not torch.equal(task.weights[1], task.weights[2])
    assert task.guard.skipped == 1


def test_guard_arguments():
    with pytest.raises(ValueError):
        NonFiniteGuard(max_consecutive=0)


DDP_SCRIPT = """
import json, os, sys
import pytorch_lightning as pl
import torch
from tests.tasks.test_guard import tiny_task, batches, poison_for_ddp
from tts_lab.tasks.guard import NonFiniteLossError

poison_for_ddp(bad_rank=1, bad_steps={1, 3, 4})  # rank 1 only: one NaN, a finite step, then two NaNs in a row
task = tiny_task(max_nonfinite=2)
rank = int(os.environ.get("LOCAL_RANK", 0))
data = batches(task, 6, prefix=f"r{rank}-")
trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=6, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False)
result = {"rank": trainer.global_rank}
try:
    trainer.fit(task, train_dataloaders=torch.utils.data.DataLoader(data, batch_size=None))
except NonFiniteLossError as err:
    result["error"] = str(err)
result["skipped"] = task.guard.skipped
result["checksum"] = sum(float(p.double().sum()) for p in task.parameters())
with open(os.path.join(sys.argv[1], f"result.{trainer.global_rank}.json"), "w") as f:
    json.dump(result, f)
"""


def poison_for_ddp(bad_rank: int, bad_steps: set[int]) -> None:
    """NaN losses on one rank only (used by the DDP script)."""
    original = CTCTask._loss

    def _loss(self, batch):
        loss, log_probs, lengths = original(self, batch)
        if self.training and self.global_rank == bad_rank and self.trainer.global_step in bad_steps:
            loss = loss * float("nan")
        return loss, log_probs, lengths

    CTCTask._loss = _loss


def test_ddp_ranks_agree_when_only_one_rank_sees_a_nan(tmp_path):
    script = tmp_path / "ddp_guard.py"
    script.write_text(DDP_SCRIPT)
    repo = str(Path(__file__).resolve().parents[2])  # `tests` is importable from the repository root
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=240, cwd=tmp_path)
    results = [json.loads(f.read_text()) for f in sorted(tmp_path.glob("result.*.json"))]
    assert len(results) == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    for r in results:
        # Rank 0's losses were finite, yet it skipped the same updates as rank 1 and stopped with it ...
        assert r["skipped"] == 3
        assert "2 non-finite losses in a row" in r["error"] and "3 in this run" in r["error"]
        # ... and the message, wherever it is read, names the bad rank's utterances (batch k is step k).
        assert "at global step 4: loss nan on rank 1 for utterances r1-4a, r1-4b" in r["error"]
        assert "step 3: loss nan on rank 1 for utterances r1-3a, r1-3b" in r["error"] and "r0-" not in r["error"]
    # The replicas stayed identical and finite: no rank applied an update the other skipped.
    assert results[0]["checksum"] == results[1]["checksum"]


def test_counters_travel_in_the_checkpoint_and_continue_after_a_resume(tmp_path, monkeypatch):
    poison(monkeypatch, bad_steps={1, 2})
    task = tiny_task()
    t = trainer(tmp_path, max_steps=3)
    t.fit(task, train_dataloaders=torch.utils.data.DataLoader(batches(task, 3), batch_size=None))
    t.save_checkpoint(tmp_path / "x.ckpt")
    resumed = tiny_task()
    resumed.on_load_checkpoint(torch.load(tmp_path / "x.ckpt", weights_only=True))
    assert (resumed.guard.skipped, resumed.guard.consecutive) == (2, 2)  # a third NaN in a row would stop the run
    old = {"tts_lab": torch.load(tmp_path / "x.ckpt", weights_only=True)["tts_lab"]}  # written before guards were saved
    resumed.on_load_checkpoint(old)
    assert (resumed.guard.skipped, resumed.guard.consecutive) == (0, 0)
