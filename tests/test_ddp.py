"""Two-process DDP on CPU (gloo), through the real command line: every model family trains under bf16-mixed,
validation metrics over 2 ranks equal those over 1, and a DDP run killed mid-epoch resumes exactly.

DDP re-launches the command for every rank, so these run `python -m tts_lab.cli` in a subprocess (with the
repository root on PYTHONPATH, so test callbacks such as `tests.test_resume.KillAt` can be named in a config).
The postnet GAN / WGAN DDP runs are in tests/tasks/test_postnet_{gan,wgan}.py.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from tests.tasks import tacotron_helpers as th
from tests.tasks.postnet_helpers import TINY_DATA, TINY_UNET
from tests.test_resume import read
from tts_lab.cli import build_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DDP = ["--trainer", str(CONFIGS / "trainer" / "cpu_ddp.yaml")]  # 2 CPU processes, gloo, bf16-mixed
DDP_FP32 = [*DDP, "--trainer.precision=32-true"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


def run_cli(args: list[str], cache_dir, cwd: Path | None = None, timeout: int = 300, check: bool = True) -> str:
    env = {**os.environ, "TTS_LAB_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "tts_lab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, out[-4000:]
        assert "GLOBAL_RANK: 1" in out  # really two processes
    return out


def logged(save_dir: Path) -> dict[str, float]:
    """The last logged value of every metric in the CSVLogger files under ``save_dir``."""
    (path,) = save_dir.rglob("metrics.csv")
    values: dict[str, float] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            values.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return values


# -- every family trains under DDP + bf16 ---------------------------------------------------------------------------
def test_ctc_ddp_two_cpu_processes_bf16(demo_root, cache_dir, tmp_path):
    out = run_cli([
        "fit", "--config", str(CONFIGS / "ctc_asr.yaml"), *DDP, "--data.root", str(demo_root), "--data.batch_size=4",
        *th.TINY_CTC, "--trainer.max_steps=3", "--trainer.limit_val_batches=2", *QUIET,
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
    ], cache_dir)
    assert out.count("tts_lab: caching log-mels") == 1  # the cache is built by one process, the other waits
    assert list(Path(tmp_path).rglob("last.ckpt"))


def test_tacotron_teacher_then_distilled_student_ddp_two_cpu_processes_bf16(demo_root, cache_dir, tmp_path):
    steps = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=2",
             "--trainer.num_sanity_val_steps=0", "--trainer.log_every_n_steps=1"]
    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    teacher_dir.mkdir(), student_dir.mkdir()
    run_cli([*th.cli_args("fit", "tacotron_teacher.yaml", demo_root, teacher_dir), *DDP, *steps], cache_dir, cwd=teacher_dir)
    (teacher,) = teacher_dir.rglob("checkpoints/last.ckpt")
    metrics = logged(teacher_dir / "runs")
    for key in ("train/loss", "val/loss", "val/attn_diagonal", "train/skipped_nonfinite"):
        assert math.isfinite(metrics[key]), key

    # One Arctic speaker of the tiny test corpus has 1 validation utterance at the default 5 %: 2 ranks need 2.
    run_cli([*th.cli_args("fit", "tacotron_student_tts.yaml", demo_root, student_dir), *DDP, *steps,
             f"--model.init_args.teacher_checkpoint={teacher}", "--data.val_fraction=0.2"], cache_dir, cwd=student_dir)
    assert list(student_dir.rglob("checkpoints/last.ckpt"))
    metrics = logged(student_dir / "runs")
    for key in ("train/loss", "train/distill_loss", "val/distill_kl", "val/attn_diagonal"):
        assert math.isfinite(metrics[key]), key


# -- validation metrics: 2 ranks == 1 rank --------------------------------------------------------------------------
def postnet_checkpoint(demo_root, workdir: Path) -> Path:
    args = ["fit", "--config", str(CONFIGS / "postnet_gan.yaml"), "--data.root", str(demo_root), *TINY_UNET, *TINY_DATA,
            "--trainer.max_steps=2", "--trainer.limit_val_batches=0", *QUIET, "--trainer.callbacks=[]",
            "--trainer.default_root_dir", str(workdir), "--trainer.logger.init_args.save_dir", str(workdir)]
    build_cli(args)
    (ckpt,) = workdir.rglob("*.ckpt")
    return ckpt


FAMILIES = {  # family -> (config, its tiny-size overrides, checkpoint maker)
    "ctc": ("ctc_asr.yaml", th.TINY_CTC, lambda root, base, work: th.checkpoint("ctc", root, base)),
    "tacotron": ("tacotron_teacher.yaml", th.TINY_TEXT + th.QUICK, lambda root, base, work: th.checkpoint("tts", root, base)),
    "postnet": ("postnet_gan.yaml", TINY_UNET + TINY_DATA, lambda root, base, work: postnet_checkpoint(root, work)),
}


def same_batches_in_one_process(dm, world: int) -> DataLoader:
    """The validation batches that ``world`` DDP ranks run, all in one loader (rank 0's, then rank 1's, ...)."""
    batches, loader = [], None
    for rank in range(world):
        dm._ranks = lambda rank=rank: (world, rank)  # what the data module would do on that rank
        loader = dm.val_dataloader()
        batches += list(loader.batch_sampler)
    del dm._ranks
    return DataLoader(loader.dataset, batch_sampler=batches, collate_fn=loader.collate_fn)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_validation_metrics_on_two_ranks_equal_one_rank(family, demo_root, cache_dir, tmp_path, tmp_path_factory):
    # An odd number of utterances on purpose: the ranks hold different numbers of them, which is where a mean of
    # per-rank means (or Lightning's truncated integer counts over gloo) goes wrong.
    # One process runs exactly the batches the two ranks run: padding and the per-batch normalisation of some loss
    # terms depend on which utterances share a batch, so different batches would differ for that reason alone
    # (on the tiny untrained Tacotron by up to 26 % for val/stop_loss, 1 % for val/mel_loss, 0.5 % for CTC val/loss).
    # Tacotron's prenet dropout stays on in validation: `PerBatchSeed` keys it by the batch's utterance ids.
    config, tiny, make = FAMILIES[family]
    ckpt = make(Path(demo_root), tmp_path_factory.getbasetemp(), tmp_path / "ckpt")
    args = ["--config", str(CONFIGS / config), "--data.root", str(demo_root), *tiny, *QUIET,
            "--trainer.callbacks=[]", "--data.eval_batch_size=2"]
    one = build_cli([*args, "--trainer.logger=false"], run=False)
    one.datamodule.prepare_data()
    one.datamodule.setup("validate")
    loader = same_batches_in_one_process(one.datamodule, world=2)
    assert len(loader.dataset) % 2 == 1, f"want an odd validation split, got {len(loader.dataset)}"
    one.trainer.validate(one.model, dataloaders=loader, ckpt_path=str(ckpt), verbose=False)
    single = {k: float(v) for k, v in one.trainer.callback_metrics.items() if k.startswith("val/")}

    two = tmp_path / "two"
    run_cli(["validate", *args, "--ckpt_path", str(ckpt), *DDP_FP32, "--trainer.logger.init_args.save_dir", str(two)],
            cache_dir, cwd=tmp_path)
    pair = {k: v for k, v in logged(two).items() if k.startswith("val/")}
    assert pair.keys() == single.keys()
    assert len(single) >= 3
    assert pair == pytest.approx(single, rel=1e-5, abs=1e-6)


# -- DDP resume ----------------------------------------------------------------------------------------------------
def test_ddp_run_killed_mid_epoch_resumes_exactly(demo_root, cache_dir, tmp_path):
    kill_at, max_steps = 7, 10  # 5 batches per rank and epoch: killed 2 batches into epoch 1
    common = ["fit", "--config", str(CONFIGS / "ctc_asr.yaml"), *DDP, "--data.root", str(demo_root),
              "--data.batch_size=4", *th.TINY_CTC, "--model.init_args.network.init_args.dropout=0.3",
              "--model.init_args.scheduler_interval=step", f"--trainer.max_steps={max_steps}",
              "--trainer.limit_val_batches=0", *QUIET,
              "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path)]

    def callbacks(records: str, kill: bool, ckpts: bool = True) -> str:
        cbs = [{"class_path": "tests.test_resume.Recorder", "init_args": {"path": str(tmp_path / records)}}]
        if ckpts:
            cbs.append({"class_path": "pytorch_lightning.callbacks.ModelCheckpoint", "init_args": {
                "dirpath": str(tmp_path / "checkpoints"), "every_n_train_steps": 1, "save_last": True, "save_top_k": 0}})
        if kill:
            cbs.append({"class_path": "tests.test_resume.KillAt", "init_args": {"step": kill_at}})
        return "--trainer.callbacks=" + json.dumps(cbs)

    run_cli([*common, callbacks("reference.jsonl", kill=False, ckpts=False)], cache_dir)
    out = run_cli([*common, callbacks("killed.jsonl", kill=True)], cache_dir, check=False)
    assert f"killed at step {kill_at}" in out
    run_cli([*common, callbacks("resumed.jsonl", kill=False), "--ckpt_path", "last"], cache_dir)

    def by_rank(name: str) -> dict[int, list[dict]]:
        rows = read(tmp_path / name)
        return {r: [row for row in rows if row["rank"] == r] for r in (0, 1)}

    reference, resumed = by_rank("reference.jsonl"), by_rank("resumed.jsonl")
    assert reference[0][0]["epoch"] == 0 and reference[0][-1]["epoch"] >= 1
    for rank in (0, 1):
        rest = reference[rank][kill_at:]
        assert [r["step"] for r in resumed[rank]] == list(range(kill_at + 1, max_steps + 1))
        assert [r["ids"] for r in resumed[rank]] == [r["ids"] for r in rest]  # each rank's sampler position
        assert [r["lr"] for r in resumed[rank]] == pytest.approx([r["lr"] for r in rest], rel=1e-6)
        # Weights, optimiser state and each rank's dropout masks (per-batch seeds): the same losses.
        assert [r["loss"] for r in resumed[rank]] == pytest.approx([r["loss"] for r in rest], rel=1e-5, abs=1e-6)
    assert reference[0][kill_at]["ids"] != reference[1][kill_at]["ids"]  # the ranks really train on different data
