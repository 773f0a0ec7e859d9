"""Length-bucketed, DDP-aware batch sampler.

Sorting a whole epoch by length gives near-zero padding but the same batches every epoch; random batching gives
~30-40 % padded frames on LJSpeech-like lengths. The middle road used here: shuffle, cut into pools of
``pool_batches`` batches, sort each pool by length, cut into batches, shuffle the batch order.

Under DDP every rank must run the same number of batches, or a rank waits forever in a collective (gradient
all-reduce in training, metric sync at the end of validation).
- Training (``even=True``): every rank builds the same batch list from ``seed + epoch`` and takes every
  ``num_replicas``-th batch; the list is padded by repeating its first batches to a multiple of the world size.
- Evaluation (``even=False``, no shuffling): every item is used exactly once, so metrics count each utterance once.
  Items sorted by length are dealt round-robin to ranks, and each rank cuts its share into the same number of
  batches (sizes differ by at most one item; never an empty batch, so with ``batch_size`` 1 and a split that does
  not divide by the world size, some ranks get a batch of 2).

Resuming mid-epoch (``--ckpt_path``): the epoch's batch list is a pure function of ``seed + epoch``, so the position
in an epoch is just (epoch, batches this rank already trained on). `state_at` records it and `resume` makes the next
pass over that epoch skip those batches; ``len()`` stays the full epoch, as Lightning's restored progress counters
expect. `tts_lab.data.datamodule.ResumableDataLoader` saves and restores it through Lightning's stateful-loader
protocol.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        even: bool = True,
        pool_batches: int = 50,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} replicas")
        if len(lengths) == 0:
            raise ValueError("BucketBatchSampler got an empty dataset")
        self.lengths = torch.as_tensor(list(lengths))
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.even = even
        self.pool_batches = pool_batches
        self.epoch = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches of this rank to skip), used once

    @property
    def sampler(self) -> BucketBatchSampler:
        """Lightning calls ``set_epoch`` on ``loader.batch_sampler.sampler`` (never on the batch sampler itself), so
        this batch sampler names itself as its sampler: otherwise every epoch would repeat epoch 0's order."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop each epoch so the shuffle differs per epoch but agrees across ranks."""
        self.epoch = epoch

    # -- resuming mid-epoch -----------------------------------------------------------------------------------
    def state_at(self, batches_done: int) -> dict:
        """The position after this rank trained on ``batches_done`` batches of the current epoch, plus what the
        batch list depends on (so a resume with other data or settings is detected)."""
        return {
            "epoch": self.epoch,
            "batches_done": int(batches_done),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "num_replicas": self.num_replicas,
            "num_items": len(self.lengths),
            "pool_batches": self.pool_batches,
        }

    def resume(self, state: dict) -> None:
        """Make the next pass over epoch ``state["epoch"]`` skip the batches already trained on (see `state_at`).

        With another world size the same global batch list is dealt out again and each rank skips its share of the
        batches used so far (a few may be seen twice). With another seed, batch size or dataset the old position
        means nothing: the epoch restarts from its first batch, with a warning.
        """
        epoch, done = int(state["epoch"]), int(state["batches_done"])
        self.epoch = epoch
        same = {k: state.get(k) for k in ("seed", "batch_size", "num_items", "pool_batches")}
        now = {"seed": self.seed, "batch_size": self.batch_size, "num_items": len(self.lengths),
               "pool_batches": self.pool_batches}
        if same != now:
            changed = {k: (same[k], now[k]) for k in now if same[k] != now[k]}
            warnings.warn(f"resuming with another batch list (checkpoint vs now: {changed}): "
                          f"epoch {epoch} restarts from its first batch", stacklevel=2)
            self._resume = None
            return
        old_world = int(state.get("num_replicas", self.num_replicas))
        self._resume = (epoch, done * old_world // self.num_replicas)

    def all_batches(self) -> list[list[int]]:
        """The global batch list of this epoch, before it is dealt out to ranks."""
        n = len(self.lengths)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        pool = self.batch_size * self.pool_batches if self.shuffle else n
        batches: list[list[int]] = []
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
        if self.even and len(batches) % self.num_replicas:
            missing = self.num_replicas - len(batches) % self.num_replicas
            batches += [batches[i % len(batches)] for i in range(missing)]
        return batches

    def _eval_batches(self) -> list[list[int]]:
        """This rank's batches in evaluation mode (see module docstring)."""
        n = len(self.lengths)
        if n < self.num_replicas:
            raise ValueError(f"{n} utterances cannot be shared by {self.num_replicas} processes; use fewer devices")
        mine = torch.argsort(self.lengths, stable=True)[self.rank :: self.num_replicas]
        return [chunk.tolist() for chunk in torch.tensor_split(mine, self._n_eval_batches())]

    def _n_eval_batches(self) -> int:
        """Batches per rank in evaluation mode, identical on every rank, at most the smallest share (no empty one)."""
        n = len(self.lengths)
        return min(-(-n // (self.num_replicas * self.batch_size)), n // self.num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        resume, self._resume = self._resume, None  # a resume position applies to the first pass only
        if not self.even:
            yield from self._eval_batches()
        else:
            skip = resume[1] if resume is not None and resume[0] == self.epoch else 0
            yield from self.all_batches()[self.rank :: self.num_replicas][skip:]

    def __len__(self) -> int:
        if not self.even:
            return self._n_eval_batches()
        n_batches = -(-len(self.lengths) // self.batch_size) if not self.shuffle else self._n_batches_shuffled()
        return -(-n_batches // self.num_replicas)

    def _n_batches_shuffled(self) -> int:
        n, pool = len(self.lengths), self.batch_size * self.pool_batches
        full, rest = divmod(n, pool)
        return full * self.pool_batches + -(-rest // self.batch_size)


def require_shareable(n: int, world: int, split: str) -> None:
    """An evaluation split uses each utterance once, so every one of ``world`` processes needs at least one."""
    if n < world:
        hint = f" or a larger {split}_fraction" if split in ("val", "test") else ""
        raise ValueError(f"the {split} split has {n} utterance(s), fewer than the {world} processes that share it: "
                         f"use fewer devices{hint}")


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of padded frames when each batch is padded to its longest item."""
    real = padded = 0
    for batch in batches:
        lens = [lengths[i] for i in batch]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return 1.0 - real / padded
