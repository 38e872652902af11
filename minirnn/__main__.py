"""`python -m minirnn` runs the command line."""
from minirnn.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="minirnn")
