"""The scratch pool never hands out memory that something still uses."""
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
