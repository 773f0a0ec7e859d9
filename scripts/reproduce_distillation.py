"""Reproduce attention distillation (NOTES.md section 2) end to end, through the CLI code path.

    python scripts/reproduce_distillation.py                  # voice conversion on the demo corpus (~30 min, 2 cores)
    python scripts/reproduce_distillation.py --tts            # the TTS chain
    python scripts/reproduce_distillation.py --lj-root DIR --arctic-root DIR --source-speaker bdl --target-speaker slt
    python scripts/reproduce_distillation.py --smoke          # tiny models, a few steps: checks the plumbing only

Voice conversion (default), each stage `tts-lab fit --config <config>` (``tts_lab.cli.build_cli``) with the
config as-is apart from data paths, time caps and the overrides named here, run inside ``<out>/vc/<stage>/`` (the
configs write to relative ``runs/...`` folders, so each stage's checkpoint is ``<out>/vc/<stage>/runs/<config
name>/checkpoints/last.ckpt``):

1. ``autoencoder``: configs/tacotron_autoencoder.yaml on the LJSpeech layout for ``--ae-minutes``;
2. ``teacher_vc``: configs/tacotron_teacher_vc.yaml on the CMU Arctic layout (source -> target speaker),
   initialised from 1; it stops as soon as ``val/attn_diagonal >= 0.9`` (the config's EarlyStopping) or after
   ``--teacher-minutes``;
3. ``student_with`` / ``student_without``: configs/tacotron_student.yaml distilled from 2 with
   ``distill_weight`` = ``--distill-weight`` and 0, the same seed, data and number of steps (``--student-epochs``
   epochs); their validation metrics after each epoch are the result.

TTS (``--tts``): configs/tacotron_teacher.yaml on the LJSpeech layout (``--tts-teacher-minutes``), then
configs/tacotron_student_tts.yaml on one CMU Arctic speaker (``--tts-speaker``) with and without distillation.

The demo corpus is generated into ``<out>/demo`` with ``--demo-prompts`` (default 1132, CMU Arctic's size: the
research's "~1000 paired utterances") Arctic-layout prompts per speaker and 400 LJSpeech-layout utterances.
Writes ``results/distillation.json`` (``results/distillation_tts.json`` for TTS) in the issue's exact shape and a
section of ``docs/results.md`` with the table, parameter counts, timings, machine, command and attention images
(copied to ``docs/img/``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from _results import ROOT, machine, write_section

from tts_lab.callbacks import MetricsSummary
from tts_lab.cli import build_cli
from tts_lab.data.demo import ensure_demo_corpus

CONFIGS = ROOT / "configs"
N = "--model.init_args.network.init_args"
SMOKE_DECODER = [f"{N}.attention.init_args.attention_dim=8", f"{N}.attention.init_args.n_filters=4",
                 f"{N}.prenet_dims=[16,16]", f"{N}.attention_rnn_dim=16", f"{N}.decoder_rnn_dims=[16]",
                 f"{N}.postnet.init_args.channels=8", f"{N}.postnet.init_args.n_layers=2"]
SMOKE = {
    "mel": [f"{N}.mel_encoder.init_args.hidden=16", *SMOKE_DECODER],
    "text": [f"{N}.text_encoder.init_args.embedding_dim=16", f"{N}.text_encoder.init_args.hidden=16",
             f"{N}.text_encoder.init_args.n_convs=1", *SMOKE_DECODER],
    "steps": ["--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1", "--data.batch_size=4",
              "--model.init_args.max_decoder_steps=4"],
}


def hms(minutes: float) -> str:
    seconds = int(round(minutes * 60))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


ONLY: set[str] | None = None  # --only: run these stages, take the others from their stage.json
COMMAND = ""  # this invocation, recorded with each stage it runs


def stage(name: str, config: str, workdir: Path, data: list[str], extra: list[str]) -> dict:
    """One ``tts-lab fit`` run inside ``workdir``: its checkpoint, per-epoch validation metrics, size and time
    (also saved as ``<workdir>/stage.json``, which ``--only`` runs of other stages read instead of re-running it)."""
    record = workdir / "stage.json"
    if ONLY is not None and name not in ONLY:
        if not record.is_file():
            raise SystemExit(f"--only {','.join(sorted(ONLY))}: stage {name} has not run yet ({record} missing)")
        print(f"== {name}: taken from {record}", flush=True)
        return json.loads(record.read_text())
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh run: no stale checkpoints or logs
    workdir.mkdir(parents=True)
    # Run inside workdir: the config's relative runs/<name>/{checkpoints,logs} layout lands there, as with a plain
    # `cd workdir && tts-lab fit --config ...`.
    args = ["fit", "--config", str(CONFIGS / config), *data, "--trainer.enable_progress_bar=false", *extra]
    print(f"== {name}: tts-lab {' '.join(args)}", flush=True)
    previous = Path.cwd()
    start = time.monotonic()
    try:
        os.chdir(workdir)
        cli = build_cli(args)
    finally:
        os.chdir(previous)
    seconds = time.monotonic() - start
    (summary,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, MetricsSummary)]
    ckpts = sorted(workdir.glob("runs/*/checkpoints/last.ckpt"))
    result = {
        "name": name,
        "config": f"configs/{config}",
        "checkpoint": str(ckpts[-1]) if ckpts else None,
        "log_dir": cli.trainer.log_dir,
        "params": sum(p.numel() for p in cli.model.network.parameters()),
        "seconds": round(seconds, 1),
        "epochs": cli.trainer.current_epoch,
        "steps": cli.trainer.global_step,
        "history": summary.history,
        "args": args,
        "command": COMMAND,
    }
    record.write_text(json.dumps(result, indent=2, default=str) + "\n")
    last = summary.history[-1] if summary.history else {}
    print(f"== {name}: {result['steps']} steps, {seconds / 60:.1f} min, last val: "
          + ", ".join(f"{k}={v:.4f}" for k, v in last.items() if k.startswith("val/attn")), flush=True)
    return result


def per_epoch(student: dict, epochs: int) -> dict:
    by_epoch = {h["epoch"]: h for h in student["history"]}
    out = {}
    for epoch in range(epochs):
        h = by_epoch.get(epoch, {})
        out[f"epoch_{epoch}"] = {"attn_diagonal": float(h.get("val/attn_diagonal", float("nan"))),
                                 "attn_focus": float(h.get("val/attn_focus", float("nan")))}
    return out


def data_args(root: str | None, demo: Path, extra: list[str]) -> list[str]:
    return (["--data.root", root, "--data.demo=false"] if root else ["--data.root", str(demo)]) + extra


def run_chain(args, out: Path, demo: Path) -> tuple[dict, dict]:
    """Returns (the issue's JSON, details for the docs)."""
    smoke_steps = SMOKE["steps"] if args.smoke else []
    lj = lambda: data_args(args.lj_root, demo, [])  # noqa: E731
    if args.tts:
        chain, sizes = out / "tts", SMOKE["text"] if args.smoke else []
        teacher = stage("teacher", "tacotron_teacher.yaml", chain / "teacher", lj(),
                        [f"--trainer.max_time={hms(args.tts_teacher_minutes)}", *sizes, *smoke_steps,
                         *(["--trainer.max_epochs=1"] if args.smoke else [])])
        teachers = [teacher]
        student_config = "tacotron_student_tts.yaml"
        student_data = data_args(args.arctic_root, demo, [f"--data.speakers=[{args.tts_speaker}]"])
    else:
        chain, sizes = out / "vc", SMOKE["mel"] if args.smoke else []
        ae = stage("autoencoder", "tacotron_autoencoder.yaml", chain / "autoencoder", lj(),
                   [f"--trainer.max_time={hms(args.ae_minutes)}", *sizes, *smoke_steps,
                    *(["--trainer.max_epochs=1"] if args.smoke else [])])
        vc_data = data_args(args.arctic_root, demo, [f"--data.source_speaker={args.source_speaker}",
                                                     f"--data.target_speaker={args.target_speaker}"])
        teacher = stage("teacher_vc", "tacotron_teacher_vc.yaml", chain / "teacher_vc", vc_data,
                        [f"--model.init_args.init_checkpoint={ae['checkpoint']}",
                         f"--trainer.max_time={hms(args.teacher_minutes)}", *sizes, *smoke_steps,
                         *(["--trainer.max_epochs=1"] if args.smoke else [])])
        teachers = [ae, teacher]
        student_config, student_data = "tacotron_student.yaml", vc_data
    if teacher["checkpoint"] is None:
        raise SystemExit(f"the teacher stage wrote no checkpoint under {chain}")
    teacher_diag = float(teacher["history"][-1]["val/attn_diagonal"]) if teacher["history"] else float("nan")
    if not teacher_diag >= 0.9:
        print(f"WARNING: the teacher's val/attn_diagonal is {teacher_diag:.3f} < 0.9 (cap reached)", flush=True)

    students = {}
    for arm, weight in (("with_distillation", args.distill_weight), ("without_distillation", 0.0)):
        students[arm] = stage(arm, student_config, chain / arm, student_data, [
            f"--model.init_args.teacher_checkpoint={teacher['checkpoint']}", f"--model.init_args.distill_weight={weight}",
            f"--trainer.max_epochs={args.student_epochs}", "--trainer.max_time=null", "--seed_everything=0",
            *(SMOKE["text" if args.tts else "mel"] if args.smoke else []), *smoke_steps,
        ])
    if students["with_distillation"]["steps"] != students["without_distillation"]["steps"]:
        raise SystemExit("the two students did not take the same number of steps")
    result = {
        "teacher": {"params": int(teacher["params"]), "attn_diagonal": teacher_diag},
        "student_params": int(students["with_distillation"]["params"]),
        "seconds": 0.0,  # filled in by main
        "with_distillation": per_epoch(students["with_distillation"], args.student_epochs),
        "without_distillation": per_epoch(students["without_distillation"], args.student_epochs),
    }
    return result, {"chain": chain, "teachers": teachers, "students": students}


def copy_images(details: dict, tag: str, epochs: int) -> dict[str, str]:
    """Attention images of the first validation utterance (teacher-forced), copied next to docs/results.md."""
    target = ROOT / "docs" / "img" / f"distillation_{tag}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    found = {}

    def take(log_dir: str | None, epoch: int, image: str, name: str) -> None:
        source = Path(log_dir or "") / "media" / f"epoch_{epoch:03d}" / image
        if source.is_file():
            shutil.copy(source, target / name)
            found[name] = f"img/distillation_{tag}/{name}"

    # The distilled student's media show the teacher's attention on the same utterance.
    take(details["students"]["with_distillation"]["log_dir"], 0, "0_attention_teacher.png", "teacher.png")
    for arm, student in details["students"].items():
        for epoch in (0, epochs - 1):
            take(student["log_dir"], epoch, "0_attention_teacher_forced.png", f"{arm}_epoch{epoch}.png")
    return found


def report(args, result: dict, details: dict, images: dict[str, str], command: str) -> str:
    tts = args.tts
    teacher, students = details["teachers"][-1], details["students"]
    w, wo = result["with_distillation"], result["without_distillation"]
    rows = ["| after student epoch | with distillation: attn_diagonal | attn_focus | without: attn_diagonal | attn_focus |",
            "|---|---|---|---|---|"]
    for epoch in range(args.student_epochs):
        a, b = w[f"epoch_{epoch}"], wo[f"epoch_{epoch}"]
        rows.append(f"| {epoch} | {a['attn_diagonal']:.3f} | {a['attn_focus']:.3f} | {b['attn_diagonal']:.3f} | {b['attn_focus']:.3f} |")
    stages = "\n".join(
        f"| {s['name']} | `{s['config']}` | {s['params']:,} | {s['epochs']} | {s['steps']} | {s['seconds'] / 60:.1f} |"
        for s in [*details["teachers"], *students.values()]
    )
    target = w["epoch_0"]["attn_diagonal"]
    verdict = "met" if target >= 0.8 else "not met"
    pics = " ".join(f"![{name}]({path})" for name, path in images.items())
    steps_per_epoch = students["with_distillation"]["steps"] // max(args.student_epochs, 1)
    if tts:
        title = "TTS (text -> mel)"
        setup = (f"Teacher: `configs/tacotron_teacher.yaml` (LJSpeech layout{', demo corpus' if not args.lj_root else ''}), "
                 f"trained for {teacher['seconds'] / 60:.1f} min. Students: `configs/tacotron_student_tts.yaml` on CMU Arctic "
                 f"speaker `{args.tts_speaker}`.")
    else:
        ae = details["teachers"][0]
        title = f"voice conversion ({args.source_speaker} -> {args.target_speaker})"
        setup = (f"Teacher: `configs/tacotron_autoencoder.yaml` pretrained as a mel autoencoder on the LJSpeech layout "
                 f"for {ae['seconds'] / 60:.1f} min ({ae['steps']} steps, final val/attn_diagonal "
                 f"{ae['history'][-1]['val/attn_diagonal'] if ae['history'] else float('nan'):.3f}), then fine-tuned with "
                 f"`configs/tacotron_teacher_vc.yaml` until val/attn_diagonal >= 0.9 or {args.teacher_minutes:g} min: "
                 f"stopped after {teacher['epochs']} epoch(s), {teacher['steps']} steps, {teacher['seconds'] / 60:.1f} min. "
                 f"Students: `configs/tacotron_student.yaml`, distill_weight {args.distill_weight:g} vs 0.")
    all_stages = [*details["teachers"], *students.values()]
    invocations = list(dict.fromkeys(s.get("command") or command for s in all_stages))
    if len(invocations) == 1:
        timing = f"Wall time of the whole chain: {result['seconds'] / 60:.1f} min."
        commands = f"Command: `{invocations[0]}`."
    else:
        timing = (f"The chain ran in {len(invocations)} invocations (`--only`); their stages took "
                  f"{result['seconds'] / 60:.1f} min in all (corpus generation and feature caching not included).")
        commands = "Commands: " + "; ".join(f"`{c}`" for c in invocations) + "."
    corpus = "the demo corpus" if not (args.lj_root or args.arctic_root) else "the corpora given on the command line"
    return f"""
## Attention distillation: {title}

{setup} Data: {corpus}{f' (generated with {args.demo_prompts} Arctic-layout prompts per speaker)' if not args.arctic_root else ''};
both students see the same data in the same order (seed 0) for {args.student_epochs} epochs of {steps_per_epoch} steps.
Metrics: teacher-forced attention on the whole validation split, valid steps only (`val/attn_diagonal`: share of
attention mass within +-0.2 of the normalised diagonal; `val/attn_focus`: mean over decoder steps of the largest
weight). The students use no guided-attention prior; the teachers do (`guided_attention_weight: 1.0`).

{chr(10).join(rows)}

Target (issue 3): the distilled student's attn_diagonal >= 0.8 after epoch 0: **{verdict}** ({target:.3f}).
Teacher: {result['teacher']['params']:,} parameters, val/attn_diagonal {result['teacher']['attn_diagonal']:.3f};
student: {result['student_params']:,} parameters.

| stage | config | parameters | epochs | steps | minutes |
|---|---|---|---|---|---|
{stages}

{timing} Machine: {machine()} ({args.threads} torch thread(s); machine shared with other jobs).
{commands} Results: `{'results/distillation_tts.json' if tts else 'results/distillation.json'}`.

Attention (first validation utterance, teacher-forced; encoder step up, decoder step right): teacher, then each
student after its first and last epoch: {', '.join(f'`docs/{p}`' for p in images.values()) or '(none found)'}.

{pics}
{chr(10) + args.note if args.note else ''}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tts", action="store_true", help="run the TTS chain instead of voice conversion")
    parser.add_argument("--lj-root", help="folder holding LJSpeech-1.1/ (default: the generated demo corpus)")
    parser.add_argument("--arctic-root", help="folder holding cmu_us_<spk>_arctic/ (default: the demo corpus)")
    parser.add_argument("--source-speaker", default="dm1", help="VC source speaker (real corpus: e.g. bdl)")
    parser.add_argument("--target-speaker", default="df1", help="VC target speaker (real corpus: e.g. slt)")
    parser.add_argument("--tts-speaker", default="df1", help="the TTS student's speaker (real corpus: e.g. slt)")
    parser.add_argument("--out", default="runs/reproduce_distillation", help="working folder for every run")
    parser.add_argument("--demo-prompts", type=int, default=1132, help="Arctic-layout prompts of the demo corpus")
    parser.add_argument("--ae-minutes", type=float, default=7.0, help="autoencoder pretraining time")
    parser.add_argument("--teacher-minutes", type=float, default=10.0, help="cap on the VC teacher's fine-tuning")
    parser.add_argument("--tts-teacher-minutes", type=float, default=6.0, help="TTS teacher training time")
    parser.add_argument("--student-epochs", type=int, default=3)
    parser.add_argument("--distill-weight", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--only", type=lambda s: set(s.split(",")), default=None,
                        help="run only these stages (comma-separated: autoencoder, teacher_vc, teacher, "
                             "with_distillation, without_distillation) and take the others from an earlier run's "
                             "<out>/<chain>/<stage>/stage.json; 'seconds' then adds up the stages' own times")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite the JSON and docs section from the stages' stage.json")
    parser.add_argument("--note", default="", help="a remark appended to the docs section (e.g. about earlier runs)")
    parser.add_argument("--smoke", action="store_true", help="tiny models and a few steps; implies --no-write")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ and results/ alone")
    args = parser.parse_args()
    global ONLY, COMMAND
    ONLY = set() if args.report_only else args.only
    torch.set_num_threads(args.threads)
    command = COMMAND = ("python scripts/reproduce_distillation.py " + " ".join(sys.argv[1:])).strip()
    out = Path(args.out).resolve()

    start = time.monotonic()
    demo = out / "demo"
    if not (args.lj_root and args.arctic_root) and not args.report_only:
        prompts = 24 if args.smoke else args.demo_prompts
        ensure_demo_corpus(demo, n_lj=48 if args.smoke else 400, n_arctic=prompts)
    result, details = run_chain(args, out, demo)
    stages = [*details["teachers"], *details["students"].values()]
    if ONLY is None:
        result["seconds"] = round(time.monotonic() - start, 1)
    else:  # the chain ran in pieces: its stages' own times (corpus generation and caching not included)
        result["seconds"] = round(sum(s["seconds"] for s in stages), 1)
    print(json.dumps(result, indent=2), flush=True)
    (details["chain"] / "details.json").write_text(json.dumps(
        {"command": command, "result": result, "stages": stages},
        indent=2, default=str) + "\n")
    if args.no_write or args.smoke:
        return
    tag = "tts" if args.tts else "vc"
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / ("distillation_tts.json" if args.tts else "distillation.json")).write_text(
        json.dumps(result, indent=2) + "\n")
    images = copy_images(details, tag, args.student_epochs)
    write_section(f"distillation_{tag}", report(args, result, details, images, command))


if __name__ == "__main__":
    main()
