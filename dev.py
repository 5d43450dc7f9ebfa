#!/usr/bin/env python3
"""Set up a local virtual environment (.venv) and run the project's main job or its tests.

    python3 dev.py demo      # the main job: gradient-doctor demo
    python3 dev.py test      # the whole test suite (what CI runs)

Needs only python3 (3.10+). The first run creates .venv and installs what is needed; later runs
reuse it and reinstall only when pyproject.toml changes. When the environment has no torch yet,
torch==2.13.0 is installed first: on the project's machines that pin takes the local CPU build,
where an unpinned install would pull several GB of CUDA packages. The package itself asks only
for torch>=2.2.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".dev-stamp"
TORCH_PIN = "torch==2.13.0"
EXTRAS = "test"


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 10):
        sys.exit(f"gradient-doctor needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    if not argv or argv[0] not in ("demo", "test"):
        sys.exit("usage: python3 dev.py demo [ARGS...] | python3 dev.py test [PYTEST ARGS...]")
    python = ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return run([str(VENV / "bin" / "gradient-doctor"), "demo", *rest])
    return run([str(python), "-m", "pytest", *rest])


def ensure_environment() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return python
    if run([str(python), "-c", "import torch"], quiet=True) != 0:
        print(f"[dev] installing {TORCH_PIN}", flush=True)
        check(run([str(python), "-m", "pip", "install", "--quiet", TORCH_PIN]))
    print(f"[dev] installing gradient-doctor[{EXTRAS}] (editable)", flush=True)
    check(run([str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{EXTRAS}]"]))
    STAMP.write_text(wanted)
    return python


def fingerprint() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{TORCH_PIN} {EXTRAS} {sys.version}".encode())
    return digest.hexdigest()


def run(cmd: list[str], quiet: bool = False) -> int:
    output = subprocess.DEVNULL if quiet else None
    return subprocess.call(cmd, cwd=ROOT, stdout=output, stderr=output, env=os.environ.copy())


def check(code: int) -> None:
    if code != 0:
        sys.exit(f"[dev] installation failed (exit code {code}); see the messages above")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
