"""Two-process DDP on CPU (gloo) with bf16-mixed, through the real command line.

DDP re-launches the command for every rank, so these run `python -m tts_lab.cli` in a subprocess.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def run_cli(args: list[str], cache_dir, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TTS_LAB_CACHE": str(cache_dir), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "tts_lab.cli", *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_ctc_ddp_two_cpu_processes_bf16(demo_root, cache_dir, tmp_path):
    proc = run_cli([
        "fit", "--config", str(CONFIGS / "ctc_asr.yaml"), "--trainer", str(CONFIGS / "trainer" / "cpu_ddp.yaml"),
        "--data.root", str(demo_root), "--data.batch_size=4",
        "--model.init_args.network.init_args.conv_channels=16", "--model.init_args.network.init_args.hidden=16",
        "--model.init_args.network.init_args.num_layers=1",
        "--trainer.max_steps=3", "--trainer.limit_val_batches=2", "--trainer.enable_progress_bar=false",
        "--trainer.default_root_dir", str(tmp_path), "--trainer.logger.init_args.save_dir", str(tmp_path),
    ], cache_dir)
    out = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 1" in out  # really two processes
    assert out.count("tts_lab: caching log-mels") == 1  # the cache is built by one process, the other waits
    assert list(Path(tmp_path).rglob("last.ckpt"))
