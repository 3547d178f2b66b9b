"""The App Store as a user drives it: the installed apps, installing from a file or a folder
after seeing the permissions, removing, and manifests that are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from llmos.desktop.app_store import AppStore
from llmos.desktop.desktop_window import DesktopWindow
from tests.desktop.driving import WAIT
from tests.fakes import FakeDriver

MANIFEST = """\
id = "reader"
name = "Reader"
version = "2.1.0"
author = "Ada"
description = "Reads your files aloud."
icon = "reader.svg"

[permissions]
syscalls = ["memory.search", "files.read"]
"""
ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8"/></svg>'
)


@pytest.fixture
def desktop(qtbot, open_desktop) -> DesktopWindow:
    desktop = open_desktop(FakeDriver())
    qtbot.waitUntil(lambda: desktop.session.status.phase == "ready", timeout=WAIT)
    return desktop


@pytest.fixture
def app_folder(tmp_path) -> Path:
    folder = tmp_path / "reader"
    folder.mkdir()
    (folder / "app.toml").write_text(MANIFEST, encoding="utf-8")
    (folder / "reader.svg").write_text(ICON, encoding="utf-8")
    return folder


def open_store(qtbot, desktop: DesktopWindow) -> AppStore:
    desktop.app_store_action.trigger()
    store = desktop.app_store
    assert store is not None
    qtbot.waitUntil(store.isVisible)
    assert not store.isModal()
    return store


def choose(qtbot, store: AppStore, path: Path, *, folder: bool) -> None:
    """Click an install button and pick ``path`` in the file dialog it opens."""
    button = store.install_folder_button if folder else store.install_file_button
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = store.findChild(QFileDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.fileSelected.emit(str(path))
    dialog.close()


def answer(qtbot, store: AppStore, verb: str) -> str:
    """Press ``verb`` (or Cancel) in the confirmation; returns what it said."""
    qtbot.waitUntil(lambda: store.confirmation is not None and store.confirmation.isVisible())
    box = store.confirmation
    text = box.text()
    if verb == "Cancel":
        box.button(QMessageBox.StandardButton.Cancel).click()
    else:
        (button,) = [b for b in box.buttons() if b.text() == verb]
        button.click()
    return text


def test_lists_the_built_in_apps_without_remove(qtbot, desktop):
    store = open_store(qtbot, desktop)
    assert {"chat", "coder", "writer"} <= set(store.cards)
    chat = store.cards["chat"]
    assert "built in" in chat.title.text()
    assert chat.remove_button is None
    assert "search long-term memory" in chat.permissions.text()
    store.close()


def test_installing_a_folder_shows_its_permissions_first(qtbot, desktop, app_folder):
    store = open_store(qtbot, desktop)
    choose(qtbot, store, app_folder, folder=True)
    question = answer(qtbot, store, "Install")
    assert "Reader" in question and "2.1.0" in question
    assert "search long-term memory" in question
    assert "\u26a0 read files on this computer" in question  # sensitive: marked
    assert "asks you before it is used" in question

    qtbot.waitUntil(lambda: "reader" in store.cards, timeout=WAIT)
    card = store.cards["reader"]
    assert "installed by you" in card.title.text()
    assert card.remove_button is not None
    assert store.status.text().startswith("Installed Reader 2.1.0")
    installed = desktop.session.settings.data_dir / "apps" / "reader"
    assert (installed / "reader.svg").is_file()  # the folder came along
    # The launcher and the kernel know it: it can be opened, and processes can start it.
    launcher_ids = {
        desktop.launcher.apps.item(row).data(Qt.ItemDataRole.UserRole)
        for row in range(desktop.launcher.apps.count())
    }
    assert "reader" in launcher_ids
    assert desktop.session.kernel.apps.get("reader").version == "2.1.0"
    store.close()


def test_cancelling_the_confirmation_installs_nothing(qtbot, desktop, app_folder):
    store = open_store(qtbot, desktop)
    choose(qtbot, store, app_folder / "app.toml", folder=False)
    answer(qtbot, store, "Cancel")
    qtbot.waitUntil(lambda: store.status.text() == "Reader was not installed.")
    assert "reader" not in store.cards
    assert not (desktop.session.settings.data_dir / "apps" / "reader").exists()
    store.close()


def test_an_invalid_manifest_is_explained_naming_the_field(qtbot, desktop, tmp_path):
    manifest = tmp_path / "app.toml"
    manifest.write_text(MANIFEST.replace('"files.read"', '"files.write"'), encoding="utf-8")
    store = open_store(qtbot, desktop)
    choose(qtbot, store, manifest, folder=False)
    qtbot.waitUntil(store.banner.isVisible)
    text = store.banner.text.text()
    assert "permissions.syscalls" in text and "files.write" in text
    assert "Traceback" not in text
    assert store.confirmation is None
    assert "reader" not in store.cards
    store.close()


def test_a_built_in_app_cannot_be_replaced(qtbot, desktop, tmp_path):
    manifest = tmp_path / "app.toml"
    manifest.write_text('id = "chat"\nname = "My chat"\n', encoding="utf-8")
    store = open_store(qtbot, desktop)
    choose(qtbot, store, manifest, folder=False)
    qtbot.waitUntil(store.banner.isVisible)
    assert "built-in app and cannot be replaced" in store.banner.text.text()
    store.close()


def test_removing_a_user_app_asks_first(qtbot, desktop, app_folder):
    store = open_store(qtbot, desktop)
    choose(qtbot, store, app_folder, folder=True)
    answer(qtbot, store, "Install")
    qtbot.waitUntil(lambda: "reader" in store.cards, timeout=WAIT)

    store.cards["reader"].remove_button.click()
    qtbot.waitUntil(lambda: store.confirmation is not None)
    assert store.confirmation.windowTitle() == "Remove Reader?"
    answer(qtbot, store, "Cancel")
    qtbot.waitUntil(lambda: store.confirmation is None)
    assert "reader" in store.cards
    assert (desktop.session.settings.data_dir / "apps" / "reader").is_dir()

    store.cards["reader"].remove_button.click()
    answer(qtbot, store, "Remove")
    qtbot.waitUntil(lambda: "reader" not in store.cards, timeout=WAIT)
    assert store.status.text() == "Removed Reader."
    assert not (desktop.session.settings.data_dir / "apps" / "reader").exists()
    desktop.show_launcher()
    qtbot.waitUntil(desktop.launcher.isVisible)
    assert all(
        desktop.launcher.apps.item(row).data(Qt.ItemDataRole.UserRole) != "reader"
        for row in range(desktop.launcher.apps.count())
    )
    desktop.launcher.hide()
    store.close()


def test_disabling_an_app_takes_it_out_of_the_launcher_until_enabled(qtbot, desktop):
    store = open_store(qtbot, desktop)
    qtbot.mouseClick(store.cards["coder"].toggle_button, Qt.MouseButton.LeftButton)
    coder = store.cards["coder"]
    assert "disabled" in coder.title.text() and coder.toggle_button.text() == "Enable"
    assert "coder" not in [app.id for app in desktop.session.kernel.apps]
    assert "coder" not in [app.id for app in desktop.apps]
    qtbot.mouseClick(coder.toggle_button, Qt.MouseButton.LeftButton)
    assert store.cards["coder"].toggle_button.text() == "Disable"
    assert "coder" in [app.id for app in desktop.session.kernel.apps]
    store.close()
