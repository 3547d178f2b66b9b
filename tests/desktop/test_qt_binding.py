"""The Qt binding itself: a PySide6 that corrupts reference counts would crash the desktop."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer


def test_qt_calls_keep_python_reference_counts(qapp):
    # PySide6 6.12.0 on CPython 3.11 dropped a reference to None on each call returning void,
    # and the interpreter aborted after a few thousand calls (pyproject.toml excludes it).
    timer = QTimer()
    before = sys.getrefcount(None)
    for _ in range(2000):
        timer.setInterval(5)
    assert sys.getrefcount(None) >= before - 50
