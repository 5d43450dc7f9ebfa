"""Output files named on the command line, checked before the work that writes them.

    >>> writable_file(Path("out/treated.pt"), "--out")   # CommandError when out/ does not exist
    PosixPath('out/treated.pt')
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CommandError


def writable_file(path: Path, option: str) -> Path:
    """`path` when a file can be written there: not a directory, in a directory that exists and is writable."""
    if path.is_dir():
        raise CommandError(f"expected {option} to name a file; {path} is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise CommandError(f"expected {option} to be in an existing directory; {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK):
        raise CommandError(f"expected {option} to be in a writable directory; {folder} is not writable")
    return path
