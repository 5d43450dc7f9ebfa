"""Plain text from rich renderables, as wide as the terminal (100 columns when there is none): what `print(obj)`
shows for a run's summary, a diagnosis and a treatment.

    >>> print(plain_text(run.summary()))            # the width of the terminal, or 100 columns in a log
    >>> plain_text(table, width=60).splitlines()[0]
"""

from __future__ import annotations

import io
import shutil

from rich.console import Console, RenderableType

#: Columns of text written where there is no terminal (a log file, a pipe, a notebook's captured stdout).
OFF_TERMINAL_WIDTH = 100


def text_width() -> int:
    """The terminal's width in columns (`$COLUMNS` first), or OFF_TERMINAL_WIDTH when output goes elsewhere."""
    return shutil.get_terminal_size((OFF_TERMINAL_WIDTH, 24)).columns


def plain_text(renderable: RenderableType, width: int | None = None) -> str:
    """`renderable` rendered without colour, `width` columns wide (default `text_width()`), trailing blanks cut."""
    buffer = io.StringIO()
    Console(file=buffer, width=width or text_width(), no_color=True, force_terminal=False,
            highlight=False).print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip().splitlines())
