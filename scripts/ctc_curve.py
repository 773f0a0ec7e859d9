"""Train the CTC recogniser on the demo corpus exactly as the README's main command does, and record its curve.

    python scripts/ctc_curve.py                # 10 minutes, writes docs/results.md (CTC section) and results/ctc_curve.json
    python scripts/ctc_curve.py --minutes 3 --no-write

The run goes through the CLI code path (`tts_lab.cli.build_cli`) with configs/ctc_asr.yaml; after training it also
reports the held-out test split with beam search from the best checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from _results import ROOT, machine, write_section

from tts_lab.callbacks import MetricsSummary
from tts_lab.cli import build_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--root", default="data/demo")
    parser.add_argument("--out", default="runs/ctc_curve")
    parser.add_argument("--note", default="", help="appended to the machine line, e.g. what else ran")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ and results/ alone")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    minutes = int(args.minutes * 60)
    common = ["--config", str(ROOT / "configs" / "ctc_asr.yaml"), "--data.root", args.root,
              "--trainer.default_root_dir", args.out, "--trainer.logger.init_args.save_dir", args.out]
    start = time.monotonic()
    cli = build_cli(["fit", *common, f"--trainer.max_time=00:00:{minutes // 60:02d}:{minutes % 60:02d}", "--trainer.enable_progress_bar=false"])
    wall = time.monotonic() - start
    history = next(cb for cb in cli.trainer.callbacks if isinstance(cb, MetricsSummary)).history
    best = cli.trainer.checkpoint_callback.best_model_path
    test = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best)[0]

    result = {
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
        "command": "python scripts/ctc_curve.py --minutes %g" % args.minutes + (f" --threads {args.threads}" if args.threads else ""),
        "train_minutes": args.minutes,
        "wall_seconds": round(wall, 1),
        "curve": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in history],
        "best_checkpoint": best,
        "test": {k: round(float(v), 4) for k, v in test.items()},
    }
    print(json.dumps(result, indent=2))
    if args.no_write:
        return
    (ROOT / "results").mkdir(exist_ok=True)
    (ROOT / "results" / "ctc_curve.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(
        f"| {r['minutes']:.1f} | {r['epoch']} | {r['step']} | {r['val/cer'] * 100:.2f} | {r['val/wer'] * 100:.2f} | {r['val/loss']:.3f} |"
        for r in history
    )
    best_cer = min(r["val/cer"] for r in history)
    write_section("ctc", f"""
## CTC speech recognition on the demo corpus

Command: `{result['command']}` (the README's main command, `tts-lab fit --config configs/ctc_asr.yaml`, for
{args.minutes:g} minutes of training, counted from the start of fit after the one-off demo generation and
feature caching). Machine: {result['machine']}, {result['torch_threads']} torch thread(s){args.note}.

Validation CER/WER (greedy decoding, {len(cli.datamodule.datasets['val'])} held-out utterances) against training time:

| minutes | epoch | step | val CER % | val WER % | val loss |
|---:|---:|---:|---:|---:|---:|
{rows}

Best val CER: **{best_cer * 100:.2f} %** (target <= 5 % within 10 minutes: {'met' if best_cer <= 0.05 else 'NOT met'}).
Test split ({len(cli.datamodule.datasets['test'])} utterances, best checkpoint, beam search width
{cli.model.beam_size}): CER {result['test']['test/cer'] * 100:.2f} %, WER {result['test']['test/wer'] * 100:.2f} %.
Raw numbers: `results/ctc_curve.json`.
""")


if __name__ == "__main__":
    main()
