"""Embedding -> a stack of recurrent layers of one unit type -> dense layer.

Public surface (documented in README.md and docs/model.md):

    model = Model(unit="nlstm", hidden=600, layers=1, depth=2, input_vocab=28,
                  output_vocab=16386, seed=0, device="cpu", dtype="float32")
    model.params                  # dict name -> array (see names below)
    model.parameter_counts()      # trainable counts: embedding / recurrent / dense
    model.logits(source)          # (B, T, V) for integer source ids (B, T)
    loss, grads = model.loss_and_grads(source, target)

Parameter names: ``embedding`` (input_vocab, E); ``layer{l}.{name}`` for each
recurrent layer l and each of its unit's parameters (GRU: W_g, b_g, W_c, b_c;
LSTM: W, b; Nested LSTM: W0, b0, W1, b1, ...); ``dense.W`` (H, V) and
``dense.b`` (V,).
"""
from __future__ import annotations

import numpy as np

from . import layers as L
from .backend import get_xp, host_copy, resolve_dtype, to_numpy
from .units import UNITS, make_unit
from minirnn.kernels import accelerate
from .units.base import glorot_uniform

INPUT_VOCAB = 28  # 0 padding, 1 space, 2..27 letters a..z


class Model:
    def __init__(self, unit: str = "lstm", hidden: int = 600, layers: int = 2, depth: int = 2,
                 input_vocab: int = INPUT_VOCAB, output_vocab: int = 16386, embedding_size: int | None = None,
                 seed: int = 0, device: str = "cpu", dtype="float32", impl: str = "fast",
                 outer_tanh: bool = False, chunk_size: int = L.DEFAULT_CHUNK):
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
        if layers < 1 or hidden < 1 or depth < 1 or output_vocab < 3 or input_vocab < 2:
            raise ValueError("hidden, layers and depth must be >= 1, output_vocab >= 3, input_vocab >= 2")

        self.device = device
        self.xp = get_xp(device)
        self.dtype = resolve_dtype(dtype)
        self.impl = impl
        self.chunk_size = int(chunk_size)
        embedding_size = hidden if embedding_size is None else int(embedding_size)
        self.config = {"unit": unit, "hidden": int(hidden), "layers": int(layers), "depth": int(depth),
                       "input_vocab": int(input_vocab), "output_vocab": int(output_vocab),
                       "embedding_size": embedding_size, "seed": int(seed), "outer_tanh": bool(outer_tanh)}
        self.reference_units = []
        for layer in range(layers):
            size_in = embedding_size if layer == 0 else hidden
            self.reference_units.append(make_unit(unit, size_in, hidden, depth=depth, outer_tanh=outer_tanh))
        self.units = [accelerate(u, device, impl) for u in self.reference_units]
        # The first layer reading one-hot ids through the folded table (loss_and_grads' fast path).
        self.folded_first_unit = accelerate(
            make_unit(unit, input_vocab, hidden, depth=depth, outer_tanh=outer_tanh), device, impl)
        self._folded: dict = {}   # persistent buffers of the folded first-layer kernels
        self.params = {k: self.xp.asarray(v) for k, v in self.init_params(np.random.default_rng(seed)).items()}

    # --- parameters ------------------------------------------------------------
    def init_params(self, rng: np.random.Generator) -> dict:
        """Fresh host parameters in a fixed order (so a seed fixes every value)."""
        cfg, dt = self.config, self.dtype
        params = {}
        emb = np.zeros((cfg["input_vocab"], cfg["embedding_size"]), dtype=dt)
        limit = np.sqrt(1.0 / (cfg["input_vocab"] - 1))  # +-sqrt(1/27) for the 27 trainable rows
        emb[1:] = rng.uniform(-limit, limit, size=emb[1:].shape)
        params["embedding"] = emb
        for layer, unit in enumerate(self.reference_units):
            for name, value in unit.init_params(rng, dt).items():
                params[f"layer{layer}.{name}"] = value

        params["dense.W"] = glorot_uniform(rng, (cfg["hidden"], cfg["output_vocab"]), dt)
        params["dense.b"] = np.zeros(cfg["output_vocab"], dtype=dt)
        return params

    def parameter_shapes(self) -> dict:
        return {k: tuple(v.shape) for k, v in self.params.items()}

    def parameter_counts(self) -> dict:
        """Trainable parameters per part; the padding row of the embedding is fixed, so not counted."""
        emb = (self.config["input_vocab"] - 1) * self.config["embedding_size"]
        rec = sum(u.num_params() for u in self.reference_units)
        dense = self.config["hidden"] * self.config["output_vocab"] + self.config["output_vocab"]
        return {"embedding": emb, "recurrent": rec, "dense": dense, "total": emb + rec + dense}

    def layer_params(self, layer: int) -> dict:
        prefix = f"layer{layer}."
        return {k[len(prefix):]: v for k, v in self.params.items() if k.startswith(prefix)}

    def zero_states(self, batch: int) -> list:
        return [u.zero_state(self.xp, batch, self.dtype) for u in self.units]

    # --- computation -------------------------------------------------------------
    def _ids(self, a):
        ids = self.xp.asarray(a)
        if ids.ndim != 2:
            raise ValueError(f"expected integer ids of shape (batch, time), got shape {tuple(ids.shape)}")
        return ids.astype(self.xp.int64, copy=False)

    def embed(self, source):
        return L.embed(self.params["embedding"], self._ids(source))

    def run_layers(self, X, states0=None, first_params=None):
        """Forward through the recurrent stack: returns (top outputs (T,B,H), caches, final states).

        ``first_params`` replaces the first layer's parameters (the folded
        embedding of ``loss_and_grads``' fast path)."""
        batch = X.shape[1]
        states0 = self.zero_states(batch) if states0 is None else states0
        caches, finals, hs = [], [], X
        for layer, unit in enumerate(self.units):
            params = self.layer_params(layer)
            if layer == 0 and first_params is not None:
                unit, params = self.folded_first_unit, first_params
            hs, final, cache = unit.forward(params, hs, states0[layer])
            caches.append(cache)
            finals.append(final)
        return hs, caches, finals

    def forward_backward(self, X, target, states0=None, need_grads: bool = True, first_params=None,
                         denominator: int | None = None):
        """Loss and gradients from embedded inputs X (T, B, E) and targets (B, T).

        Returns (loss, grads, dX, dstates0); ``grads`` holds every parameter but the
        embedding (whose gradient needs the ids: see loss_and_grads).
        ``denominator``: see loss_and_grads.
        """
        target = self._ids(target)
        T, B = X.shape[0], X.shape[1]
        hs, caches, _ = self.run_layers(X, states0, first_params)
        H = hs.shape[-1]
        loss, _, dHs, dW, db = L.dense_xent_forward_backward(
            hs.reshape(T * B, H), target.T.reshape(-1), self.params["dense.W"], self.params["dense.b"],
            chunk=self.chunk_size, need_grads=need_grads, fused=self.impl == "fast", denominator=denominator)
        if not need_grads:
            return loss, None, None, None
        grads = {"dense.W": dW, "dense.b": db}
        dhs = dHs.reshape(T, B, H)
        dstates0 = [None] * len(self.units)
        for layer in reversed(range(len(self.units))):
            unit, params = self.units[layer], self.layer_params(layer)
            if layer == 0 and first_params is not None:
                unit, params = self.folded_first_unit, first_params
            dparams, dhs, dstates0[layer] = unit.backward(params, caches[layer], dhs)
            for name, g in dparams.items():
                grads[f"layer{layer}.{name}"] = g
        return loss, grads, dhs, dstates0

    def loss_and_grads(self, source, target, states0=None, denominator: int | None = None):
        """Mean masked cross-entropy of a batch and the gradient of every parameter.

        ``source``, ``target``: integer arrays (B, T) (NumPy or device arrays).
        The embedding's padding row always gets a zero gradient.
        ``denominator``: divide the loss sum and the gradients by this number of
        positions instead of the batch's own counted positions [CE-F4]; a
        data-parallel rank passes its global batch's count, so that the ranks'
        results add up to the global batch's (minirnn/training/distributed.py).
        """
        source = self._ids(source)
        if self.impl == "fast":
            return self._loss_and_grads_folded(source, target, states0, denominator)
        X = L.embed(self.params["embedding"], source)
        loss, grads, dX, _ = self.forward_backward(X, target, states0, denominator=denominator)
        grads["embedding"] = L.embedding_grad(self.params["embedding"], source, dX)
        return loss, {k: grads[k] for k in self.params}

    def folded_first_layer(self, source):
        """The first layer's inputs and parameters with the embedding folded in [EMB-F2]:
        one-hot rows (T, B, 28), and its parameters with each input kernel's first
        rows W_x replaced by the 28-row table T = E W_x (run with ``folded_first_unit``).

        A unit that ``takes_ids`` (the fast CPU units) gets the one-hot rows as their
        ids (T, B) and looks the table rows up instead of multiplying by them."""
        E = self.params["embedding"]
        unit = self.units[0]
        size_in = unit.input_size
        folded = dict(self.layer_params(0))
        for name in unit.input_kernels:
            folded[name] = self._fold_into_buffer(name, E, folded[name], size_in)
        if getattr(self.folded_first_unit, "takes_ids", False):
            return self.xp.ascontiguousarray(source.T), folded
        return L.one_hot(source.T, E.shape[0], E.dtype), folded

    def _fold_into_buffer(self, name, E, W, size_in):
        """[T; W_h] with T = E W_x [EMB-F2], written into one persistent buffer per kernel.

        Persistent because the GPU's recorded loops and CUDA graphs are keyed on
        the weights' addresses: a new array every step would re-record (and
        never replay) the first layer's loops."""
        vocab = E.shape[0]
        shape = (vocab + W.shape[0] - size_in, W.shape[1])
        buf = self._folded.get(name)
        if buf is None or buf.shape != shape or buf.dtype != W.dtype:
            buf = self._folded[name] = self.xp.empty(shape, dtype=W.dtype)
        buf[:vocab] = E @ W[:size_in]                                                     # [EMB-F2] T = E W_x
        buf[vocab:] = W[size_in:]
        return buf

    def _loss_and_grads_folded(self, source, target, states0=None, denominator=None):
        """The same loss and gradients, with the embedding folded into the first layer.

        The first layer only sees X = onehot(s) E, so its input product is
        X W_x = onehot(s) (E W_x): a product with a 28-row table [EMB-F2].  The
        first layer runs on one-hot inputs with W_x replaced by T = E W_x, which
        turns the (N x E)(E x G) input product and the two backward products of
        that size into products with 28 rows (on the CPU, into a row lookup and a
        scatter-add: the units take the ids); the table's gradient dT then gives
        dE and dW_x exactly [EMB-B3], [EMB-B4].
        """
        inputs, folded = self.folded_first_layer(source)
        loss, grads, _, _ = self.forward_backward(inputs, target, states0, first_params=folded,
                                                  denominator=denominator)
        return loss, self.unfold_first_layer_grads(grads)

    def unfold_first_layer_grads(self, grads: dict) -> dict:
        """Every parameter's gradient from ``grads`` of the folded first layer: its table's
        gradient dT gives dE and dW_x [EMB-B3], [EMB-B4] (the last part of the folded step;
        benchmarks time it on its own)."""
        E = self.params["embedding"]
        unit = self.units[0]
        size_in = unit.input_size
        dE = self.xp.zeros_like(E)
        vocab = E.shape[0]
        for name in unit.input_kernels:
            key = f"layer0.{name}"
            W, dfolded = self.params[key], grads[key]
            dT = dfolded[:vocab]
            dE += dT @ W[:size_in].T                                                      # [EMB-B3]
            grads[key] = self.xp.concatenate([E.T @ dT, dfolded[vocab:]], axis=0)        # [EMB-B4]
        dE[L.PAD] = 0                                                                     # [EMB-B2]
        grads["embedding"] = dE
        return {k: grads[k] for k in self.params}

    def loss(self, source, target, states0=None) -> float:
        return self.forward_backward(self.embed(source), target, states0, need_grads=False)[0]

    def hidden_outputs(self, source):
        """Top-layer outputs (B, T, H) for a batch of ids."""
        hs, _, _ = self.run_layers(self.embed(source))
        return hs.transpose(1, 0, 2)

    def logits(self, source):
        """All logits (B, T, V).  Memory grows with B*T*V: for analysis of short inputs."""
        hs = self.hidden_outputs(source)
        return hs @ self.params["dense.W"] + self.params["dense.b"]

    # --- moving between devices ---------------------------------------------------
    def host_params(self) -> dict:
        """A snapshot of every parameter as independent NumPy arrays."""
        return {k: host_copy(v) for k, v in self.params.items()}

    def load_params(self, params: dict) -> None:
        """Replace every parameter from host (or device) arrays of the same names and shapes."""
        missing = set(self.params) - set(params)
        if missing:
            raise ValueError(f"missing parameters: {', '.join(sorted(missing))}")
        for k, v in params.items():
            if k not in self.params:
                raise ValueError(f"unexpected parameter {k!r}")
            if tuple(v.shape) != tuple(self.params[k].shape):
                raise ValueError(f"parameter {k} has shape {tuple(v.shape)}, expected {tuple(self.params[k].shape)}")
            self.params[k] = self.xp.array(to_numpy(v), dtype=self.dtype, copy=True)
