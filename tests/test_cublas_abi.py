"""The ctypes declarations of kernels/cuda/cublas.py against the real cuBLAS headers.

ctypes trusts what it is told: a parameter declared ``c_int`` where cuBLAS takes a
``size_t`` or a pointer passes garbage without any error.  So the declarations
(read from ``cublas._declare`` itself) and the enum values the module hard-codes
are turned into C11 ``_Static_assert``s and compiled against ``cublas_api.h`` and
``library_types.h`` from the CUDA wheels (nvidia-cublas, nvidia-cuda-runtime,
nvidia-cuda-cccl): a declaration or value that does not match fails the build,
naming the function and parameter.  Each header prototype, read from the
preprocessed headers, is itself asserted to be the compiler's type of that
function, so the reading cannot drift from the header.

Skipped, with the reason, without the wheels or a C compiler (CI installs them).
"""
from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import types
from pathlib import Path

import pytest

from minirnn.kernels.cuda import cublas

from cuda_wheels import wheel_file

CC = shutil.which("gcc") or shutil.which("clang")
HEADERS = [wheel_file("nvidia-cublas", "include/cublas_api.h"),
           wheel_file("nvidia-cuda-runtime", "include/library_types.h"),
           wheel_file("nvidia-cuda-cccl", "include/nv/target")]   # cuda_fp16.h, included by cublas_api.h, needs it
pytestmark = [
    pytest.mark.skipif(CC is None, reason="no gcc or clang to compile the checks"),
    pytest.mark.skipif(None in HEADERS, reason="cuBLAS headers not found: pip install nvidia-cublas nvidia-cuda-runtime "
                                               "nvidia-cuda-cccl"),
]

# The module's constants -> the header's enumerators they stand for.
ENUMS = {"OP_N": "CUBLAS_OP_N", "OP_T": "CUBLAS_OP_T", "CUDA_R_32F": "CUDA_R_32F", "CUDA_R_64F": "CUDA_R_64F",
         "COMPUTE_32F": "CUBLAS_COMPUTE_32F", "COMPUTE_32F_FAST_TF32": "CUBLAS_COMPUTE_32F_FAST_TF32",
         "COMPUTE_64F": "CUBLAS_COMPUTE_64F", "GEMM_DEFAULT": "CUBLAS_GEMM_DEFAULT",
         "POINTER_MODE_HOST": "CUBLAS_POINTER_MODE_HOST"}
NOT_ENUMS = {"WORKSPACE_BYTES"}

# What a ctypes type requires of the C type in that place (GCC's type classes: 1 integer, 3 enum, 5 pointer).
RULES = {
    ctypes.c_void_p: ("c_void_p", "a pointer", "CLASS_OF({t}) == 5"),
    ctypes.c_int: ("c_int", "a 32-bit integer or enum", "(CLASS_OF({t}) == 1 || CLASS_OF({t}) == 3) && sizeof({t}) == 4"),
    ctypes.c_size_t: ("c_size_t", "size_t", "__builtin_types_compatible_p({t}, size_t)"),   # c_size_t is c_ulong
}
PRELUDE = """#include <stddef.h>
#include "cublas_api.h"
#include "library_types.h"
#define CLASS_OF(T) __builtin_classify_type(*(T*)0)
"""


def declarations(declare=cublas._declare) -> dict:
    """{function: (restype, [argtypes])} as ``declare`` sets them on a library."""
    functions = {}

    class Library:
        def __getattr__(self, name):
            return functions.setdefault(name, types.SimpleNamespace(argtypes=None, restype=None))

    declare(Library())
    return {name: (fn.restype, list(fn.argtypes)) for name, fn in functions.items()}


def include_flags() -> list[str]:
    return [f"-I{d}" for d in sorted({str(h.parent) if h.name != "target" else str(h.parent.parent)
                                      for h in HEADERS})]


