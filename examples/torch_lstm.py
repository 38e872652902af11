"""A `minirnn export --layout torch` LSTM file in PyTorch's own modules (docs/export.md).

    model, words = load("lstm.safetensors")
    logits = model(ids)          # ids (B, T) int64: 0 padding, 1 space, 2..27 a..z -> (B, T, V)

The file's tensors are the state_dict of ``MinirnnLSTM``: ``embedding.weight``,
``lstm.weight_ih_l{l}``, ``lstm.weight_hh_l{l}``, ``lstm.bias_ih_l{l}``,
``lstm.bias_hh_l{l}``, ``dense.weight``, ``dense.bias``.
"""
import json

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn


class MinirnnLSTM(nn.Module):
    def __init__(self, embedding_size, hidden, layers, output_vocab, input_vocab=28):
        super().__init__()
        self.embedding = nn.Embedding(input_vocab, embedding_size, padding_idx=0)
        self.lstm = nn.LSTM(embedding_size, hidden, layers, batch_first=True)
        self.dense = nn.Linear(hidden, output_vocab)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.dense(out)


def load(path):
    """The module (in the file's dtype, eval mode) and the output words (id order)."""
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    cfg = json.loads(meta["model_config"])
    model = MinirnnLSTM(cfg["embedding_size"], cfg["hidden"], cfg["layers"], cfg["output_vocab"],
                        cfg["input_vocab"]).to(getattr(torch, meta["dtype"]))
    model.load_state_dict(load_file(path))
    return model.eval(), json.loads(meta["output_words"])
