"""The `gradient-doctor` command line: `main` (cli/main.py) and one module per command.

    $ gradient-doctor checkup mypkg.models:build --input-shape 32 784
"""

from .main import main

__all__ = ["main"]
