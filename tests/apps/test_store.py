"""Installing and removing user apps (the App Store's operations) and `llmos apps`."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.apps import store
from llmos.apps.manifest import ManifestError
from llmos.apps.registry import AppNotFound, AppRegistry
from llmos.cli import main

NOTES_APP = """id = "notes"
name = "Notes"
version = "1.0.0"
author = "Ada"
description = "Keeps notes."
system_prompt = "You keep notes."

[permissions]
syscalls = ["memory.note", "clock"]
"""


def app_folder(tmp_path: Path, body: str = NOTES_APP, name: str = "notes-src") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "app.toml").write_text(body, encoding="utf-8")
    (folder / "notes.svg").write_text("<svg/>", encoding="utf-8")
    return folder


def test_an_app_folder_is_installed_with_its_resources_and_then_removed(tmp_path):
    data = tmp_path / "data"
    candidate = store.inspect(app_folder(tmp_path), data)
    assert candidate.manifest.permissions.syscalls == ("memory.note", "clock")
    assert candidate.replaces is None
    installed = store.install(candidate, data)
    assert installed.source == data / "apps" / "notes" / "app.toml"
    assert (data / "apps" / "notes" / "notes.svg").is_file()
    assert AppRegistry.default(data).get("notes").name == "Notes"
    assert store.remove("notes", data).id == "notes"
    with pytest.raises(AppNotFound):
        AppRegistry.default(data).get("notes")


def test_installing_again_updates_and_a_failed_install_keeps_the_old_version(tmp_path):
    data = tmp_path / "data"
    store.install(store.inspect(app_folder(tmp_path), data), data)
    newer = app_folder(tmp_path, NOTES_APP.replace('"1.0.0"', '"1.1.0"'), "newer")
    candidate = store.inspect(newer, data)
    assert candidate.replaces is not None and candidate.replaces.version == "1.0.0"
    store.install(candidate, data)
    assert AppRegistry.default(data).get("notes").version == "1.1.0"
    # The source broke after it was inspected: nothing changes.
    (newer / "app.toml").write_text("id = ", encoding="utf-8")
    with pytest.raises(store.AppStoreError, match="could not be installed"):
        store.install(candidate, data)
    assert AppRegistry.default(data).get("notes").version == "1.1.0"
    assert [p.name for p in (data / "apps").iterdir()] == ["notes"]


def test_a_manifest_file_alone_installs(tmp_path):
    data = tmp_path / "data"
    manifest = tmp_path / "weather.toml"
    manifest.write_text('id = "weather"\nname = "Weather"\n', encoding="utf-8")
    store.install(store.inspect(manifest, data), data)
    assert AppRegistry.default(data).get("weather").name == "Weather"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (
            'id = "x"\nname = "X"\n[permissions]\nsyscalls = ["root.shell"]\n',
            r"permissions\.syscalls.*unknown syscall 'root.shell'",
        ),
        ('id = "Bad Id"\nname = "X"\n', "id"),
        ("id = ", "not valid TOML"),
    ],
)
def test_an_invalid_manifest_is_refused_naming_the_field(tmp_path, body, match):
    with pytest.raises(ManifestError, match=match):
        store.inspect(app_folder(tmp_path, body), tmp_path / "data")


def test_built_in_apps_cannot_be_replaced_or_removed(tmp_path):
    with pytest.raises(store.AppStoreError, match="built-in"):
        store.inspect(app_folder(tmp_path, 'id = "chat"\nname = "Mine"\n'), tmp_path / "data")
    with pytest.raises(store.AppStoreError, match="built-in"):
        store.remove("chat", tmp_path / "data")
    with pytest.raises(store.AppStoreError, match=r"no app\.toml"):
        store.inspect(tmp_path, tmp_path / "data")


def test_a_half_finished_install_is_not_an_app(tmp_path):
    hidden = tmp_path / "apps" / ".notes-x1y2"
    hidden.mkdir(parents=True)
    (hidden / "app.toml").write_text(NOTES_APP, encoding="utf-8")
    assert "notes" not in [app.id for app in AppRegistry([tmp_path / "apps"])]


def test_llmos_apps_install_shows_the_permissions_and_needs_consent(tmp_path, capsys):
    folder = app_folder(tmp_path)
    code = main(["apps", "install", str(folder)])  # no terminal to ask on: not installed
    out, err = capsys.readouterr()
    assert code == 1 and "pass --yes" in err
    assert "It asks to:" in out and "memory.note: save notes to long-term memory" in out
    assert "clock: read the date and time" in out
    assert main(["apps", "install", str(folder), "--yes"]) == 0
    out, _ = capsys.readouterr()
    assert "Installed Notes 1.0.0" in out
    assert main(["apps"]) == 0
    out, _ = capsys.readouterr()
    row = next(line for line in out.splitlines() if line.startswith("notes"))
    assert "user" in row and "memory.note, clock" in row
    assert main(["apps", "rm", "notes", "-y"]) == 0
    assert "Removed Notes." in capsys.readouterr().out


def test_llmos_apps_errors_are_plain_sentences(tmp_path, capsys):
    assert main(["apps", "rm", "chat", "-y"]) == 1
    assert "built-in app and cannot be removed" in capsys.readouterr().err
    assert main(["apps", "rm", "nope", "-y"]) == 1
    assert "There is no app called 'nope'" in capsys.readouterr().err
    bad = app_folder(tmp_path, 'id = "x"\nname = "X"\n[model]\ncontext = "huge"\n')
    assert main(["apps", "install", str(bad), "-y"]) == 1
    err = capsys.readouterr().err
    assert "model.context" in err and "Traceback" not in err


def test_apps_can_be_turned_off_and_on_again(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["apps", "disable", "coder", "--data-dir", str(data)]) == 0
    assert "Coder is disabled." in capsys.readouterr().out
    registry = AppRegistry.default(data)
    assert "coder" not in [app.id for app in registry]  # not offered or started...
    assert "coder" in [app.id for app in registry.everything()]  # ...but still listed
    with pytest.raises(AppNotFound, match=r"Coder is disabled\. Enable it"):
        registry.get("coder")
    assert main(["apps", "--data-dir", str(data)]) == 0
    assert "built-in, disabled" in capsys.readouterr().out
    assert main(["run", "coder", "--prompt", "hi", "--data-dir", str(data)]) == 1
    assert "llmos apps enable coder" in capsys.readouterr().err
    assert main(["apps", "enable", "coder", "--data-dir", str(data)]) == 0
    assert AppRegistry.default(data).get("coder").name == "Coder"
    (data / "apps" / "disabled.json").write_text("{broken", encoding="utf-8")
    assert len(AppRegistry.default(data)) == len(AppRegistry.default(tmp_path / "fresh"))


def test_a_disabled_user_app_can_be_removed_and_comes_back_enabled(tmp_path):
    data = tmp_path / "data"
    store.install(store.inspect(app_folder(tmp_path), data), data)
    store.set_enabled("notes", data, False)
    store.remove("notes", data)
    store.install(store.inspect(app_folder(tmp_path, name="again"), data), data)
    assert AppRegistry.default(data).get("notes").name == "Notes"
