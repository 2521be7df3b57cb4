import pytest

from medops.train.batches import global_batches, shard


@pytest.mark.parametrize("n,batch,world", [(37, 8, 2), (17, 16, 2), (9, 4, 3), (5, 5, 1)])
def test_every_row_once_and_every_worker_fed(n: int, batch: int, world: int) -> None:
    lengths = [(i * 13) % 29 for i in range(n)]
    batches = global_batches(lengths, batch, world, seed=1, epoch=1)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(n))
    for b in batches:
        shards = [shard(b, r, world) for r in range(world)]
        assert all(shards), "a worker with no rows would hang DDP"
        assert sorted(i for s in shards for i in s) == sorted(b)


def test_batches_are_deterministic_per_epoch_and_length_grouped() -> None:
    lengths = list(range(64))
    first = global_batches(lengths, 8, 2, seed=3, epoch=1)
    assert first == global_batches(lengths, 8, 2, seed=3, epoch=1)
    assert first != global_batches(lengths, 8, 2, seed=3, epoch=2)
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first]
    assert max(spans) == 7


def test_batch_smaller_than_world_is_refused() -> None:
    with pytest.raises(ValueError, match="smaller than resources.num_workers"):
        global_batches([1, 2, 3], 1, 2, seed=0, epoch=1)
