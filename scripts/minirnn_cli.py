"""The `minirnn` command line, for a checkout that is not pip-installed; reports CUDA graph use.

    python scripts/minirnn_cli.py train --unit nlstm --preset demo --device gpu ...

Same as the `minirnn` console script (minirnn.cli.main:cli) -- minirnn must be
importable, e.g. through the package tree of links that scripts/gpu-check.sh
builds.  When the command used the GPU (the CUDA runtime module was loaded), one
line with the process's CUDA graph counters is printed on stderr at exit:
whether graphs were captured and replayed, or the time loops ran eagerly after a
fallback (and why); with MINIRNN_CLI_GRAPH_STATUS_FILE set, the line is also
appended to that file.
"""
from __future__ import annotations

import os
import sys


def graph_status_line() -> str | None:
    """The CUDA graph counters of this process, or None when the GPU path was never loaded."""
    runtime = next((m for name, m in sys.modules.items() if name.endswith("kernels.cuda._runtime")), None)
    if runtime is None:
        return None
    s = runtime.graph_status()
    reason = s.get("fallback_reason")
    verdict = (f"FALLBACK to eager launches: {reason}" if reason
               else "replayed" if s.get("replayed") else "no graph replayed" if s.get("graphs") else "graphs off")
    extra = f", precision {s['precision']}" if "precision" in s else ""
    return (f"CUDA graphs: {verdict} (graphs {'on' if s.get('graphs') else 'off'}, captured {s.get('captured')}, "
            f"replayed {s.get('replayed')}, eager loops {s.get('eager_loops')}{extra})")


def main(argv=None) -> None:
    from minirnn.cli.main import cli

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="minirnn")
    finally:
        line = graph_status_line()
        if line:
            print(line, file=sys.stderr, flush=True)
            record = os.environ.get("MINIRNN_CLI_GRAPH_STATUS_FILE")
            if record:  # a summary for the caller (scripts/gpu-check.sh prints it before the benchmark)
                with open(record, "a") as f:
                    f.write(f"minirnn {args[0] if args else ''}: {line}\n")


if __name__ == "__main__":
    main()
