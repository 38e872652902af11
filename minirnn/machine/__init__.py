"""What this machine can do: `minirnn doctor`, `minirnn bench` and which BLAS NumPy uses."""
