"""minirnn: exact, autograd-free GRU, LSTM and Nested LSTM with hand-derived BPTT."""
__version__ = "0.1.0"

from .errors import MinirnnError  # noqa: F401
