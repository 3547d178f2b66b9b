"""The Shell window: a kernel console (``ps``, ``free``, ``kill``, ``ls``...) on the desktop.

The commands are :class:`llmos.apps.shell.Shell`'s; this window only types them and shows
what they print. It runs no process and needs no model. Each command runs as a task the
window owns, so the desktop never waits for one (``search`` may open memory first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QCloseEvent, QFontDatabase, QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QVBoxLayout, QWidget

from llmos.apps.manifest import AppManifest
from llmos.apps.shell import Shell
from llmos.desktop.memory_service import MemoryService, MemoryUnavailable
from llmos.desktop.owned_tasks import OwnedTasks
from llmos.desktop.session import DesktopSession, KernelNotRunning

PROMPT = "llmos$"
MAX_LINES = 5000
PATH_COMMANDS = ("ls", "cat")
WELCOME = "LLM-OS kernel console. Type help for the commands, clear (Ctrl+L) to clear."


class PromptLine(QLineEdit):
    """The command line: Enter runs, Up/Down walk the history, Tab completes.

    Signals:
        submitted(str): Enter was pressed on this line.
        completionRequested(str): Tab was pressed; the text so far.
        clearRequested(): Ctrl+L was pressed.
    """

    submitted = Signal(str)
    completionRequested = Signal(str)
    clearRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[str] = []
        self._at = 0
        """Where Up/Down are in the history (``len(history)``: the line being typed)."""
        self._draft = ""
        self.returnPressed.connect(self._submit)

    def _submit(self) -> None:
        line = self.text()
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._at, self._draft = len(self.history), ""
        self.clear()
        self.submitted.emit(line)

    def event(self, event: QEvent) -> bool:
        # Tab would move the focus on: here it completes.
        if (
            event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Tab
        ):
            self.completionRequested.emit(self.text())
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Up:
            self._walk(-1)
        elif event.key() == Qt.Key.Key_Down:
            self._walk(1)
        elif (
            event.key() == Qt.Key.Key_L and event.modifiers() == Qt.KeyboardModifier.ControlModifier
        ):
            self.clearRequested.emit()
        else:
            super().keyPressEvent(event)

    def _walk(self, step: int) -> None:
        at = min(max(self._at + step, 0), len(self.history))
        if at == self._at:
            return
        if self._at == len(self.history):
            self._draft = self.text()
        self._at = at
        self.setText(self.history[at] if at < len(self.history) else self._draft)


class ShellWindow(QWidget):
    """A console on the session's kernel.

    Signals:
        commandDone(str): a command line has run and its output is shown.
    """

    commandDone = Signal(str)

    def __init__(
        self,
        session: DesktopSession,
        manifest: AppManifest,
        parent: QWidget | None = None,
        *,
        memory: MemoryService | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.manifest = manifest
        self.shell: Shell | None = None
        self._memory = memory
        self._tasks = OwnedTasks("shell")
        self._closed = False
        self.setWindowTitle(manifest.name)

        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.output = QPlainTextEdit(objectName="ShellOutput", readOnly=True)
        self.output.setFont(font)
        self.output.setMaximumBlockCount(MAX_LINES)
        self.output.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.output.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.prompt_label = QLabel(PROMPT, objectName="ShellPrompt")
        self.prompt_label.setFont(font)
        self.prompt = PromptLine()
        self.prompt.setObjectName("ShellLine")
        self.prompt.setFont(font)
        self.prompt.setPlaceholderText("Waiting for the kernel...")
        self.prompt.setEnabled(False)
        self.prompt.submitted.connect(self.run_line)
        self.prompt.completionRequested.connect(self._complete)
        self.prompt.clearRequested.connect(self.output.clear)

        row = QHBoxLayout()
        row.setContentsMargins(8, 0, 8, 8)
        row.addWidget(self.prompt_label)
        row.addWidget(self.prompt, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.output, 1)
        layout.addLayout(row)
        self.setFocusProxy(self.prompt)

    def start(self) -> None:
        """Connect to the kernel (call once the window is on screen)."""
        self._run(self._connect(), "connect")

    async def _connect(self) -> None:
        try:
            kernel = await self.session.kernel_ready()
        except KernelNotRunning as error:
            self._print(str(error))
            self.prompt.setPlaceholderText("No kernel")
            return
        opener = self._memory.ready if self._memory is not None else None
        self.shell = Shell(kernel, opener)
        self._print(WELCOME)
        self.prompt.setPlaceholderText("help, ps, top, free, kill PID, ls, cat, search...")
        self.prompt.setEnabled(True)
        self.prompt.setFocus()

    # -- commands --------------------------------------------------------------------------------

    def run_line(self, line: str) -> None:
        """Run one command line (as if typed); ``clear`` clears the output."""
        if line.strip() == "clear":
            self.output.clear()
            self.commandDone.emit(line)
            return
        self._print(f"{PROMPT} {line}")
        if self.shell is not None and line.strip():
            self._run(self._execute(self.shell, line), "command")
        else:
            self.commandDone.emit(line)

    async def _execute(self, shell: Shell, line: str) -> None:
        self.prompt.setEnabled(False)
        try:
            text = await shell.run(line)
        except MemoryUnavailable as error:
            text = str(error)
        finally:
            if not self._closed:
                self.prompt.setEnabled(True)
                self.prompt.setFocus()
        if not self._closed:
            self._print(text)
            self.commandDone.emit(line)

    def _complete(self, text: str) -> None:
        if self.shell is None:
            return
        words = text.split()
        if words and words[0].lower() in PATH_COMMANDS and " " in text:
            self._run(self._complete_path(self.shell, text), "complete")
        else:
            choices = self.shell.complete(text)
            if " " not in text and "clear".startswith(text.lower()):
                choices = sorted([*choices, "clear"])  # the window's own command
            self._offer(text, choices)

    async def _complete_path(self, shell: Shell, text: str) -> None:
        try:
            choices = await shell.complete_path(text)
        except MemoryUnavailable as error:
            self._print(str(error))
            return
        if not self._closed and self.prompt.text() == text:
            self._offer(text, choices)

    def _offer(self, text: str, choices: list[str]) -> None:
        """One completion replaces the line; several extend it as far as they agree and are
        listed under it."""
        if not choices:
            return
        if len(choices) == 1:
            self.prompt.setText(choices[0])
            return
        common = _common_prefix(choices)
        if len(common) > len(text):
            self.prompt.setText(common)
        head = text.rpartition(" ")[0]
        shown = [c[len(head) :].strip() if head else c for c in choices]
        self._print(f"{PROMPT} {text}\n" + "  ".join(shown))

    def _print(self, text: str) -> None:
        if text:
            self.output.appendPlainText(text)
        bar = self.output.verticalScrollBar()
        bar.setValue(bar.maximum())

    # -- closing ---------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self._tasks.cancel()
        event.accept()

    def _run(self, coro: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        return self._tasks.run(coro, what)


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    size = next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), None)
    return first if size is None else first[:size]
