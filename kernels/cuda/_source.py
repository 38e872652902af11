"""The CUDA sources as text, and what their kernels expect.  Pure Python: no cupy.

Every ``*.cu`` file here holds thin ``template <typename T> __global__`` wrappers;
the per-element work lives in ``gates.cuh``.  This module

* reads a ``.cu`` file and inlines the local headers it includes, giving the one
  self-contained text that NVRTC compiles (``source_text``).  Inlining (instead
  of an ``-I`` option) keeps CuPy's compile cache honest: its key is the source
  text, so a change to a header changes the key;
* parses each kernel's parameter list (``kernels``), so the launcher can check
  and convert arguments (``int`` -> int32, ``long long`` -> int64, ``T`` -> the
  dtype's scalar, pointers -> contiguous arrays of the right dtype) and the CPU
  tests can build a host harness with exactly the same signatures;
* lists the template instantiations to compile (``name_expressions``);
* ``module(file)`` gives all NVRTC needs for one file: text, options, name
  expressions (the runtime compiles exactly that, and so do the tests);
* ``Kernel.convert`` checks and converts a launch's arguments.

Every elementwise kernel has the canonical body
``MR_FOR_EACH(idx, n) <name>_elem<T>(idx, <every parameter after n, in order>);``
which ``kernels`` verifies, so the GPU wrapper and the host harness provably
call the same per-element function with the same arguments.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CU_FILES = ("lstm.cu", "gru.cu", "nlstm.cu", "adam.cu", "xent.cu")
EXTRA_FILES: list[str] = []   # absolute paths of .cu files of units outside minirnn (add_file)
NVRTC_OPTIONS = ("--std=c++17",)
DTYPE_NAMES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

_INCLUDE_RE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$', re.M)
_KERNEL_RE = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(([^)]*)\)\s*\{", re.S)
_BODY_RE = re.compile(r"\s*MR_FOR_EACH\(idx,\s*n\)\s*(\w+)<T>\(idx,\s*([^;]*)\);\s*\}")

# C parameter type -> (kind, element type).  "T" is the template's float type.
_TYPES = {
    "int": ("scalar", "int32"),
    "long long": ("scalar", "int64"),
    "T": ("scalar", "T"),
    "T*": ("array", "T"),
    "const T*": ("array", "T"),
    "double*": ("array", "float64"),
    "const long long*": ("array", "int64"),
}


@dataclass(frozen=True)
class Param:
    ctype: str      # as written, normalised: "const T*", "int", ...
    name: str
    kind: str       # "scalar" or "array"
    elem: str       # "int32", "int64", "float64" or "T"

    def numpy_dtype(self, T) -> np.dtype:
        return np.dtype(T) if self.elem == "T" else np.dtype(self.elem)


@dataclass(frozen=True)
class Kernel:
    name: str
    file: str
    params: tuple[Param, ...]
    elementwise: bool   # canonical MR_FOR_EACH body calling <name>_elem

    def convert(self, dtype, n: int, args, array_type) -> tuple:
        """The launch arguments (n, *args) as the C signature wants them: int -> int32,
        long long -> int64, T -> the dtype's scalar; arrays of ``array_type`` checked for
        dtype and layout.  An array is C-contiguous, or a stack of C-contiguous blocks
        (levels, rows, cols) whose distance travels as a separate ``long long`` argument."""
        if len(args) + 1 != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params) - 1} arguments after n, got {len(args)}")
        out = [np.int32(_check_int32(n, self.name, "n"))]
        for p, a in zip(self.params[1:], args):
            want = p.numpy_dtype(dtype)
            if p.kind == "scalar":
                out.append(np.int32(_check_int32(a, self.name, p.name)) if want == np.int32 else want.type(a))
                continue
            if not isinstance(a, array_type):
                raise TypeError(f"{self.name}: {p.name} must be a {array_type.__module__} array, "
                                f"got {type(a).__name__}")
            blocks = a.flags.c_contiguous or (a.ndim == 3 and a[0].flags.c_contiguous and a.shape[0] > 0
                                              and a.strides[0] % a.itemsize == 0)
            if a.dtype != want or not blocks:
                raise TypeError(f"{self.name}: {p.name} must be a C-contiguous {want} array, got {a.dtype}"
                                f"{'' if blocks else ' (not contiguous)'}")
            out.append(a if a.flags.c_contiguous else a[0])
        return tuple(out)


def _check_int32(v, kernel: str, name: str) -> int:
    v = int(v)
    if not -2 ** 31 <= v < 2 ** 31:
        raise ValueError(f"{kernel}: {name}={v} does not fit a 32-bit int")
    return v


def source_text(filename: str) -> str:
    """The .cu file (in this folder, or an absolute path) with this folder's headers inlined (each once)."""
    seen: set[str] = set()

    def expand(name: str) -> str:
        text = (HERE / name).read_text()   # an absolute name replaces HERE

        def include(match: re.Match) -> str:
            header = match.group(1)
            if header in seen:
                return f"// (already included: {header})"
            seen.add(header)
            return f"// ---- begin {header}\n{expand(header)}\n// ---- end {header}"

        return _INCLUDE_RE.sub(include, text)

    return expand(filename)


