"""The launcher (start menu): installed apps with their icons and descriptions."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QEvent, QObject, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from llmos.apps.manifest import AppManifest
from llmos.desktop.theme import app_icon_of, icon

ICON_SIZE = 36


class Launcher(QFrame):
    """A popup listing apps; typing filters them, Enter or a click opens one.

    Signals:
        appChosen(str): the id of the app to open.
    """

    appChosen = Signal(str)

    def __init__(self, actions: Iterable[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("Launcher")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.search = QLineEdit(placeholderText="Search apps", clearButtonEnabled=True)
        self.search.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.search.textChanged.connect(self._filter)
        self.search.installEventFilter(self)
        self.apps = QListWidget(objectName="AppList")
        self.apps.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.apps.setUniformItemSizes(False)
        self.apps.setSpacing(2)
        self.apps.itemActivated.connect(self._activated)
        self.apps.itemClicked.connect(self._activated)
        self.empty = QLabel("No app matches.", alignment=Qt.AlignmentFlag.AlignCenter)
        self.empty.hide()

        footer = QHBoxLayout()
        footer.setContentsMargins(0, 0, 0, 0)
        footer.addStretch(1)
        for action in actions:
            button = QToolButton(autoRaise=True)
            button.setDefaultAction(action)
            button.clicked.connect(self.hide)
            footer.addWidget(button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 8)
        layout.addWidget(QLabel("<b>Apps</b>"))
        layout.addWidget(self.search)
        layout.addWidget(self.apps, 1)
        layout.addWidget(self.empty)
        layout.addLayout(footer)
        self.setFixedWidth(400)

    def set_apps(self, apps: Iterable[AppManifest]) -> None:
        self.apps.clear()
        for app in apps:
            item = QListWidgetItem(app_icon_of(app), f"{app.name}\n{app.description}")
            item.setData(Qt.ItemDataRole.UserRole, app.id)
            item.setToolTip(f"<b>{app.name}</b> {app.version}<br>{app.description}")
            item.setSizeHint(QSize(0, ICON_SIZE + 16))
            self.apps.addItem(item)
        self._filter(self.search.text())
        # As tall as the apps need, up to a screenful of them.
        rows = min(max(self.apps.count(), 3), 8)
        list_height = rows * (ICON_SIZE + 16 + 2 * self.apps.spacing()) + 2 * self.apps.frameWidth()
        self.apps.setFixedHeight(list_height)
        self.adjustSize()

    def popup_at(self, bottom_left: QPoint) -> None:
        """Show with the bottom-left corner at ``bottom_left`` (global), focused on search."""
        self.search.clear()
        self.move(bottom_left - QPoint(0, self.height()))
        self.show()
        self.raise_()
        self.search.setFocus()
        self._select_first()

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        shown = 0
        for row in range(self.apps.count()):
            item = self.apps.item(row)
            match = all(word in item.text().lower() for word in words)
            item.setHidden(not match)
            shown += match
        self.empty.setVisible(shown == 0)
        self._select_first()

    def _select_first(self) -> None:
        """Select the best match: a name starting with what was typed, then a name holding
        it, then any shown app ("writ" must pick Writer, not Chat for "writing")."""
        typed = self.search.text().strip().lower()
        shown = [row for row in range(self.apps.count()) if not self.apps.item(row).isHidden()]
        if not shown:
            return

        def rank(row: int) -> int:
            name = self.apps.item(row).text().split("\n", 1)[0].lower()
            if typed and name.startswith(typed):
                return 0
            return 1 if typed and typed in name else 2

        self.apps.setCurrentRow(min(shown, key=lambda row: (rank(row), row)))

    def _activated(self, item: QListWidgetItem) -> None:
        if not self.isVisible():
            return  # a click that also activates (single-click styles): open one window
        app_id = item.data(Qt.ItemDataRole.UserRole)
        self.hide()
        self.appChosen.emit(app_id)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        # Arrow keys and Enter in the search box drive the list.
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
                step = 1 if key == Qt.Key.Key_Down else -1
                row = self.apps.currentRow()
                while 0 <= row + step < self.apps.count():
                    row += step
                    if not self.apps.item(row).isHidden():
                        self.apps.setCurrentRow(row)
                        break
                return True
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                item = self.apps.currentItem()
                if item is not None and not item.isHidden():
                    self._activated(item)
                return True
        return super().eventFilter(watched, event)