def header_prototypes(names) -> dict:
    """{function: (return type, [parameter types])} read from the preprocessed headers."""
    proc = subprocess.run([CC, "-E", "-P", "-x", "c", *include_flags(), "-"], input=PRELUDE, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = {}
    for name in names:
        m = re.search(rf"(\w+)\s+{name}\s*\(([^;]*?)\)\s*;", proc.stdout, re.S)
        assert m is not None, f"{name} is not declared in the cuBLAS headers"
        params = [re.match(r"(.*?)\s*\b\w+\s*$", " ".join(p.split())).group(1) for p in m.group(2).split(",")]
        found[name] = (m.group(1), params)
    return found


def abi_checks(decls: dict, constants: dict) -> str:
    """C11 source asserting ``decls`` and ``constants`` against the headers."""
    protos = header_prototypes(decls)
    lines = [PRELUDE]
    for name, (restype, argtypes) in decls.items():
        ret, params = protos[name]
        lines.append(f'_Static_assert(__builtin_types_compatible_p(__typeof__({name}), {ret} ({", ".join(params)})), '
                     f'"{name}: the prototype read from the header");')
        lines.append(f'_Static_assert({len(params)} == {len(argtypes)}, '
                     f'"{name}: the header has {len(params)} parameters, ctypes declares {len(argtypes)}");')
        for i, (ctype, ptype) in enumerate(zip([restype] + argtypes, [ret] + params)):
            cname, what, rule = RULES[ctype]
            place = "return type" if i == 0 else f"parameter {i - 1}"
            lines.append(f'_Static_assert({rule.format(t=ptype)}, '
                         f'"{name} {place} ({ptype}): ctypes declares {cname}, needing {what}");')
    for const, value in constants.items():
        lines.append(f'_Static_assert({ENUMS[const]} == {value}, "cublas.{const} = {value}, but the header\'s '
                     f'{ENUMS[const]} differs");')
    return "\n".join(lines) + "\n"


def compile_checks(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "cublas_abi.c"
    path.write_text(source)
    return subprocess.run([CC, "-std=c11", "-fsyntax-only", *include_flags(), str(path)], capture_output=True,
                          text=True, timeout=120)


def module_constants() -> dict:
    return {k: v for k, v in vars(cublas).items() if k.isupper() and isinstance(v, int) and k not in NOT_ENUMS}


def test_every_constant_is_checked():
    assert set(module_constants()) == set(ENUMS)


def test_declarations_match_the_cublas_headers(tmp_path):
    decls = declarations()
    assert set(decls) == {"cublasGemmEx", "cublasSetStream_v2", "cublasSetPointerMode_v2", "cublasSetWorkspace_v2"}
    proc = compile_checks(abi_checks(decls, module_constants()), tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_broken_declaration_or_value_fails(tmp_path):
    """Deliberate breaks: each must stop the compile with the message naming it."""
    good, constants = declarations(), module_constants()
    size_t_m = {**good, "cublasGemmEx": (good["cublasGemmEx"][0],
                                         good["cublasGemmEx"][1][:3] + [ctypes.c_size_t] + good["cublasGemmEx"][1][4:])}
    short = {**good, "cublasGemmEx": (good["cublasGemmEx"][0], good["cublasGemmEx"][1][:-1])}
    int_stream = {**good, "cublasSetStream_v2": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int])}
    cases = [
        (size_t_m, constants, "cublasGemmEx parameter 3 (int): ctypes declares c_size_t"),
        (short, constants, "cublasGemmEx: the header has 19 parameters, ctypes declares 18"),
        (int_stream, constants, "cublasSetStream_v2 parameter 1 (cudaStream_t): ctypes declares c_int"),
        (good, {**constants, "COMPUTE_32F_FAST_TF32": 74}, "cublas.COMPUTE_32F_FAST_TF32 = 74, but the header"),
    ]
    for decls, values, message in cases:
        proc = compile_checks(abi_checks(decls, values), tmp_path)
        assert proc.returncode != 0 and message in proc.stderr, (message, proc.stderr[-2000:])
