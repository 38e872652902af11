"""The CUDA path, verified as far as a machine without a GPU allows.

1. Every .cu file (exactly the text NVRTC gets: local headers inlined) compiles
   with nvcc for sm_90 (and sm_80) with every float/double instantiation that the
   loader requests, with warnings treated as errors.  Skipped without nvcc.
2. The sources include no system header when compiled at run time (NVRTC has none).
3. The per-element bodies in gates.cuh are compiled for the host (g++, else nvcc)
   into a shared library with one loop per kernel, generated from the parsed
   kernel signatures (tests/cuda_standin.py, with the cuBLAS and CuPy stand-ins).
   The one time loop per unit (kernels/units.py) then runs on ``CupyBackend``
   itself -- argument checks, GEMM plans, recording, graph capture and replay --
   over those stand-ins, and must match the NumPy reference units to 1e-12 in
   float64, for GRU, LSTM and Nested LSTM of depth 1..3; also with the compiler
   free to contract into FMAs and flush denormals (as GPU compilers may).  The
   same for the Adam kernel against NumPy.
   What only a GPU can confirm: tests/test_gpu.py (see docs/gpu.md).
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cuda_standin
from cuda_standin import HostBackend, fake_blas, host_ptr
from minirnn.kernels.cuda import _source, cublas
from minirnn.kernels.cuda.adam import adam_step
from minirnn.kernels.cuda._runtime import MAX_LOOPS
from minirnn.kernels.units import fast_unit
from minirnn.units import make_unit

NVCC = shutil.which("nvcc")
HOST_CXX = shutil.which("g++") or shutil.which("c++")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


# ------------------------------------------------------------------ nvcc compiles
def _forced_instantiations(filename: str) -> str:
    lines = ["", "// forced instantiations: the name expressions the loader gives NVRTC"]
    names = _source.module(filename)[2]
    lines.append("void* minirnn_force_instantiation[] = {")
    lines += [f"    (void*)&{expr}," for expr in names]
    lines.append("};")
    return "\n".join(lines) + "\n"


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("filename", _source.CU_FILES)
def test_cu_source_compiles_with_nvcc(tmp_path, filename, arch):
    src = tmp_path / filename
    src.write_text(_source.module(filename)[0] + _forced_instantiations(filename))
    out = tmp_path / (filename + ".cubin")
    proc = subprocess.run(
        [NVCC, "-std=c++17", f"-arch={arch}", "--cubin", "-Werror", "all-warnings", "-o", str(out), str(src)],
        capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "warning" not in log.lower(), log
    binary = out.read_bytes()
    for expr in _source.name_expressions(filename):
        name, t = expr[:-1].split("<")
        # Itanium mangling of a template kernel: _Z<len><name>I<f|d>E...
        mangled = f"_Z{len(name)}{name}I{'f' if t == 'float' else 'd'}E".encode()
        assert mangled in binary, f"{expr} missing from the {arch} cubin"


def test_every_cu_file_is_listed():
    here = sorted(p.name for p in _source.HERE.glob("*.cu"))
    assert here == sorted(_source.CU_FILES)
    for f in _source.CU_FILES:
        assert _source.name_expressions(f), f"{f} defines no kernel"


@pytest.mark.skipif(HOST_CXX is None, reason="no host C++ compiler")
@pytest.mark.parametrize("filename", _source.CU_FILES)
def test_runtime_source_needs_no_system_header(tmp_path, filename):
    """NVRTC has no system headers: with __CUDACC_RTC__ defined nothing may be included."""
    src = tmp_path / (filename + ".cpp")
    src.write_text(_source.source_text(filename))
    proc = subprocess.run([HOST_CXX, "-E", "-H", "-x", "c++", "-D__CUDACC__", "-D__CUDACC_RTC__", str(src)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    included = [ln for ln in proc.stderr.splitlines() if ln.startswith(".")]
    assert included == [], included


def test_parser_rejects_a_kernel_that_does_not_forward_its_parameters():
    bad = """template <typename T>
