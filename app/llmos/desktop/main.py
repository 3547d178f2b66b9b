"""Starting the desktop: a QApplication on a qasync loop, as ../shared/STYLE.md describes."""

from __future__ import annotations

import asyncio
import ctypes.util
import gc
import os
import sys
from typing import TYPE_CHECKING

from llmos.config import Settings

if TYPE_CHECKING:  # Qt is imported only when the desktop opens
    from llmos.desktop.session import DesktopSession


class NoDisplay(Exception):
    """There is no screen to show the desktop on."""


def check_display() -> None:
    """Fail with a plain message instead of Qt aborting the process when there is no screen.

    Raises:
        NoDisplay: on Linux without X11 or Wayland, and no Qt platform chosen.
    """
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise NoDisplay(
            "There is no display to open the desktop on (neither DISPLAY nor WAYLAND_DISPLAY "
            "is set). Run llmos in a graphical session, or use the headless commands: "
            "llmos run chat --prompt TEXT (see llmos --help)."
        )
    if not os.environ.get("WAYLAND_DISPLAY") and ctypes.util.find_library("xcb-cursor") is None:
        # Without it Qt's X11 plugin refuses to load and aborts the process.
        raise NoDisplay(
            "Qt needs the xcb-cursor library to open windows on X11, and it is not installed. "
            "Install it (Debian/Ubuntu: sudo apt install libxcb-cursor0; Fedora: sudo dnf "
            "install xcb-util-cursor) and start llmos again."
        )


def run_desktop(settings: Settings) -> int:
    """Open the desktop and run until it is closed; returns the exit code."""
    check_display()
    # Qt is imported here, not at the top: the headless commands never pay for it.
    import qasync
    from PySide6.QtWidgets import QApplication

    from llmos.desktop.theme import apply_theme, icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("LLM-OS")
    app.setApplicationDisplayName("LLM-OS")
    app.setDesktopFileName("llmos")
    app.setQuitOnLastWindowClosed(False)  # the desktop ends through its own shutdown
    apply_theme(app, settings.theme)
    app.setWindowIcon(icon("llmos"))
    with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
        return runner.run(_desktop(settings))


async def _desktop(settings: Settings) -> int:
    from llmos.desktop.desktop_window import DesktopWindow

    window = DesktopWindow(settings)
    settling = asyncio.get_running_loop().create_task(settle_heap_when_ready(window.session))
    screen = window.screen()
    if screen is not None:  # the whole screen, even where no window manager maximises
        window.setGeometry(screen.availableGeometry())
    window.showMaximized()
    window.start()
    try:
        await window.closed
    except asyncio.CancelledError:
        # Ctrl-C in the terminal: shut down as cleanly as closing the window would.
        await window.shutdown()
        raise
    finally:
        settling.cancel()
    return 0


async def settle_heap_when_ready(session: DesktopSession) -> None:
    """Once the kernel runs, keep what start-up loaded out of the collector's full passes.

    It lives as long as the desktop, and full collections that walked it all stalled
    streaming windows for ~60 ms (benchmarks/desktop_bench.py).
    """
    from llmos.desktop.session import KernelNotRunning

    try:
        await session.kernel_ready()
    except KernelNotRunning:
        return
    gc.collect()
    gc.freeze()
