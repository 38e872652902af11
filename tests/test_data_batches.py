"""BatchOrder: seeded epochs, partial last batch, exact resume from a tiny state."""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.data.batches import BatchOrder, epoch_permutation
from minirnn.errors import MinirnnError


def collect(order, k):
    return [(e, s, idx.tolist()) for e, s, idx in order.take(k)]


@pytest.mark.parametrize("n, batch_size", [(10, 3), (12, 4), (1, 5), (7, 1)])
def test_each_epoch_is_a_permutation(n, batch_size):
    order = BatchOrder(n, batch_size, seed=11)
    assert order.steps_per_epoch == -(-n // batch_size)
    for epoch in range(3):
        batches = list(order.rest_of_epoch())
        assert [e for e, _, _ in batches] == [epoch] * order.steps_per_epoch
        assert [s for _, s, _ in batches] == list(range(order.steps_per_epoch))
        sizes = [len(b) for _, _, b in batches]
        assert all(size == batch_size for size in sizes[:-1]) and 1 <= sizes[-1] <= batch_size
        flat = np.concatenate([b for _, _, b in batches])
        assert flat.dtype == np.int64
        assert np.array_equal(np.sort(flat), np.arange(n))
        assert np.array_equal(flat, epoch_permutation(n, 11, epoch))


def test_epochs_differ_and_seed_matters():
    a = epoch_permutation(100, 1, 0)
    assert not np.array_equal(a, epoch_permutation(100, 1, 1))
    assert not np.array_equal(a, epoch_permutation(100, 2, 0))
    assert np.array_equal(a, epoch_permutation(100, 1, 0))
    assert np.array_equal(a, np.random.default_rng([1, 0]).permutation(100))


@pytest.mark.parametrize("k", [0, 1, 3, 4, 5, 9, 13])
def test_resume_gives_identical_batches(k):
    n, batch_size, seed, total = 17, 4, 123, 15  # 5 steps per epoch, last batch of 1
    straight = collect(BatchOrder(n, batch_size, seed), total)
    first = BatchOrder(n, batch_size, seed)
    head = collect(first, k)
    state = first.state()
    assert set(state) == {"epoch", "position"}
    resumed = BatchOrder.from_state(dict(state), n, batch_size, seed)
    tail = collect(resumed, total - k)
    assert head + tail == straight


def test_state_values():
    order = BatchOrder(10, 4, seed=0)
    assert order.state() == {"epoch": 0, "position": 0}
    next(order)
    assert order.state() == {"epoch": 0, "position": 4} and order.step == 1
    next(order)
    next(order)  # the partial batch ends the epoch
    assert order.state() == {"epoch": 1, "position": 0}
    assert order.global_step == 3
    # a position at the very end of an epoch means "start of the next one"
    assert BatchOrder(10, 4, 0, epoch=2, position=10).state() == {"epoch": 3, "position": 0}


def test_bad_arguments():
    with pytest.raises(MinirnnError):
        BatchOrder(0, 4, 0)
    with pytest.raises(MinirnnError):
        BatchOrder(10, 0, 0)
    with pytest.raises(MinirnnError):
        BatchOrder(10, 4, -1)
    with pytest.raises(MinirnnError):
        BatchOrder(10, 4, 0, position=11)
    with pytest.raises(MinirnnError):
        BatchOrder.from_state({"epoch": 1}, 10, 4, 0)