__global__ void k(int n, int H, const T* a, T* b)
{
    MR_FOR_EACH(idx, n) k_elem<T>(idx, H, b, a);
}"""
    with pytest.raises(ValueError, match="must call k_elem"):
        _source.parse_kernels(bad)


# ------------------------------------------------------------------- host harness
@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if cuda_standin.harness_command(Path("x.cpp"), Path("x.so")) is None:
        pytest.skip("no C++ compiler to build the host harness")
    return cuda_standin.build_harness(tmp_path_factory.mktemp("cuda_harness"))


@pytest.fixture(scope="module")
def contracted_harness(tmp_path_factory):
    """The same bodies built with FMA contraction, run with denormals flushed to zero (x86)."""
    if cuda_standin.harness_command(Path("x.cpp"), Path("x.so")) is None:
        pytest.skip("no C++ compiler to build the host harness")
    folder = tmp_path_factory.mktemp("cuda_harness_fma")
    try:
        return cuda_standin.build_harness(folder, cuda_standin.CONTRACTED, flush=True)
    except RuntimeError:   # a compiler without -march=native: contraction alone
        return cuda_standin.build_harness(folder, ("-ffp-contract=fast",), flush=True)


def _close(a, b, tol):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) / scale if b.size else 0.0
    assert err <= tol, f"relative error {err:.3g} > {tol}"


UNIT_CASES = [("gru", 1, False), ("lstm", 1, False), ("nlstm", 1, False), ("nlstm", 2, False),
              ("nlstm", 3, False), ("nlstm", 2, True), ("nlstm", 1, True)]


def _random_problem(unit, T, B, dtype, seed):
    rng = np.random.default_rng(seed)
    params = unit.init_params(rng, dtype)
    for k in params:  # move biases off their initial constants so every term matters
        params[k] = (params[k] + 0.1 * rng.standard_normal(params[k].shape)).astype(dtype)
    x = rng.standard_normal((T, B, unit.input_size)).astype(dtype)
    state0 = tuple((0.5 * rng.standard_normal((B, unit.hidden_size))).astype(dtype) for _ in unit.state_names)
    dhs = rng.standard_normal((T, B, unit.hidden_size)).astype(dtype)
    dstate_T = tuple(rng.standard_normal((B, unit.hidden_size)).astype(dtype) for _ in unit.state_names)
    return params, x, state0, dhs, dstate_T


@pytest.mark.parametrize("name,depth,outer_tanh", UNIT_CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_gpu_loop_matches_reference_on_host(harness, name, depth, outer_tanh, dtype, tol):
    _agrees_with_reference(harness, name, depth, outer_tanh, dtype, tol)


# Contracted a*b+c rounds once instead of twice, so results change in their last bits
# (measured on the development VM: largest error against the reference 3e-16 in float64,
# 1.2e-7 in float32, as with the strict build); the tolerances are the strict test's.
@pytest.mark.parametrize("name,depth,outer_tanh", UNIT_CASES)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_gpu_loop_matches_reference_with_fma_contraction(contracted_harness, name, depth, outer_tanh, dtype, tol):
    _agrees_with_reference(contracted_harness, name, depth, outer_tanh, dtype, tol)


def _agrees_with_reference(lib, name, depth, outer_tanh, dtype, tol):
    ref = make_unit(name, 5, 7, depth=depth, outer_tanh=outer_tanh)
    be = HostBackend(lib)
    fast = fast_unit(ref, "gpu", be)
    assert fast.param_shapes() == ref.param_shapes() and fast.state_names == ref.state_names
    params, x, state0, dhs, dstate_T = _random_problem(ref, T=6, B=3, dtype=dtype, seed=1)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    c64 = lambda t: tuple(a.astype(np.float64) for a in t)  # noqa: E731

    hs_r, st_r, cache_r = ref.forward(p64, x.astype(np.float64), c64(state0))
    dp_r, dx_r, ds_r = ref.backward(p64, cache_r, dhs.astype(np.float64), c64(dstate_T))

    hs, st, cache = fast.forward(params, x, state0)
    assert hs.dtype == dtype
    _close(hs, hs_r, tol)
    for a, b in zip(st, st_r):
        _close(a, b, tol)
    dp, dx, ds = fast.backward(params, cache, dhs, dstate_T)
    assert set(dp) == set(dp_r)
    for k in dp:
        assert dp[k].shape == dp_r[k].shape and dp[k].dtype == dtype, k
        _close(dp[k], dp_r[k], tol)
    _close(dx, dx_r, tol)
    for a, b in zip(ds, ds_r):
        _close(a, b, tol)

    # Without dstate_T (zeros), as the model calls it.
    _, _, cache_r = ref.forward(p64, x.astype(np.float64), c64(state0))
    dp_r, dx_r, ds_r = ref.backward(p64, cache_r, dhs.astype(np.float64))
    _, _, cache = fast.forward(params, x, state0)
    dp, dx, ds = fast.backward(params, cache, dhs)
    for k in dp:
        _close(dp[k], dp_r[k], tol)
    _close(dx, dx_r, tol)


def test_two_live_forwards_keep_their_own_buffers(harness):
    """Two caches alive at once (e.g. two batches) must not share a workspace."""
    ref = make_unit("nlstm", 4, 5, depth=2)
    fast = fast_unit(ref, "gpu", HostBackend(harness))
    pa, xa, sa, dha, _ = _random_problem(ref, T=5, B=2, dtype=np.float64, seed=2)
    _, xb, sb, dhb, _ = _random_problem(ref, T=7, B=2, dtype=np.float64, seed=3)
    hs_a, _, cache_a = fast.forward(pa, xa, sa)
    hs_b, _, cache_b = fast.forward(pa, xb, sb)
    assert cache_a.ws is not cache_b.ws
    dp_b, _, _ = fast.backward(pa, cache_b, dhb)
    dp_a, _, _ = fast.backward(pa, cache_a, dha)
    _, _, ra = ref.forward(pa, xa, sa)
    dp_ra, _, _ = ref.backward(pa, ra, dha)
    for k in dp_a:
        _close(dp_a[k], dp_ra[k], 1e-12)
    # A released workspace is reused, and hs returned earlier is not overwritten.
    hs_a_copy = hs_a.copy()
    ws_a = cache_a.ws
    del cache_a
    _, _, cache_c = fast.forward(pa, xa, sa)
    assert cache_c.ws is ws_a
    np.testing.assert_array_equal(hs_a, hs_a_copy)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-15), (np.float32, 1e-6)])
def test_adam_kernel_matches_numpy_on_host(harness, dtype, tol):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(1000).astype(dtype)
    m = (0.1 * rng.standard_normal(1000)).astype(dtype)
    v = (0.01 * rng.random(1000)).astype(dtype)
    p_r, m_r, v_r = p.copy(), m.copy(), v.copy()
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8
    for t in range(1, 4):
        g = rng.standard_normal(1000).astype(dtype)
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        adam_step(p, g, m, v, lr_t, b1, b2, eps, backend=HostBackend(harness))
        m_r = b1 * m_r + (1 - b1) * g
        v_r = b2 * v_r + (1 - b2) * g * g
        p_r = p_r - lr_t * m_r / (np.sqrt(v_r) + eps)
    _close(m, m_r, tol)
    _close(v, v_r, tol)
    _close(p, p_r, tol)


# ------------------------------------------------- the CUDA graph logic, on the host
@pytest.fixture
def graph_state():
    from minirnn.kernels.cuda import _runtime

    saved = dict(_runtime._state)
    _runtime.set_graphs(True)
    yield _runtime
    _runtime._state.clear()
    _runtime._state.update(saved)


@pytest.mark.parametrize("name,depth", [("gru", 1), ("lstm", 1), ("nlstm", 2)])
def test_graph_capture_and_replay_logic(harness, graph_state, name, depth):
    ref = make_unit(name, 4, 6, depth=depth)
    fast = fast_unit(ref, "gpu", HostBackend(harness))
    params, x, state0, dhs, dstate_T = _random_problem(ref, T=5, B=2, dtype=np.float64, seed=4)
    hs_r, _, c_r = ref.forward(params, x, state0)
    dp_r, dx_r, _ = ref.backward(params, c_r, dhs, dstate_T)
    before = graph_state.graph_status()
    for _ in range(4):  # eager, eager + capture + checked replay, replay, replay
        hs, _, cache = fast.forward(params, x, state0)
        dp, dx, _ = fast.backward(params, cache, dhs, dstate_T)
        _close(hs, hs_r, 1e-12)
        _close(dx, dx_r, 1e-12)
        for k in dp:
            _close(dp[k], dp_r[k], 1e-12)
        del cache  # as the model does: the workspace goes back to the pool before the next step
    after = graph_state.graph_status()
    assert after["fallback_reason"] is None
    assert after["captured"] - before["captured"] == 2
    assert after["replayed"] - before["replayed"] == 4
    # New weight arrays: the old graphs must not be replayed with stale addresses.
    params2 = {k: 0.5 * v for k, v in params.items()}
    hs2_r, _, _ = ref.forward(params2, x, state0)
    hs2, _, _ = fast.forward(params2, x, state0)
    _close(hs2, hs2_r, 1e-12)
    assert graph_state.graph_status()["replayed"] == after["replayed"]


def test_recorded_loops_per_workspace_are_bounded(harness, graph_state):
    """Every new length records (and later captures) a loop: a workspace keeps the MAX_LOOPS
    most recently used, so lengths that come and go cannot pile up graphs."""
    ref = make_unit("lstm", 3, 4)
    fast = fast_unit(ref, "gpu", HostBackend(harness))
    params, x, state0, dhs, _ = _random_problem(ref, T=16, B=2, dtype=np.float64, seed=9)
    assert MAX_LOOPS == 8                                          # four lengths, forward and backward
    for T in list(range(1, 12)) + [8, 12]:                         # all within one workspace (capacity 16)
        hs, _, cache = fast.forward(params, x[:T], state0)
        _close(hs, ref.forward(params, x[:T], state0)[0], 1e-12)
        fast.backward(params, cache, dhs[:T])
        ws = cache.ws
        del cache
    # 8 was used again after 9, so 9 is the least recently used length when 12 arrives.
    assert list(ws.loops) == [(d, T) for T in (10, 11, 8, 12) for d in ("fwd", "bwd")]


def test_failed_capture_falls_back_to_eager(harness, graph_state, caplog):
    ref = make_unit("lstm", 4, 6)
    fast = fast_unit(ref, "gpu", HostBackend(harness, fail_capture=True))
    params, x, state0, dhs, _ = _random_problem(ref, T=5, B=2, dtype=np.float64, seed=5)
    hs_r, _, _ = ref.forward(params, x, state0)
    with caplog.at_level("WARNING", logger="minirnn.cuda"):
        for _ in range(3):
            hs, _, cache = fast.forward(params, x, state0)
            fast.backward(params, cache, dhs)
            _close(hs, hs_r, 1e-12)
    status = graph_state.graph_status()
    assert not status["graphs"] and "capture failed" in status["fallback_reason"]
    assert sum("CUDA graphs disabled" in r.message for r in caplog.records) == 1


def test_gpu_argument_checks_reject_bad_calls(harness):
    be = HostBackend(harness)
    a = np.zeros((2, 4))
    adam = _source.kernels()["adam_step"]
    with pytest.raises(TypeError, match="takes 8 arguments"):
        be.launch("lstm_fwd_step", np.float64, 2, 1, a)
    with pytest.raises(TypeError, match="float64"):
        adam.convert(np.float64, 8, (a.astype(np.float32), a, a, a, 1.0, 0.9, 0.1, 0.9, 0.1, 1e-8), np.ndarray)
    with pytest.raises(TypeError, match="not contiguous"):
        adam.convert(np.float64, 8, (a.T, a, a, a, 1.0, 0.9, 0.1, 0.9, 0.1, 1e-8), np.ndarray)
    # A column block of a wider array (e.g. one gate's columns) is refused; a stack of
    # contiguous level blocks (levels, rows, cols) passes as its first block's address.
    with pytest.raises(TypeError, match="not contiguous"):
        adam.convert(np.float64, 8, (np.zeros((2, 12))[:, 4:], a, a, a, 1, 1, 1, 1, 1, 1), np.ndarray)
    levels = np.zeros((3, 5, 2, 4))[:, 1]
    assert adam.convert(np.float64, 8, (levels, a, a, a, 1, 1, 1, 1, 1, 1), np.ndarray)[1].base is not None


def test_recorded_loops_convert_arguments_once(harness, graph_state, monkeypatch):
    """Launch arguments are checked and converted when a loop is recorded, not per run."""
    conversions = []
    convert = _source.Kernel.convert
    monkeypatch.setattr(_source.Kernel, "convert", lambda self, *a: conversions.append(1) or convert(self, *a))
    ref = make_unit("nlstm", 4, 6, depth=2)
    be = HostBackend(harness)
    fast = fast_unit(ref, "gpu", be)
    params, x, state0, dhs, _ = _random_problem(ref, T=5, B=2, dtype=np.float64, seed=6)
    graph_state.set_graphs(False)   # eager runs only: each one replays the recorded operations
    counts = []
    for _ in range(3):
        _, _, cache = fast.forward(params, x, state0)
        fast.backward(params, cache, dhs)
        del cache
        counts.append((len(conversions), be.launches[0]))
    assert counts[0][0] > 0 and counts[1][0] == counts[0][0] and counts[2][0] == counts[0][0]
    assert counts[2][1] == 3 * counts[0][1] > 0   # ... while every run launches


def test_fallback_reason_is_one_line(harness, graph_state):
    ref = make_unit("gru", 4, 6)
    fast = fast_unit(ref, "gpu", HostBackend(harness, fail_capture=True))
    params, x, state0, _, _ = _random_problem(ref, T=4, B=2, dtype=np.float64, seed=8)
    for _ in range(2):
        fast.forward(params, x, state0)
    reason = graph_state.graph_status()["fallback_reason"]
    assert "capture invalidated (simulated)" in reason and "\n" not in reason


def test_eager_products_bind_cublas_to_the_current_stream(harness, graph_state):
    be = HostBackend(harness)
    a, b = np.ones((3, 4)), np.ones((4, 5))
    out = np.empty((3, 5))
    be.blas.lib.stream = 999
    be.gemm(a, b, out)
    assert be.blas.lib.stream == 0 and be.blas.lib.pointer_mode == cublas.POINTER_MODE_HOST
    np.testing.assert_array_equal(out, a @ b)


def test_two_threads_share_a_backend(harness, graph_state, monkeypatch):
    """minirnn serve computes in several threads: what one thread records, and the cuBLAS
    handle and stream it uses, are its own."""
    import threading

    monkeypatch.setattr(cublas, "load_cupy_cublas", lambda cupy: fake_blas(cupy.streams))
    be = HostBackend(harness)
    be._blas = None                       # one cuBLAS per thread, as on a GPU
    a, b = np.arange(12.0).reshape(3, 4), np.ones((4, 5))
    out_main, out_other = np.zeros((3, 5)), np.zeros((3, 5))
    started, done, handles = threading.Event(), threading.Event(), {}

    def other():
        started.wait()
        be.gemm(a, b, out_other)          # eager, while the main thread is recording
        handles["other"] = be.blas
        done.set()

    def loop():
        started.set()
        done.wait()
        be.gemm(a, b, out_main)

    thread = threading.Thread(target=other)
    thread.start()
    ops = be.record(loop)
    thread.join()
    handles["main"] = be.blas
    assert len(ops) == 1 and not out_main.any()      # recorded, not run
    np.testing.assert_array_equal(out_other, a @ b)  # run at once, not recorded by the other thread
    assert handles["main"] is not handles["other"]
    ops[0]()
    np.testing.assert_array_equal(out_main, a @ b)
    # Both threads train their own unit on the shared backend at the same time.
    results = {}

    def train(name):
        ref = make_unit(name, 4, 5)
        fast = fast_unit(ref, "gpu", be)
        params, x, state0, dhs, _ = _random_problem(ref, T=5, B=2, dtype=np.float64, seed=10)
        dp_r = ref.backward(params, ref.forward(params, x, state0)[2], dhs)[0]
        for _ in range(4):
            _, _, cache = fast.forward(params, x, state0)
            dp = fast.backward(params, cache, dhs)[0]
            del cache
        results[name] = max(float(np.max(np.abs(dp[k] - dp_r[k]))) for k in dp)

    threads = [threading.Thread(target=train, args=(n,)) for n in ("lstm", "gru")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.keys() == {"lstm", "gru"} and max(results.values()) <= 1e-12


# ----------------------------------------------------------- cuBLAS plans on the host
def _layouts(rng, rows, cols, dtype):
    """The operand layouts the units use: C-ordered, a transposed view (F-ordered),
    a row block of a taller matrix, and a column-major view of a row block."""
    c = rng.standard_normal((rows, cols)).astype(dtype)
    f = np.ascontiguousarray(rng.standard_normal((cols, rows)).astype(dtype)).T
    tall = rng.standard_normal((rows + 3, cols)).astype(dtype)
    wide_t = rng.standard_normal((cols + 2, rows)).astype(dtype)
    return {"C": c, "F": f, "rows-of-taller": tall[2:2 + rows], "T-of-row-block": wide_t[1:1 + cols].T}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,k,n", [(5, 7, 3), (1, 6, 4), (6, 1, 5), (4, 3, 1), (1, 1, 1)])
def test_gemm_plan_matches_numpy_matmul(dtype, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    blas = fake_blas()
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for la, a in _layouts(rng, m, k, dtype).items():
        for lb, b in _layouts(rng, k, n, dtype).items():
            big = np.full((m + 2, n), np.nan, dtype=dtype)
            out = big[1:1 + m]            # a row block: rows contiguous, neighbours must stay untouched
            blas.call(cublas.plan_gemm(a, b, out, host_ptr))
            _close(out, np.matmul(a.astype(np.float64), b.astype(np.float64)), tol)
            assert np.isnan(big[0]).all() and np.isnan(big[-1]).all(), (la, lb)


def test_gemm_plan_refuses_what_cublas_cannot_read():
    a = np.ones((4, 6))[:, ::2]    # no unit stride along either axis
    with pytest.raises(TypeError, match="unit stride"):
        cublas.plan_gemm(a, np.ones((3, 2)), np.empty((4, 2)), host_ptr)
    with pytest.raises(TypeError, match="row-major"):
        cublas.plan_gemm(np.ones((3, 4)), np.ones((4, 5)), np.empty((5, 3)).T, host_ptr)
    with pytest.raises(ValueError, match="do not match"):
        cublas.plan_gemm(np.ones((3, 4)), np.ones((5, 5)), np.empty((3, 5)), host_ptr)
    with pytest.raises(TypeError, match="one float dtype"):
        cublas.plan_gemm(np.ones((3, 4), np.float32), np.ones((4, 5)), np.empty((3, 5)), host_ptr)


def test_gemm_compute_types():
    assert cublas.compute_type(np.float64, "tf32") == cublas.COMPUTE_64F
    assert cublas.compute_type(np.float32) == cublas.COMPUTE_32F
    assert cublas.compute_type(np.float32, "tf32") == cublas.COMPUTE_32F_FAST_TF32
    with pytest.raises(ValueError, match="unknown precision"):
        cublas.compute_type(np.float32, "bf16")


def test_tf32_products_differ_from_fp32_by_tf32_rounding():
    from cuda_standin import tf32_round

    rng = np.random.default_rng(0)
    a = rng.standard_normal((16, 64)).astype(np.float32)
    b = rng.standard_normal((64, 8)).astype(np.float32)
    out32, out_tf = np.empty((16, 8), np.float32), np.empty((16, 8), np.float32)
    blas = fake_blas()
    blas.call(cublas.plan_gemm(a, b, out32, host_ptr, "fp32"))
    blas.call(cublas.plan_gemm(a, b, out_tf, host_ptr, "tf32"))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    _close(out_tf, tf32_round(a).astype(np.float64) @ tf32_round(b).astype(np.float64), 1e-5)
    err32 = np.abs(out32 - exact).max() / np.abs(exact).max()
    err_tf = np.abs(out_tf - exact).max() / np.abs(exact).max()
    assert err32 < 1e-6 < err_tf < 2e-3     # 2^-11 relative per input, summed over 64 terms
    assert tf32_round(np.float32(1 + 2 ** -11)) == 1.0 and tf32_round(np.float32(1 + 2 ** -10)) == 1 + 2 ** -10


# ------------------------------------------------------------------- softmax-CE launch
def test_softmax_xent_launch_uses_the_kernels_block_size():
    """xent.cu's reductions assume MR_XENT_THREADS threads per block; the launcher must pass it."""
    from minirnn.kernels.cuda import xent

    launches = []

    class _Backend:
        xp = np

        def launch(self, name, dtype, n, *args, grid=None, block=None):
            launches.append((name, n, grid, block))

    logits = np.zeros((3, 5), np.float32)
    xent.softmax_xent_chunk(logits, np.array([1, 2, 3]), 0.5, backend=_Backend())
    assert xent.BLOCK == _source.define("xent.cu", "MR_XENT_THREADS") == 256
    assert launches == [("softmax_xent_rows", 3, 3, xent.BLOCK)]
    with pytest.raises(ValueError, match="no integer #define"):
        _source.define("xent.cu", "MR_NOT_THERE")


