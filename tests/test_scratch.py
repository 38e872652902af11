"""The scratch pool never hands out memory that something still uses."""
import sys
import threading

import numpy as np

from minirnn.scratch import ScratchPool


def test_live_views_keep_their_buffer_busy():
    ws = ScratchPool()
    a = ws.empty((10, 10), np.float32)
    a[...] = 1.0
    b = ws.empty((10, 10), np.float32)
    b[...] = 2.0
    assert not np.shares_memory(a, b)
    view = a[3:]
    del a
    c = ws.empty((5, 5), np.float64)
    c[...] = 3.0
    assert not np.shares_memory(view, c) and np.all(view == 1.0)


def test_released_buffers_are_reused():
    ws = ScratchPool()
    a = ws.empty((100, 100), np.float64)
    ptr = a.__array_interface__["data"][0]
    del a
    b = ws.empty((90, 100), np.float64)   # smaller request fits the released buffer
    assert b.__array_interface__["data"][0] == ptr
    assert ws.nbytes >= 100 * 100 * 8 and len(ws._buffers) == 1


def test_shapes_dtypes_and_zeros():
    ws = ScratchPool()
    z = ws.zeros((3, 4, 5), np.float32)
    assert z.shape == (3, 4, 5) and z.dtype == np.float32 and z.flags.c_contiguous and not z.any()
    assert ws.empty((0, 7), np.float64).shape == (0, 7)


def test_a_steady_sequence_of_requests_stops_allocating():
    ws = ScratchPool()
    for _ in range(3):
        big = ws.empty((1000, 100), np.float32)
        small = ws.empty((10, 10), np.float32)
        del big, small
    assert len(ws._buffers) == 2


def test_threads_never_get_the_same_buffer():
    """Forwards may run in several threads at once (the accuracy of each served model is computed
    in its own thread): two arrays handed out at the same time must never share memory."""
    pool = ScratchPool()
    clashes, rounds = [], 2000

    def worker(seed):
        rng = np.random.default_rng(seed)
        for _ in range(rounds):
            held = [pool.empty((int(rng.integers(1, 64)),), np.float64) for _ in range(3)]
            for a in held:
                a.fill(seed)                  # each thread writes its own value ...
            if any((a != seed).any() for a in held):
                clashes.append(seed)          # ... and another thread's write shows up here
                return

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)              # switch threads between almost any two bytecodes
    try:
        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not clashes
