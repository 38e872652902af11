"""`minirnn doctor`: one line per check of this machine, CPU and GPU (minirnn/machine/doctor.py)."""
from __future__ import annotations

import json

import click

from minirnn.machine.doctor import ready, run_checks, summary


@click.command()
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True,
              help="cpu: skip the GPU checks; gpu: exit non-zero unless the GPU path is ready too.")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(device, as_json):
    """Check this machine: Python, NumPy/Numba/h5py, BLAS; CuPy, driver, GPU, CUDA libraries, kernels, graphs."""
    checks = run_checks(gpu=device != "cpu")
    line = summary(checks)
    if as_json:
        click.echo(json.dumps({"checks": [c.as_dict() for c in checks], "summary": line}, indent=1))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.status:<4}  {c.name:<{width}}  {c.detail}" + (f" -- {c.fix}" if c.fix else ""))
        click.echo(line)
    if not ready(checks, gpu=device == "gpu"):
        raise SystemExit(1)
