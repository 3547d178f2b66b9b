"""The core (everything outside llmos.desktop) must import no Qt."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import llmos

QT = ("PySide6", "shiboken6", "qasync")
PACKAGE = Path(llmos.__file__).parent


def test_no_core_module_imports_qt_in_its_source():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "desktop" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in QT]
    assert offenders == []


def test_the_core_and_cli_run_with_qt_blocked():
    """Import every core module in a fresh interpreter where importing Qt fails."""
    modules = sorted(
        ".".join(("llmos", *p.relative_to(PACKAGE).with_suffix("").parts))
        for p in PACKAGE.rglob("*.py")
        if "desktop" not in p.relative_to(PACKAGE).parts and p.name != "__main__.py"
    )
    script = (
        "import sys, importlib\n"
        f"for name in {QT!r}:\n"
        "    sys.modules[name] = None  # makes 'import name' raise ImportError\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module.removesuffix('.__init__'))\n"
        "from llmos.cli import main\n"
        "sys.exit(main(['apps']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "chat" in done.stdout
