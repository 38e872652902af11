"""Adam on the GPU: one fused in-place kernel per parameter (docs/adam.md).

``minirnn.optim.Adam`` calls ``adam_step`` for CuPy parameters.  The step size
``lr_t`` already contains both bias corrections,

    lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)                    [ADAM-F3]

so the kernel only does, elementwise and in place,

    m <- beta1 m + (1 - beta1) g                                       [ADAM-F1]
    v <- beta2 v + (1 - beta2) g^2                                     [ADAM-F2]
    p <- p - lr_t m / (sqrt(v) + eps)                                  [ADAM-F4]

(1 - beta1) and (1 - beta2) are formed in double here and then rounded to the
parameter's dtype, as NumPy does for ``(1.0 - beta1) * g``.
"""
from __future__ import annotations


def adam_step(param, grad, m, v, lr_t, beta1, beta2, eps, backend=None) -> None:
    """Update ``param``, ``m`` and ``v`` in place (CuPy arrays of one shape and dtype)."""
    if backend is None:
        from ._runtime import get_backend

        backend = get_backend()
    for name, a in (("grad", grad), ("m", m), ("v", v)):
        if a.shape != param.shape or a.dtype != param.dtype:
            raise ValueError(f"adam_step: {name} has shape {a.shape} / {a.dtype}, "
                             f"expected {param.shape} / {param.dtype}")
    if not grad.flags.c_contiguous:
        grad = backend.xp.ascontiguousarray(grad)
    backend.launch("adam_step", param.dtype, param.size, param, grad, m, v, float(lr_t), float(beta1),
                   1.0 - float(beta1), float(beta2), 1.0 - float(beta2), float(eps))
