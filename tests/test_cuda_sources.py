"""The CUDA path, verified as far as a machine without a GPU allows.

1. Every .cu file (exactly the text NVRTC gets: local headers inlined) compiles
   with nvcc for sm_90 (and sm_80) with every float/double instantiation that the
   loader requests, with warnings treated as errors.  Skipped without nvcc.
2. The sources include no system header when compiled at run time (NVRTC has none).
3. The per-element bodies in gates.cuh are compiled for the host (g++, else nvcc)
   into a shared library with one loop per kernel, generated from the parsed
   kernel signatures.  The GPU units' own orchestration code
   (minirnn.kernels.cuda.units: buffers, time loops, carries, GEMMs) then runs on
   the CPU with NumPy GEMMs and those host loops, and must match the NumPy
   reference units to 1e-12 in float64, for GRU, LSTM and Nested LSTM of depth
   1..3.  The same for the Adam kernel against NumPy.
   What only a GPU can confirm: tests/test_gpu.py (see docs/gpu.md).
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minirnn.kernels.cuda import _source
from minirnn.kernels.cuda.adam import adam_step
from minirnn.kernels.cuda.units import cuda_unit
from minirnn.units import make_unit

NVCC = shutil.which("nvcc")
HOST_CXX = shutil.which("g++") or shutil.which("c++")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found")


# ------------------------------------------------------------------ nvcc compiles
def _forced_instantiations(filename: str) -> str:
    lines = ["", "// forced instantiations: the name expressions the loader gives NVRTC"]
    names = _source.name_expressions(filename)
    lines.append("void* minirnn_force_instantiation[] = {")
    lines += [f"    (void*)&{expr}," for expr in names]
    lines.append("};")
    return "\n".join(lines) + "\n"


@needs_nvcc
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("filename", _source.CU_FILES)
def test_cu_source_compiles_with_nvcc(tmp_path, filename, arch):
    src = tmp_path / filename
    src.write_text(_source.source_text(filename) + _forced_instantiations(filename))
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
_CTYPES = {"int32": ctypes.c_int, "int64": ctypes.c_longlong}
_FLOAT = {"double": (np.float64, ctypes.c_double, "d"), "float": (np.float32, ctypes.c_float, "f")}


def _harness_source() -> str:
    out = ['#include "gates.cuh"', ""]
    for k in _source.kernels().values():
        if not k.elementwise:
            continue
        for ctype_name, (_, _, suffix) in _FLOAT.items():
            params = ", ".join(f"{p.ctype.replace('T', ctype_name) if p.elem == 'T' else p.ctype} {p.name}"
                               for p in k.params)
            args = ", ".join(p.name for p in k.params[1:])
            out.append(f'extern "C" void {k.name}_{suffix}({params})\n'
                       f"{{\n    for (int idx = 0; idx < n; ++idx) {k.name}_elem<{ctype_name}>(idx, {args});\n}}\n")
    return "\n".join(out)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cuda_harness")
    src = tmp / "harness.cpp"
    src.write_text(_harness_source())
    lib = tmp / "libharness.so"
    if HOST_CXX is not None:
        cmd = [HOST_CXX, "-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Wextra",
               "-Werror", f"-I{_source.HERE}", str(src), "-o", str(lib)]
    elif NVCC is not None:
        cmd = [NVCC, "-std=c++17", "-O2", "-x", "cu", "-shared", "-Xcompiler", "-fPIC,-ffp-contract=off",
               f"-I{_source.HERE}", str(src), "-o", str(lib)]
    else:
        pytest.skip("no C++ compiler to build the host harness")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ctypes.CDLL(str(lib))


class HostBackend:
    """The GPU backend's interface, on the CPU: NumPy GEMMs and the host-compiled bodies.

    ``run_loop`` runs the loop, snapshots ``outputs()``, calls ``reset()`` and runs
    it again, and insists on identical results: that is what the GPU's graph
    capture relies on (a loop must be re-runnable after reset).
    """

    xp = np

    def __init__(self, lib):
        self.lib = lib
        self.loops = 0

    def gemm(self, a, b, out):
        assert out.flags.c_contiguous
        np.dot(a, b, out=out)

    @staticmethod
    def ptr(a):
        return a.ctypes.data

    def launch(self, name, dtype, n, *args, grid=None):
        spec = _source.kernels()[name]
        assert spec.elementwise, name
        assert len(args) + 1 == len(spec.params), f"{name}: wrong argument count"
        fdt, fct, suffix = _FLOAT["double" if np.dtype(dtype) == np.float64 else "float"]
        conv = [ctypes.c_int(int(n))]
        for p, a in zip(spec.params[1:], args):
            if p.kind == "scalar":
                conv.append(fct(a) if p.elem == "T" else _CTYPES[p.elem](int(a)))
            else:
                want = np.dtype(fdt) if p.elem == "T" else np.dtype(p.elem)
                assert isinstance(a, np.ndarray) and a.dtype == want and a.flags.c_contiguous, \
                    f"{name}: {p.name} must be a C-contiguous {want} array"
                conv.append(ctypes.c_void_p(a.ctypes.data))
        getattr(self.lib, f"{name}_{suffix}")(*conv)

    def run_loop(self, ws, key, loop, outputs, reset=None, params=()):
        self.loops += 1
        loop()
        first = [a.copy() for a in outputs()]
        if reset is not None:
            reset()
        loop()
        for a, f in zip(outputs(), first):
            np.testing.assert_array_equal(a, f, err_msg=f"loop {key} is not re-runnable after reset")


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
def test_gpu_orchestration_matches_reference_on_host(harness, name, depth, outer_tanh, dtype, tol):
    ref = make_unit(name, 5, 7, depth=depth, outer_tanh=outer_tanh)
    be = HostBackend(harness)
    fast = cuda_unit(ref, backend=be)
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
    fast = cuda_unit(ref, backend=HostBackend(harness))
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
class _FakeGraph:
    def __init__(self, ops):
        self.ops = ops

    def launch(self, stream=None):
        for op in self.ops:
            op()


class _FakeStream:
    """Stream capture stand-in: while capturing, the backend records work instead of running it."""

    def __init__(self, backend, fail=False):
        self.backend, self.fail = backend, fail

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        self.backend.recording = []

    def end_capture(self):
        ops, self.backend.recording = self.backend.recording, None
        if self.fail:
            raise RuntimeError("capture invalidated (simulated)")
        return _FakeGraph(ops)


class RecordingBackend:
    """_runtime.CupyBackend's run_loop / capture / replay check and argument checks,
    with NumPy arrays, the host harness, and a fake CuPy whose graphs replay recorded work."""

    def __new__(cls, lib, fail_capture=False):
        import contextlib
        import types

        from minirnn.kernels.cuda._runtime import CupyBackend

        class _Backend(CupyBackend):
            def __init__(self):
                self.host = HostBackend(lib)
                self.recording = None
                self.max_blocks = 1
                self._capture_stream = _FakeStream(self, fail_capture)
                self.xp = np
                self.cp = types.SimpleNamespace(
                    ndarray=np.ndarray, allclose=np.allclose,
                    cuda=types.SimpleNamespace(using_allocator=lambda fn: contextlib.nullcontext(),
                                               get_current_stream=lambda: None))

            def _do(self, op):
                if self.recording is not None:
                    self.recording.append(op)
                else:
                    op()

            def gemm(self, a, b, out):
                self._do(lambda: np.dot(a, b, out=out))

            def launch(self, name, dtype, n, *args, grid=None):
                self.convert_args(name, dtype, n, args)  # the GPU's argument checks, on NumPy arrays
                self._do(lambda: self.host.launch(name, dtype, n, *args))

            @staticmethod
            def ptr(a):
                return a.ctypes.data

        return _Backend()


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
    fast = cuda_unit(ref, backend=RecordingBackend(harness))
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


def test_failed_capture_falls_back_to_eager(harness, graph_state, caplog):
    ref = make_unit("lstm", 4, 6)
    fast = cuda_unit(ref, backend=RecordingBackend(harness, fail_capture=True))
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
    be = RecordingBackend(harness)
    a = np.zeros((2, 4))
    with pytest.raises(TypeError, match="takes 8 arguments"):
        be.launch("lstm_fwd_step", np.float64, 2, 1, a)
    with pytest.raises(TypeError, match="float64"):
        be.convert_args("adam_step", np.float64, 8, (a.astype(np.float32), a, a, a, 1.0, 0.9, 0.1, 0.9, 0.1, 1e-8))
    with pytest.raises(TypeError, match="not contiguous"):
        be.convert_args("adam_step", np.float64, 8, (a.T, a, a, a, 1.0, 0.9, 0.1, 0.9, 0.1, 1e-8))
