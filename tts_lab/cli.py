"""The ``tts-lab`` command: a LightningCLI (fit / validate / test / predict) in OmegaConf parser mode.

Values that must agree between data and model are linked rather than repeated in configs:
- ``data.features`` -> ``model.features``: a model reads features exactly as its data module makes them;
- the data module's tokenizer -> ``model.tokenizer``: output classes and decoding follow the symbol set.
Links whose target a model does not take (e.g. a postnet GAN has no tokenizer) are skipped.

Every run also gets `tts_lab.callbacks.batch_seed.PerBatchSeed` (``--batch_seed.seed``), whatever the config's
callback list says: it is what makes a resumed run draw the same dropout masks as an uninterrupted one.

``tts-lab transcribe`` and ``tts-lab synthesize`` are the inference front door (`tts_lab.inference`), dispatched
by `main` before the LightningCLI sees the command line.
"""

from __future__ import annotations

import sys

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI

from tts_lab.callbacks.batch_seed import PerBatchSeed


class TTSLabCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(PerBatchSeed, "batch_seed")  # a forced callback (see the module doc)
        parser.link_arguments("data.init_args.features", "model.init_args.features", apply_on="parse")
        parser.link_arguments("data", "model.init_args.tokenizer", compute_fn=lambda dm: dm.tokenizer, apply_on="instantiate")


def build_cli(args: list[str] | None = None, run: bool = True) -> TTSLabCLI:
    """Parse ``args`` (default: sys.argv), build model, data and trainer, and run the subcommand if ``run``."""
    return TTSLabCLI(
        pl.LightningModule,
        pl.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=0,
        parser_kwargs={"parser_mode": "omegaconf"},
        # Our batch sampler deals batches out to ranks itself (length bucketing needs it).
        trainer_defaults={"use_distributed_sampler": False},
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


FRONT_DOOR = ("transcribe", "synthesize")


def main(argv: list[str] | None = None) -> None:
    """Console entry point ``tts-lab`` (returns None so the exit status is 0 on success).

    ``tts-lab transcribe|synthesize ...`` run the inference front door (`tts_lab.inference`, plain argparse, no
    config); anything else goes to the LightningCLI. Known user errors (a checkpoint of another task or feature
    config, a run stopped by non-finite losses) end with their message on stderr and exit status 1, not a traceback.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in FRONT_DOOR:
        from tts_lab.inference import run

        status = run(args)
        if status:
            raise SystemExit(status)
        return
    if not args or args[0] in ("-h", "--help"):
        from tts_lab.inference import USAGE

        print(USAGE, file=sys.stdout if args else sys.stderr)
    from tts_lab.tasks.checkpoint import CheckpointMismatch
    from tts_lab.tasks.guard import NonFiniteLossError

    try:
        build_cli(None if argv is None else args)  # None: LightningCLI reads sys.argv itself
    except CheckpointMismatch as err:
        from tts_lab.inference import explain_mismatch

        print(f"tts-lab: error: {explain_mismatch(args, err)}", file=sys.stderr)
        raise SystemExit(1) from None
    except NonFiniteLossError as err:
        print(f"tts-lab: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
