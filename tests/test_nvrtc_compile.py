"""Every CUDA kernel compiled as a card will compile it, without a card.

The GPU path hands each .cu file to ``cupy.RawModule`` (kernels/cuda/_runtime.py):
NVRTC compiles the source text with the float and double instantiations named as
name expressions, and the launcher fetches each instance by its lowered (mangled)
name.  Here the same source text, options and name expressions go through CuPy's
own NVRTC path (``cupy.cuda.compiler.compile_using_nvrtc``, which adds CuPy's
options), with NVRTC from the ``nvidia-cuda-nvrtc`` wheel, for sm_80 and sm_90.
Only two things CuPy does on a card are done by hand, both checked against CuPy:
the architecture option (its lookup asks the device for its compute capability)
and ``-ftz=true`` (added by the caching layer, which loads the binary onto the
device).  The PTX NVRTC produced then goes through ptxas from the
``nvidia-cuda-nvcc`` wheel: any error, warning, register spill or local memory
fails.  Registers per kernel are in docs/gpu.md.

Skipped, with the reason, without CuPy or those wheels (CI installs them).
"""
from __future__ import annotations

import inspect
import io
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from minirnn.kernels.cuda import _source

from cuda_wheels import wheel_file

ARCHS = ("90", "80")
DTYPES = {np.float32: "f", np.float64: "d"}


def _nvrtc_compiler():
    try:
        from cupy.cuda import compiler

        compiler._get_nvrtc_version()     # loads libnvrtc
        return compiler, None
    except Exception as exc:
        return None, f"CuPy with NVRTC not usable here ({type(exc).__name__}): pip install cupy-cuda13x nvidia-cuda-nvrtc"


COMPILER, WHY_NOT = _nvrtc_compiler()
PTXAS = wheel_file("nvidia-cuda-nvcc", "bin/ptxas")
needs_nvrtc = pytest.mark.skipif(COMPILER is None, reason=str(WHY_NOT))
needs_ptxas = pytest.mark.skipif(PTXAS is None, reason="ptxas not found: pip install nvidia-cuda-nvcc")


def compile_like_cupy(monkeypatch, source: str, names, arch: str):
    """(cubin, lowered names, PTX, NVRTC options, NVRTC log) of ``source`` compiled by CuPy's NVRTC path."""
    compiler = COMPILER
    # CuPy's own architecture choice for a device of compute capability ``arch``, minus the device query.
    assert not compiler._use_ptx and int(arch) <= int(compiler._get_max_compute_capability())
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc", lambda arch=None: (f"-arch=sm_{arch}", "cubin"))
    seen = {}
    real = compiler.nvrtc.compileProgram

    def compile_program(prog, options):        # CuPy's call, observed: its options and the PTX it discards
        seen["options"] = tuple(options)
        real(prog, options)
        seen["ptx"] = compiler.nvrtc.getPTX(prog)

    monkeypatch.setattr(compiler.nvrtc, "compileProgram", compile_program)
    log = io.StringIO()
    try:
        cubin, mapping = compiler.compile_using_nvrtc(source, _source.NVRTC_OPTIONS + ("-ftz=true",), arch=arch,
                                                      name_expressions=list(names), log_stream=log)
    finally:
        monkeypatch.undo()
    return cubin, mapping, seen["ptx"], seen["options"], log.getvalue()