# ---------------------------------------------- the whole GPU model path, on the host
@pytest.fixture
def host_gpu(harness):
    """Model(device="gpu", impl="fast") with NumPy standing in for CuPy: the model, the
    fast units on CupyBackend, their GEMM plans (cuBLAS stand-in) and the host-compiled kernel bodies."""
    backend = HostBackend(harness)
    seen = []
    run_loop = backend.run_loop

    def recording_run_loop(ws, key, loop, outputs, reset=None, params=()):
        seen.append((key, tuple(p.ctypes.data for p in params)))
        run_loop(ws, key, loop, outputs, reset, params)

    backend.run_loop = recording_run_loop
    backend.seen = seen
    with cuda_standin.emulated_gpu(backend):
        yield backend


@pytest.mark.parametrize("unit,layers,depth", [("gru", 2, 1), ("lstm", 2, 1), ("nlstm", 1, 2), ("nlstm", 2, 3)])
def test_gpu_model_path_matches_reference_on_host(host_gpu, unit, layers, depth):
    from minirnn.kernels.units import FastUnit
    from minirnn.model import Model

    kw = dict(unit=unit, hidden=6, layers=layers, depth=depth, input_vocab=28, output_vocab=30, seed=3,
              dtype="float64")
    ref = Model(device="cpu", impl="reference", **kw)
    gpu = Model(device="gpu", impl="fast", **kw)
    assert all(isinstance(u, FastUnit) and u.backend is host_gpu for u in gpu.units + [gpu.folded_first_unit])
    assert gpu.units[0].input_kernels == ref.units[0].input_kernels != ()
    rng = np.random.default_rng(0)
    source, target = rng.integers(1, 28, (3, 7)), rng.integers(0, 30, (3, 7))
    loss_r, grads_r = ref.loss_and_grads(source, target)
    for _ in range(2):   # the second step reuses the folded first-layer buffers
        loss_g, grads_g = gpu.loss_and_grads(source, target)
        assert abs(loss_g - loss_r) <= 1e-12 * max(1.0, abs(loss_r))
        assert set(grads_g) == set(grads_r)
        for k, g in grads_r.items():
            _close(grads_g[k], g, 1e-12)
    # The first layer's loops saw the same weight addresses in both steps (graphs can replay).
    first = [ptrs for key, ptrs in host_gpu.seen if key[0] == "fwd"]
    per_step = len(first) // 2
    assert per_step == layers and first[:per_step] == first[per_step:]


