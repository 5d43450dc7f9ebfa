"""The README's quick start works as pasted into an interactive `python` (its REPL rules: a blank line ends a
block), from a fresh directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import gradient_doctor as gd

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(gd.__file__).resolve().parents[1]

#: Feeds stdin to an interactive console line by line, as a paste into `python` would, and fails on any error.
PASTE = """
import code, sys, traceback
console = code.InteractiveConsole()
failed = []
console.showtraceback = lambda: failed.append(traceback.format_exc())
console.showsyntaxerror = lambda filename=None, **kw: failed.append(traceback.format_exc())
for line in sys.stdin.read().splitlines() + [""]:
    console.push(line)
sys.exit("\\n".join(failed) if failed else 0)
"""


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_quick_start_has_ten_lines_of_code_and_runs_as_pasted(tmp_path):
    code = quick_start()
    assert len([line for line in code.splitlines() if line.strip()]) == 10
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "COLUMNS": "100"}
    done = subprocess.run([sys.executable, "-c", PASTE], input=code, capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "CRITICAL vanishing_gradient" in out and "gd.treat(model, diag, inputs=x)" in out
    assert "after treatment: healthy" in out and "healthy: no warning or critical finding" in out
    assert "300 steps" in out and (tmp_path / "runs" / "quickstart" / "run.db").is_file()
