import random

import pytest

from tts_lab.data.sampler import BucketBatchSampler, padding_fraction


def lj_like_lengths(n: int = 3000, seed: int = 0) -> list[int]:
    """LJSpeech clip lengths are roughly uniform between ~1 and ~10 s: ~90-870 frames at hop 256."""
    rng = random.Random(seed)
    return [rng.randint(90, 870) for _ in range(n)]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [97, 100, 1000])
def test_ranks_disjoint_equal_and_covering(world, n):
    lengths = lj_like_lengths(n)
    per_rank = [list(BucketBatchSampler(lengths, 8, num_replicas=world, rank=r, seed=3)) for r in range(world)]
    counts = [len(batches) for batches in per_rank]
    assert len(set(counts)) == 1  # equal number of batches on every rank (no collective hangs)
    assert counts[0] == len(BucketBatchSampler(lengths, 8, num_replicas=world, rank=0, seed=3))
    # The epoch's batches partition the items exactly; only whole batches are repeated to even out the ranks.
    base = BucketBatchSampler(lengths, 8, num_replicas=world, rank=0, seed=3, even=False).all_batches()
    assert sorted(i for b in base for i in b) == list(range(n))
    dealt = sorted(b for batches in per_rank for b in batches)
    padded = BucketBatchSampler(lengths, 8, num_replicas=world, rank=0, seed=3).all_batches()
    assert padded[: len(base)] == base and len(padded) - len(base) < world
    assert dealt == sorted(padded)  # each rank got its own slice; nothing dealt twice


@pytest.mark.parametrize("world,n,batch_size", [(1, 101, 8), (2, 101, 8), (2, 3, 8), (3, 17, 8), (4, 4, 8), (2, 3, 1),
                                                (3, 10, 1), (4, 9, 2)])
def test_eval_mode_uses_every_item_once_with_equal_batch_counts(world, n, batch_size):
    lengths = lj_like_lengths(n)
    samplers = [BucketBatchSampler(lengths, batch_size, num_replicas=world, rank=r, shuffle=False, even=False)
                for r in range(world)]
    per_rank = [list(s) for s in samplers]
    items = [i for batches in per_rank for b in batches for i in b]
    assert sorted(items) == list(range(n))  # no duplicates: metrics count each utterance once
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(samplers[0])  # no rank waits
    # Never an empty batch; one item over batch_size only where equal batch counts leave no other way (size 1).
    assert all(0 < len(b) <= max(batch_size, 2) for batches in per_rank for b in batches)


def test_eval_mode_refuses_more_processes_than_items():
    with pytest.raises(ValueError, match="fewer devices"):
        list(BucketBatchSampler([5, 6], 8, num_replicas=3, rank=0, shuffle=False, even=False))


def test_epochs_shuffle_differently_but_identically_across_ranks():
    lengths = lj_like_lengths(400)
    s0, s1 = BucketBatchSampler(lengths, 8, 2, 0, seed=1), BucketBatchSampler(lengths, 8, 2, 1, seed=1)
    first = s0.all_batches()
    assert first == s1.all_batches()
    s0.set_epoch(1)
    assert s0.all_batches() != first
    assert BucketBatchSampler(lengths, 8, seed=1).all_batches() == first  # seeded: reproducible


def test_bucketing_keeps_padding_under_5_percent_while_random_batches_pad_a_third():
    lengths = lj_like_lengths(3000)
    bucketed = padding_fraction(BucketBatchSampler(lengths, 32, seed=0).all_batches(), lengths)
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    random_batches = [order[i : i + 32] for i in range(0, len(order), 32)]
    assert bucketed <= 0.05
    assert 0.25 <= padding_fraction(random_batches, lengths) <= 0.45


def test_bad_arguments():
    with pytest.raises(ValueError):
        BucketBatchSampler([], 4)
    with pytest.raises(ValueError):
        BucketBatchSampler([1, 2], 0)
    with pytest.raises(ValueError):
        BucketBatchSampler([1, 2], 1, num_replicas=2, rank=2)
