"""minirnn's Nested LSTM in PyTorch, read from a `minirnn export` (minirnn layout) file (docs/export.md).

PyTorch has no Nested LSTM module; this one spells out the equations of
docs/nlstm.md (any depth D, with or without outer_tanh).  Its state_dict names
are minirnn's own (``embedding``, ``layer{l}.W{k}``, ``layer{l}.b{k}``,
``dense.W``, ``dense.b``), so the file loads with load_state_dict as it is.

    model, words = load("nlstm.safetensors")
    logits = model(ids)          # ids (B, T) int64: 0 padding, 1 space, 2..27 a..z -> (B, T, V)
"""
import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn


class NestedLSTMLayer(nn.Module):
    def __init__(self, inputs, hidden, depth, outer_tanh=False):
        super().__init__()
        self.hidden, self.depth, self.outer_tanh = hidden, depth, outer_tanh
        for k in range(depth):                                  # column blocks [i | j | f | o]
            rows = inputs + hidden if k == 0 else 2 * hidden
            self.register_parameter(f"W{k}", nn.Parameter(torch.empty(rows, 4 * hidden)))
            self.register_parameter(f"b{k}", nn.Parameter(torch.empty(4 * hidden)))

    def forward(self, x):                                       # (B, T, I) -> (B, T, H)
        h = x.new_zeros(x.shape[0], self.hidden)
        c = [x.new_zeros(x.shape[0], self.hidden) for _ in range(self.depth)]
        out = []
        for t in range(x.shape[1]):
            a, b, o = x[:, t], h, []
            for k in range(self.depth):                         # outside-in: gates, pair handed down
                z = torch.cat([a, b], 1) @ getattr(self, f"W{k}") + getattr(self, f"b{k}")
                zi, zj, zf, zo = z.chunk(4, 1)
                g = torch.tanh(zj) if k > 0 or self.outer_tanh else zj
                o.append(torch.sigmoid(zo))
                a, b = torch.sigmoid(zi) * g, torch.sigmoid(zf + 1) * c[k]   # forget gate: +1 inside
            new = b + a                                         # innermost memory
            for k in reversed(range(self.depth)):               # inside-out: memories and outputs
                c[k] = new
                new = torch.tanh(new) * o[k]
            h = new
            out.append(h)
        return torch.stack(out, 1)


class Dense(nn.Module):
    def __init__(self, hidden, output_vocab):
        super().__init__()
        self.W = nn.Parameter(torch.empty(hidden, output_vocab))
        self.b = nn.Parameter(torch.empty(output_vocab))

    def forward(self, h):
        return h @ self.W + self.b


class MinirnnNestedLSTM(nn.Module):
    def __init__(self, embedding_size, hidden, layers, depth, output_vocab, outer_tanh=False, input_vocab=28):
        super().__init__()
        self.layers = layers
        self.embedding = nn.Parameter(torch.empty(input_vocab, embedding_size))
        for layer in range(layers):
            setattr(self, f"layer{layer}",
                    NestedLSTMLayer(embedding_size if layer == 0 else hidden, hidden, depth, outer_tanh))
        self.dense = Dense(hidden, output_vocab)

    def forward(self, ids):
        x = self.embedding[ids]
        for layer in range(self.layers):
            x = getattr(self, f"layer{layer}")(x)
        return self.dense(x)


def load(path):
    """The module (in the file's dtype) and the output words (id order)."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    assert meta["layout"] == "minirnn" and meta["unit"] == "nlstm", "export the Nested LSTM with --layout minirnn"
    cfg = json.loads(meta["model_config"])
    model = MinirnnNestedLSTM(cfg["embedding_size"], cfg["hidden"], cfg["layers"], cfg["depth"], cfg["output_vocab"],
                              cfg["outer_tanh"], cfg["input_vocab"]).to(getattr(torch, meta["dtype"]))
    model.load_state_dict(load_file(path))
    return model.eval(), json.loads(meta["output_words"])
