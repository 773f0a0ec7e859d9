"""The ``tts-lab`` command: a LightningCLI (fit / validate / test / predict) in OmegaConf parser mode.

Values that must agree between data and model are linked rather than repeated in configs:
- ``data.features`` -> ``model.features``: a model reads features exactly as its data module makes them;
- the data module's tokenizer -> ``model.tokenizer``: output classes and decoding follow the symbol set.
Links whose target a model does not take (e.g. a postnet GAN has no tokenizer) are skipped.
"""

from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.cli import LightningCLI


class TTSLabCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
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


def main() -> None:
    """Console entry point ``tts-lab`` (returns None so the exit status is 0 on success)."""
    build_cli()


if __name__ == "__main__":
    main()
