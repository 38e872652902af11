"""minirnn's GRU in PyTorch, read from a `minirnn export` (minirnn layout) file (docs/export.md).

PyTorch's nn.GRU applies the reset gate after the recurrent product; minirnn's
GRU applies it before ([x, r * h] W_c), so this module spells the equations of
docs/gru.md out.  Its state_dict names are minirnn's own (``embedding``,
``layer{l}.W_g``, ``layer{l}.b_g``, ``layer{l}.W_c``, ``layer{l}.b_c``,
``dense.W``, ``dense.b``), so the file loads with load_state_dict as it is.

    model, words = load("gru.safetensors")
    logits = model(ids)          # ids (B, T) int64: 0 padding, 1 space, 2..27 a..z -> (B, T, V)
"""
import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn


class GRULayer(nn.Module):
    def __init__(self, inputs, hidden):
        super().__init__()
        self.hidden = hidden
        self.W_g = nn.Parameter(torch.empty(inputs + hidden, 2 * hidden))   # columns [r | u]
        self.b_g = nn.Parameter(torch.empty(2 * hidden))
        self.W_c = nn.Parameter(torch.empty(inputs + hidden, hidden))
        self.b_c = nn.Parameter(torch.empty(hidden))

    def forward(self, x):                                                    # (B, T, I) -> (B, T, H)
        h = x.new_zeros(x.shape[0], self.hidden)
        out = []
        for t in range(x.shape[1]):
            r, u = torch.sigmoid(torch.cat([x[:, t], h], 1) @ self.W_g + self.b_g).chunk(2, 1)
            c = torch.tanh(torch.cat([x[:, t], r * h], 1) @ self.W_c + self.b_c)
            h = u * h + (1 - u) * c
            out.append(h)
        return torch.stack(out, 1)


class Dense(nn.Module):
    def __init__(self, hidden, output_vocab):
        super().__init__()
        self.W = nn.Parameter(torch.empty(hidden, output_vocab))
        self.b = nn.Parameter(torch.empty(output_vocab))

    def forward(self, h):
        return h @ self.W + self.b


class MinirnnGRU(nn.Module):
    def __init__(self, embedding_size, hidden, layers, output_vocab, input_vocab=28):
        super().__init__()
        self.layers = layers
        self.embedding = nn.Parameter(torch.empty(input_vocab, embedding_size))
        for layer in range(layers):
            setattr(self, f"layer{layer}", GRULayer(embedding_size if layer == 0 else hidden, hidden))
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
    assert meta["layout"] == "minirnn" and meta["unit"] == "gru", "export the GRU with --layout minirnn"
    cfg = json.loads(meta["model_config"])
    model = MinirnnGRU(cfg["embedding_size"], cfg["hidden"], cfg["layers"], cfg["output_vocab"],
                       cfg["input_vocab"]).to(getattr(torch, meta["dtype"]))
    model.load_state_dict(load_file(path))
    return model.eval(), json.loads(meta["output_words"])