def _parse_param(text: str) -> Param:
    text = " ".join(text.replace("*", "* ").split())
    ctype, _, name = text.rpartition(" ")
    ctype = ctype.replace(" *", "*")
    if ctype not in _TYPES or not name.isidentifier():
        raise ValueError(f"unsupported kernel parameter {text!r}")
    kind, elem = _TYPES[ctype]
    return Param(ctype, name, kind, elem)


def parse_kernels(text: str, filename: str = "<text>") -> dict[str, Kernel]:
    out: dict[str, Kernel] = {}
    for m in _KERNEL_RE.finditer(text):
        name, raw = m.group(1), m.group(2)
        params = tuple(_parse_param(p) for p in raw.split(","))
        if params[0].ctype != "int":
            raise ValueError(f"{filename}: kernel {name} must take an int element/row count first")
        body = _BODY_RE.match(text, m.end())
        elementwise = "MR_FOR_EACH" in text[m.end():m.end() + 200].split("}")[0]
        if elementwise:
            if body is None:
                raise ValueError(f"{filename}: kernel {name} does not have the canonical MR_FOR_EACH body")
            elem_name = body.group(1)
            args = [a.strip() for a in body.group(2).split(",")]
            if elem_name != f"{name}_elem" or args != [p.name for p in params[1:]] or params[0].name != "n":
                raise ValueError(f"{filename}: kernel {name} must call {name}_elem<T>(idx, <its parameters after n>)")
        out[name] = Kernel(name, filename, params, elementwise)
    return out


_KERNELS: dict[str, Kernel] | None = None


def kernels() -> dict[str, Kernel]:
    """Every kernel of every .cu file, by name."""
    global _KERNELS
    if _KERNELS is None:
        found: dict[str, Kernel] = {}
        for f in CU_FILES + tuple(EXTRA_FILES):
            for name, k in parse_kernels(source_text(f), f).items():
                if name in found:
                    raise ValueError(f"kernel {name} defined twice")
                found[name] = k
        _KERNELS = found
    return _KERNELS


def add_file(path) -> None:
    """Compile and launch the kernels of the .cu file at ``path`` too (units outside minirnn)."""
    global _KERNELS
    path = str(Path(path).resolve())
    if path not in EXTRA_FILES:
        EXTRA_FILES.append(path)
        _KERNELS = None


def name_expressions(filename: str) -> list[str]:
    """The instantiations NVRTC compiles for one file: every kernel, float and double."""
    return [f"{k.name}<{t}>" for k in kernels().values() if k.file == filename for t in ("float", "double")]


def module(filename: str) -> tuple[str, tuple[str, ...], list[str]]:
    """What NVRTC compiles for one .cu file: (source text, options, name expressions)."""
    return source_text(filename), NVRTC_OPTIONS, name_expressions(filename)


def define(filename: str, name: str) -> int:
    """The integer value of ``#define name <int>`` in a .cu file (e.g. a kernel's block size)."""
    m = re.search(rf"^\s*#define\s+{re.escape(name)}\s+(\d+)\s*$", source_text(filename), re.M)
    if m is None:
        raise ValueError(f"{filename} has no integer #define {name}")
    return int(m.group(1))


def instance_name(kernel: str, dtype) -> str:
    dt = np.dtype(dtype)
    if dt not in DTYPE_NAMES:
        raise TypeError(f"CUDA kernels exist for float32 and float64, not {dt}")
    return f"{kernel}<{DTYPE_NAMES[dt]}>"
