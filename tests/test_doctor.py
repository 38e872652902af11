"""`minirnn doctor` as a user runs it (real processes), and the BLAS inspection it shares with bench."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minirnn.machine import blas

from minirnn.machine import doctor
from minirnn.backend import gpu_available


def run_doctor(*args, env=None):
    return subprocess.run([sys.executable, "-m", "minirnn", "doctor", *args], capture_output=True, text=True,
                          timeout=300, env=env)


def test_cpu_checks_as_a_user_sees_them():
    proc = run_doctor("--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [ln.split()[1] for ln in lines[:-1]] == list(doctor.CPU_NAMES)
    assert all(ln.split()[0] in ("ok", "warn") for ln in lines[:-1]), proc.stdout
    assert f"numpy {np.__version__}" in proc.stdout and lines[-1] == "CPU path: ready"
    assert proc.stderr == ""


@pytest.mark.skipif(gpu_available(), reason="checks what a machine without a usable GPU is told")
def test_without_a_gpu_it_says_why_in_one_line_and_no_traceback():
    proc = run_doctor("--json")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout)
    checks = report["checks"]
    assert all(c["status"] in doctor.STATUSES for c in checks)
    gpu = [c for c in checks if c["name"] not in doctor.CPU_NAMES]
    failed = [c for c in gpu if c["status"] == "fail"]
    # the first GPU failure says what is wrong and what to do; every check needing it is skipped, saying so
    assert failed and failed[0]["detail"] and failed[0]["fix"], gpu
    assert report["summary"].startswith("CPU path: ready; GPU path: not usable (")
    assert gpu[-1]["name"] == "gpu = cpu" and gpu[-1]["status"] == "skip" and "needs" in gpu[-1]["detail"]
    assert all("\n" not in c["detail"] + c["fix"] for c in checks)
    strict = run_doctor("--device", "gpu")                 # a script asking for the GPU gets a non-zero exit
    assert strict.returncode == 1 and "GPU path: not usable" in strict.stdout.splitlines()[-1]
    assert "Traceback" not in strict.stderr


def test_without_cupy_every_gpu_check_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)        # import cupy raises ImportError
    checks = doctor.gpu_checks()
    assert checks[0] == doctor.Check("cupy", "fail", "CuPy is not importable (ModuleNotFoundError)", doctor.GPU_EXTRA)
    assert all(c.status == "skip" for c in checks[1:]) and len(checks) == 9
    assert not doctor.ready(doctor.cpu_checks() + checks, gpu=True)
    assert doctor.ready(doctor.cpu_checks() + checks, gpu=False)


def test_blas_threads_are_read_from_the_library():
    """The thread count comes from OpenBLAS itself: a process limited to one thread reports one."""
    code = "import json; from minirnn.machine.blas import blas_info; print(json.dumps(blas_info()))"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    info = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                     timeout=120, check=True).stdout)
    if info["library"] != "openblas":
        pytest.skip(f"NumPy uses {info['library']}, not OpenBLAS")
    assert info["threads"] == 1 and info["architecture"] and info["version"] and os.path.isfile(info["path"])
    if blas.CORETYPE not in os.environ:                          # no override: the same kernels either way
        assert blas.natural_architecture() == info["architecture"]


def test_a_coretype_override_is_named_with_what_to_unset():
    note = blas.coretype_note("Haswell", "Haswell", "SkylakeX")
    assert note == ("OPENBLAS_CORETYPE=Haswell makes OpenBLAS use its Haswell kernels, but this CPU gets SkylakeX "
                    "without it: unset OPENBLAS_CORETYPE for the CPU's own (faster) kernels")
    assert blas.coretype_note("skylakex", "SkylakeX", "SkylakeX") is None   # forcing what it picks anyway
    assert blas.coretype_note(None, "SkylakeX", "SkylakeX") is None


@pytest.mark.gpu
def test_on_a_gpu_every_check_passes():
    checks = doctor.run_checks()
    bad = [c for c in checks if c.status not in ("ok", "warn") or (c.status == "warn" and c.name != "nccl")]
    assert bad == [], bad
    assert doctor.ready(checks, gpu=True)


def test_a_forced_kernel_is_warned_about_by_bench_doctor_and_the_benchmarks():
    # The environment is given, not set: OPENBLAS_CORETYPE is never changed in tests.
    info = {"library": "openblas", "version": "0.3.31", "architecture": "Haswell", "threads": 2, "path": "lib.so"}
    forced = {blas.CORETYPE: "Haswell"}
    assert blas.forced_kernels_note(info, "SkylakeX", forced) == blas.coretype_note("Haswell", "Haswell", "SkylakeX")
    assert blas.forced_kernels_note(info, "Haswell", forced) is None      # what this CPU picks anyway
    assert blas.forced_kernels_note(info, "SkylakeX", {}) is None         # nothing forced: nothing asked
    lines = blas.report_lines()
    assert lines[0].startswith("BLAS: ") and all(line.startswith("warning: ") for line in lines[1:])