def test_cupy_bindings_fallback_passes_plain_addresses():
    """Without ctypes access to libcublas, the same calls go through CuPy's bindings,
    which take integer addresses: the plan's operands and the host scalars'."""
    calls = []

    class _CupyCublas:
        def setStream(self, handle, stream):
            calls.append(("setStream", handle, stream))

        def setPointerMode(self, handle, mode):
            calls.append(("setPointerMode", handle, mode))

        def gemmEx(self, *args):
            calls.append(("gemmEx",) + args)

    blas = cublas.Cublas(cublas.CupyWrappers(_CupyCublas()), 77)
    a, b, out = np.ones((2, 3)), np.ones((3, 4)), np.empty((2, 4))
    blas.bind(5)
    plan = cublas.plan_gemm(a, b, out, host_ptr)
    blas.call(plan)
    assert calls[0] == ("setStream", 77, 5) and calls[1] == ("setPointerMode", 77, 0)
    g = calls[2]
    assert g[1] == 77 and all(isinstance(v, int) for v in g[1:])
    assert (g[8], g[11], g[15]) == (b.ctypes.data, a.ctypes.data, out.ctypes.data)
    assert ctypes.c_double.from_address(g[7]).value == 1.0 and ctypes.c_double.from_address(g[14]).value == 0.0
