"""The settings dialog: backend, default model, context size and theme, saved to the config file."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from llmos.config import ENGINES, THEMES, Settings, SettingsError, apply_changes, save_settings
from llmos.desktop.ram_bar import human_bytes
from llmos.desktop.session import DesktopSession, KernelNotRunning
from llmos.drivers.base import DriverError
from llmos.kernel.context import BYTES_PER_TOKEN_SHOWN

log = logging.getLogger(__name__)

DEFAULT_HOST = Settings.__dataclass_fields__["ollama_host"].default
AUTOMATIC = "Automatic (each app picks an installed model)"
ENGINE_NAMES = {
    "auto": "Automatic (Ollama when it runs, else built-in)",
    "ollama": "Ollama",
    "embedded": "Built-in engine (llama.cpp)",
}
THEME_NAMES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


class SettingsDialog(QDialog):
    """Edits the settings; Save writes the config file and emits the new settings.

    Signals:
        saved(object): the new :class:`Settings`, already written to the config file.
    """

    saved = Signal(object)

    def __init__(self, session: DesktopSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("SettingsDialog")
        self.session = session
        settings = session.settings
        self._task: asyncio.Task[None] | None = None

        self.host = QLineEdit(settings.ollama_host)
        self.host.setPlaceholderText(DEFAULT_HOST)
        self.engine = QComboBox()
        for engine in ENGINES:
            self.engine.addItem(ENGINE_NAMES[engine], engine)
        self.engine.setCurrentIndex(ENGINES.index(settings.engine))
        self.model = QComboBox(editable=True)
        self.model.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.model.addItem(AUTOMATIC, "")
        if settings.model:
            self.model.addItem(settings.model, settings.model)
            self.model.setCurrentIndex(1)
        self.models_note = QLabel("Asking the engine for its models...", objectName="Muted")
        self.num_ctx = QSpinBox(minimum=256, maximum=1_048_576, singleStep=1024)
        self.num_ctx.setSuffix(" tokens")
        self.num_ctx.setValue(settings.num_ctx)
        self.num_ctx.valueChanged.connect(self._show_bytes)
        self.ctx_note = QLabel(objectName="Muted")
        self.theme = QComboBox()
        for theme in THEMES:
            self.theme.addItem(THEME_NAMES[theme], theme)
        self.theme.setCurrentIndex(THEMES.index(settings.theme))
        self.error = QLabel(objectName="Error", wordWrap=True)
        self.error.hide()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("Model engine", self.engine)
        form.addRow("Ollama host", self.host)
        form.addRow("Default model", self.model)
        form.addRow("", self.models_note)
        form.addRow("Context RAM per process", self.num_ctx)
        form.addRow("", self.ctx_note)
        form.addRow("Theme", self.theme)
        self.button_box = buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        where = settings.config_file or "the config file"
        layout.addWidget(QLabel(f"Saved to {where}.", objectName="Muted", wordWrap=True))
        layout.addWidget(buttons)
        self._show_bytes(settings.num_ctx)
        self.resize(520, self.sizeHint().height())
        self._initial = self.values()

    def load_models(self) -> None:
        """Fill the model list from the backend, in the background."""
        self._task = asyncio.get_running_loop().create_task(
            self._load_models(), name="llmos-settings-models"
        )

    async def _load_models(self) -> None:
        try:
            async with asyncio.timeout(10):
                models = await self.session.models()
        except (DriverError, KernelNotRunning, TimeoutError) as error:
            why = str(error) or "the engine did not answer in time."
            self.models_note.setText(f"The model list is not available: {why}")
            return
        if self.session.status.engine == "embedded":
            # The built-in engine runs its one model: "Automatic" is that model, and another
            # one is a GGUF file's path typed here.
            self.models_note.setText(
                "The built-in engine runs its own model; type the path of a .gguf file to use "
                "another."
            )
            return
        current = self.model.currentText()
        names = [m.name for m in models if m.can_chat]
        for name in names:
            if self.model.findData(name) < 0:
                self.model.addItem(name, name)
        if current and current != AUTOMATIC:
            # Keep what the user typed while the list loaded.
            found = self.model.findText(current)
            if found >= 0:
                self.model.setCurrentIndex(found)
            else:
                self.model.setEditText(current)
        self.models_note.setText(
            f"{len(names)} chat model{'s' if len(names) != 1 else ''} installed."
            if names
            else "No chat model is installed; pull one with `llmos models pull NAME`."
        )

    def values(self) -> dict[str, Any]:
        """What the dialog shows now."""
        model = "" if self.model.currentText() == AUTOMATIC else self.model.currentText().strip()
        return {
            "ollama_host": self.host.text().strip() or DEFAULT_HOST,
            "engine": self.engine.currentData(),
            "model": model,
            "num_ctx": self.num_ctx.value(),
            "theme": self.theme.currentData(),
        }

    def changes(self) -> dict[str, Any]:
        """Only what the user changed: values that came from a flag or the environment for
        this run must not end up in the config file unasked."""
        return {k: v for k, v in self.values().items() if v != self._initial.get(k)}

    def _save(self) -> None:
        changes = self.changes()
        try:
            settings: Settings = apply_changes(self.session.settings, changes)
            save_settings(changes)
        except SettingsError as error:
            self.error.setText(str(error))
            self.error.show()
            return
        self.saved.emit(settings)
        self.accept()

    def _show_bytes(self, tokens: int) -> None:
        size = human_bytes(tokens * BYTES_PER_TOKEN_SHOWN)
        self.ctx_note.setText(
            f"About {size} of text per process; models cap it at their own length."
        )

    def done(self, result: int) -> None:
        if self._task is not None:
            self._task.cancel()
        super().done(result)
