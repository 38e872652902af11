"""Run the `minirnn` command line with every file write held open for a while (tests only).

    python tests/slow_saves.py SECONDS train --unit gru ...

The signal tests want their signal to land *inside* a save, while its temporary
file exists.  The library has no hook for that; this launcher wraps the one
function that fills the temporary file (minirnn.training.atomic._write_all) with a sleep,
in this process only, and then runs the ordinary command line.
"""
import sys
import time

from minirnn.training import atomic
from minirnn.cli.main import cli


def main() -> None:
    pause = float(sys.argv[1])
    write = atomic._write_all

    def slow_write(*args, **kwargs):
        time.sleep(pause)       # the temporary file exists: the save is open
        return write(*args, **kwargs)

    atomic._write_all = slow_write
    cli(sys.argv[2:], prog_name="minirnn")


if __name__ == "__main__":
    main()
