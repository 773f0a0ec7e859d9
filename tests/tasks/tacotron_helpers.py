"""Tiny Tacotron runs through the CLI, shared by the Tacotron, distillation and synthesis tests.

Every run goes through ``tts_lab.cli.build_cli`` with a repository config and tiny-size overrides, inside its own
working folder (the configs write to relative ``runs/...`` paths). Checkpoints that several tests need (teachers,
an ASR model) are made once per session by two training steps and cached here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tts_lab.cli import build_cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
N = "--model.init_args.network.init_args"
DECODER = [
    f"{N}.attention.init_args.attention_dim=8", f"{N}.attention.init_args.n_filters=4",
    f"{N}.attention.init_args.kernel_size=5", f"{N}.prenet_dims=[16,16]", f"{N}.attention_rnn_dim=16",
    f"{N}.decoder_rnn_dims=[16]", f"{N}.postnet.init_args.channels=8", f"{N}.postnet.init_args.n_layers=2",
]
TINY_TEXT = [
    f"{N}.text_encoder.init_args.embedding_dim=16", f"{N}.text_encoder.init_args.hidden=16",
    f"{N}.text_encoder.init_args.n_convs=1", *DECODER,
]
TINY_MEL = [f"{N}.mel_encoder.init_args.hidden=16", *DECODER]
TINY = {  # config -> its tiny-size overrides
    "tacotron_teacher.yaml": TINY_TEXT,
    "tacotron_student_tts.yaml": TINY_TEXT,
    "tacotron_autoencoder.yaml": TINY_MEL,
    "tacotron_teacher_vc.yaml": TINY_MEL,
    "tacotron_student.yaml": TINY_MEL,
}
TINY_CTC = [
    "--model.init_args.network.init_args.conv_channels=16",
    "--model.init_args.network.init_args.hidden=16",
    "--model.init_args.network.init_args.num_layers=1",
    "--model.init_args.beam_size=0",
]
QUICK = ["--data.batch_size=4", "--model.init_args.max_decoder_steps=4", "--trainer.enable_progress_bar=false",
         "--trainer.enable_model_summary=false"]


@contextmanager
def working_dir(path: Path) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def cli_args(subcommand: str, config: str, root: Path, workdir: Path, *extra: str, tiny: bool = True) -> list[str]:
    return [
        subcommand, "--config", str(CONFIGS / config), "--data.root", str(root),
        "--data.cache_dir", str(Path(root).parent / "tacotron_test_cache"),
        *(TINY.get(config, []) if tiny else []),
        *(QUICK if config.startswith("tacotron") else []),
        *extra,  # run inside workdir: the configs' relative runs/<name>/... layout lands there
    ]


def run(subcommand: str, config: str, root: Path, workdir: Path, *extra: str, run: bool = True, tiny: bool = True):
    """``tts-lab <subcommand> --config configs/<config> ...`` inside ``workdir``; returns the LightningCLI (with
    ``run=False`` only built: model, data module and trainer, nothing run)."""
    args = cli_args(subcommand, config, root, workdir, *extra, tiny=tiny)
    with working_dir(workdir):
        return build_cli(args if run else args[1:], run=run)  # run=False: no subcommand


def fit_steps(config: str, root: Path, workdir: Path, *extra: str, steps: int = 1) -> Path:
    """Train a few steps (checkpointing on) and return the run's last.ckpt."""
    run("fit", config, root, workdir, f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0", *extra)
    (ckpt,) = workdir.rglob("last.ckpt")
    return ckpt


_CACHE: dict[tuple[str, str], Path] = {}


def checkpoint(kind: str, root: Path, base: Path) -> Path:
    """A session-cached tiny checkpoint: "tts" (text teacher), "autoencoder" (mel teacher), "vc" (VC teacher
    initialised from the autoencoder), "student" (VC student of the autoencoder), "ctc" (ASR)."""
    key = (kind, str(root))
    if key not in _CACHE:
        workdir = base / f"ckpt_{kind}"
        if kind == "tts":
            path = fit_steps("tacotron_teacher.yaml", root, workdir)
        elif kind == "autoencoder":
            path = fit_steps("tacotron_autoencoder.yaml", root, workdir)
        elif kind == "vc":
            init = checkpoint("autoencoder", root, base)
            path = fit_steps("tacotron_teacher_vc.yaml", root, workdir, f"--model.init_args.init_checkpoint={init}")
        elif kind == "student":
            teacher = checkpoint("autoencoder", root, base)
            path = fit_steps("tacotron_student.yaml", root, workdir, f"--model.init_args.teacher_checkpoint={teacher}")
        elif kind == "ctc":
            path = fit_steps("ctc_asr.yaml", root, workdir, *TINY_CTC)
        else:
            raise ValueError(kind)
        _CACHE[key] = path
    return _CACHE[key]
