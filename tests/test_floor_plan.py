"""The floor plan: data flows one way, probe -> record -> diagnose -> treat -> report, and `import gradient_doctor`
does not load the lab. Every import statement of every module is read (also inside functions and under
TYPE_CHECKING), so a backward import cannot hide in a late import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import gradient_doctor
from gradient_doctor import errors

PACKAGE = Path(gradient_doctor.__file__).parent
ROOMS = ("probe", "record", "diagnose", "treat", "report")
#: modules at the package's top that every room may import: they import no room themselves
FOUNDATIONS = ("_version", "_json", "_console", "errors", "catalog")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) for every import of a gradient_doctor module in `source`; `from X import name`
    counts as importing X.name when that is a module, else X."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate) else target))
    return [(line, name) for line, name in found if name.split(".")[0] == "gradient_doctor"]


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the import follows the flow."""
    source, target = importer.split(".")[1:2], imported.split(".")[1:2]
    source_top, target_top = (source[0] if source else ""), (target[0] if target else "")
    if source_top in FOUNDATIONS:
        if target_top in FOUNDATIONS:
            return None
        return f"foundation module {importer} imports {imported}"
    if source_top not in ROOMS:
        return None  # watch, autotrain, cli, integrations, lab and the package root sit on top of the flow
    if target_top in FOUNDATIONS:
        return None
    if target_top not in ROOMS:
        return f"{importer} ({source_top}) imports {imported}, which sits above the five rooms"
    if ROOMS.index(target_top) > ROOMS.index(source_top):
        return f"{importer} ({source_top}) imports {imported} ({target_top}), against the flow {' < '.join(ROOMS)}"
    return None


def all_violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imported_modules(path.read_text(), importer, path.name == "__init__.py"):
            why = violation(importer, imported)
            if why:
                out.append(f"{path.relative_to(PACKAGE)}:{line}: {why}")
    return out


def test_no_import_goes_against_the_flow():
    assert all_violations() == []


@pytest.mark.parametrize(("importer", "imported", "allowed"), [
    ("gradient_doctor.record.run", "gradient_doctor.diagnose", False),        # the old record -> diagnosis cycle
    ("gradient_doctor.record.run", "gradient_doctor.report.plots", False),
    ("gradient_doctor.probe.probe", "gradient_doctor.record.store", False),
    ("gradient_doctor.treat.treatment", "gradient_doctor.watch", False),
    ("gradient_doctor.report.html", "gradient_doctor.lab.datasets", False),
    ("gradient_doctor.diagnose.live", "gradient_doctor", False),              # the root imports everything
    ("gradient_doctor.catalog", "gradient_doctor.treat", False),
    ("gradient_doctor.report.html", "gradient_doctor.diagnose.finding", True),
    ("gradient_doctor.treat.trial", "gradient_doctor.probe.batch.calling", True),
    ("gradient_doctor.diagnose.ranking", "gradient_doctor.catalog", True),
    ("gradient_doctor.watch", "gradient_doctor.report.terminal", True),
])
def test_the_rule_itself(importer, imported, allowed):
    assert (violation(importer, imported) is None) is allowed


def test_imports_are_found_inside_functions_and_type_checking_blocks():
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from ..diagnose import Diagnosis\n"
        "def summary(run):\n    from ..report.terminal import summary_table\n    return summary_table(run)\n"
        "from . import store\n"
    )
    found = imported_modules(source, "gradient_doctor.record.run", is_package=False)
    assert sorted(name for _, name in found) == [
        "gradient_doctor.diagnose", "gradient_doctor.record.store", "gradient_doctor.report.terminal",
    ]
    assert sum(violation("gradient_doctor.record.run", name) is not None for _, name in found) == 2


def test_importing_the_package_does_not_import_the_lab():
    code = "import sys, gradient_doctor; print(sorted(m for m in sys.modules if m.startswith('gradient_doctor.lab')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_every_public_exception_derives_from_the_one_root():
    public = [getattr(gradient_doctor, name) for name in gradient_doctor.__all__]
    exceptions = [obj for obj in public if isinstance(obj, type) and issubclass(obj, BaseException)]
    assert len(exceptions) >= 7
    for exc in exceptions:
        assert issubclass(exc, errors.GradientDoctorError), exc
        assert exc.__module__ == "gradient_doctor.errors", exc
