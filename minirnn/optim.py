"""Adam (Kingma & Ba, 2015) with bias correction, in the form of docs/adam.md.

The bias corrections are folded into the step size, as in the paper's §2
"efficient version" (and TensorFlow's AdamOptimizer, which the study used):

    m   <- b1 m + (1 - b1) g                                   [ADAM-F1]
    v   <- b2 v + (1 - b2) g^2                                 [ADAM-F2]
    a_t  = lr sqrt(1 - b2^t) / (1 - b1^t)                      [ADAM-F3]
    p   <- p - a_t m / (sqrt(v) + eps)                         [ADAM-F4]
"""
from __future__ import annotations

import math

import numpy as np

from .backend import array_module, host_copy


class Adam:
    def __init__(self, params: dict, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 fused: bool = True):
        """``fused``: one in-place kernel per tensor (Numba on the CPU, CUDA on the GPU);
        otherwise the readable NumPy lines below (CPU only)."""
        if lr <= 0 or not (0 <= beta1 < 1) or not (0 <= beta2 < 1) or eps <= 0:
            raise ValueError("Adam needs lr > 0, 0 <= beta1, beta2 < 1 and eps > 0")
        self.params = params
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
        self.fused = bool(fused)
        self.t = 0
        self.m = {k: array_module(v).zeros_like(v) for k, v in params.items()}
        self.v = {k: array_module(v).zeros_like(v) for k, v in params.items()}

    def step_size(self, t: int) -> float:
        return self.lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)   # [ADAM-F3]

    def step(self, grads: dict) -> None:
        """Update every parameter in place from ``grads`` (same names)."""
        self.t += 1
        lr_t = self.step_size(self.t)
        for name, p in self.params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            if array_module(p) is not np:
                from minirnn.kernels.cuda.adam import adam_step

                adam_step(p, g, m, v, lr_t, self.beta1, self.beta2, self.eps)   # one fused kernel
                continue
            if self.fused and p.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous:
                from minirnn.kernels.cpu.adam import adam_step

                adam_step(p.reshape(-1), np.ascontiguousarray(g, dtype=p.dtype).reshape(-1), m.reshape(-1),
                          v.reshape(-1), lr_t, self.beta1, self.beta2, self.eps)   # one fused pass
                continue
            m *= self.beta1
            m += (1.0 - self.beta1) * g                                        # [ADAM-F1]
            v *= self.beta2
            v += (1.0 - self.beta2) * (g * g)                                  # [ADAM-F2]
            p -= lr_t * m / (np.sqrt(v) + self.eps)                            # [ADAM-F4]

    # --- checkpoints: host arrays only ------------------------------------------
    def state_dict(self) -> dict:
        """A snapshot (host copies): later steps do not change it."""
        return {"t": self.t, "lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "m": {k: host_copy(v) for k, v in self.m.items()},
                "v": {k: host_copy(v) for k, v in self.v.items()}}

    def load_state_dict(self, state: dict) -> None:
        for key in ("m", "v"):
            if set(state[key]) != set(self.params):
                raise ValueError("optimizer state does not match the model's parameters")
        self.t = int(state["t"])
        self.lr, self.beta1, self.beta2, self.eps = (float(state[k]) for k in ("lr", "beta1", "beta2", "eps"))
        for key in ("m", "v"):
            target = getattr(self, key)
            for name, value in state[key].items():
                xp = array_module(self.params[name])
                target[name] = xp.array(value, dtype=self.params[name].dtype, copy=True)