def ptxas_report(ptx: bytes, arch: str, tmp_path: Path) -> tuple[int, str, dict]:
    """ptxas's exit status, its output and, per entry function, its registers, stack, spills and lmem."""
    src = tmp_path / f"kernels_{arch}.ptx"
    src.write_bytes(ptx.rstrip(b"\0"))
    proc = subprocess.run([str(PTXAS), f"-arch=sm_{arch}", "-v", "--warn-on-spills", "--warn-on-local-memory-usage",
                           "--warning-as-error", "-o", str(tmp_path / "out.cubin"), str(src)],
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    entries = {}
    for chunk in re.split(r"Compiling entry function '", out)[1:]:
        name = chunk.split("'", 1)[0]
        number = lambda pattern: int(m.group(1)) if (m := re.search(pattern, chunk)) else 0   # noqa: E731
        entries[name] = {"registers": number(r"Used (\d+) registers"), "stack": number(r"(\d+) bytes stack frame"),
                         "spill stores": number(r"(\d+) bytes spill stores"),
                         "spill loads": number(r"(\d+) bytes spill loads"), "lmem": number(r"(\d+) bytes lmem")}
    return proc.returncode, out, entries


def problems(rc: int, out: str, entries: dict) -> list[str]:
    """What makes a ptxas run unacceptable: errors, warnings, spills, local memory."""
    found = [] if rc == 0 else [f"ptxas exit status {rc}"]
    found += [ln.strip() for ln in out.splitlines() if "warning" in ln.lower() or "error" in ln.lower()]
    for name, e in entries.items():
        found += [f"{name}: {e[key]} bytes {key}" for key in ("stack", "spill stores", "spill loads", "lmem") if e[key]]
    return found


def test_cupy_still_adds_the_options_this_test_adds_by_hand():
    if COMPILER is None:
        pytest.skip(str(WHY_NOT))
    assert "options += ('-ftz=true',)" in inspect.getsource(COMPILER._compile_with_cache_cuda)
    body = inspect.getsource(COMPILER._get_arch_for_options_for_nvrtc)
    assert "return f'-arch=sm_{arch}', 'cubin'" in body


@needs_nvrtc
@needs_ptxas
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("filename", _source.CU_FILES)
def test_kernels_compile_as_the_runtime_compiles_them(monkeypatch, tmp_path, filename, arch):
    text, _, names = _source.module(filename)           # what the runtime hands NVRTC
    cubin, mapping, ptx, options, log = compile_like_cupy(monkeypatch, text, names, arch)
    assert f"-arch=sm_{arch}" in options and "-ftz=true" in options and set(_source.NVRTC_OPTIONS) <= set(options)
    assert log.strip() == "", log                           # NVRTC said nothing: no warning
    # The launcher asks for instance_name(kernel, dtype): each must lower to that template instance.
    kernels = [k for k in _source.kernels().values() if k.file == filename]
    assert set(mapping) == set(names) == {_source.instance_name(k.name, dt) for k in kernels for dt in DTYPES}
    for k in kernels:
        for dt, code in DTYPES.items():
            lowered = mapping[_source.instance_name(k.name, dt)]
            assert lowered.startswith(f"_Z{len(k.name)}{k.name}I{code}E"), lowered
            assert lowered.encode() in cubin
    rc, out, entries = ptxas_report(ptx, arch, tmp_path)
    assert set(entries) == set(mapping.values()), out
    assert problems(rc, out, entries) == [], out
    assert all(0 < e["registers"] <= 64 for e in entries.values()), entries   # 64: docs/gpu.md's budget


def test_docs_record_registers_of_every_kernel():
    text = (Path(__file__).resolve().parents[1] / "docs" / "gpu.md").read_text()
    table = text.split("### Registers per kernel", 1)[1].split("\n## ", 1)[0]
    for name in _source.kernels():
        assert f"| `{name}` |" in table, f"docs/gpu.md's register table misses {name}"


# ------------------------------------------------------------------ deliberate breaks
BROKEN_LOCAL = """
template <typename T>
__global__ void uses_local(int n, T* out)
{
    T buf[64];
    for (int i = 0; i < 64; ++i) buf[i] = out[i] * T(i);
    out[0] = buf[n & 63];          // an index known only at run time: the array lives in local memory
}
"""


@needs_nvrtc
@needs_ptxas
def test_the_checks_catch_broken_kernels(monkeypatch, tmp_path):
    source, _, names = _source.module("adam.cu")
    # a kernel that does not compile
    with pytest.raises(COMPILER.CompileException, match="undefined"):
        compile_like_cupy(monkeypatch, source.replace("adam_step_elem<T>(", "adam_step_elemm<T>(", 1), names, "90")
    # a name expression the launcher would ask for but the source does not define
    with pytest.raises(COMPILER.CompileException):
        compile_like_cupy(monkeypatch, source, names + ["adam_stepp<float>"], "90")
    # a kernel NVRTC warns about: the log the main test requires to be empty is not
    warned = "template <typename T> __global__ void k(int n, T* out) { int unused = n; out[0] = T(1); }"
    assert "warning" in compile_like_cupy(monkeypatch, warned, ["k<float>"], "90")[4]
    # a kernel that needs local memory
    _, mapping, ptx, _, _ = compile_like_cupy(monkeypatch, BROKEN_LOCAL, ["uses_local<double>"], "90")
    rc, out, entries = ptxas_report(ptx, "90", tmp_path)
    found = problems(rc, out, entries)
    assert rc != 0 and any("local memory" in p.lower() or "lmem" in p or "stack" in p for p in found), out
