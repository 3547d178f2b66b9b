"""App manifests: the built-in chat app, and clear errors for broken manifests."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmos.apps.manifest import AppManifest, ManifestError
from llmos.apps.registry import AppNotFound, AppRegistry
from llmos.resources import resource_path


def test_builtin_chat_app_is_described_as_data():
    registry = AppRegistry([resource_path("apps")])
    chat = registry.get("chat")
    assert chat.name == "Chat"
    assert chat.system_prompt
    assert chat.model.requires == ("completion",)
    assert chat.model.context == 8192
    assert resource_path("icons", chat.icon).is_file()


def make_app(folder: Path, app_id: str, body: str) -> Path:
    path = folder / app_id / "app.toml"
    path.parent.mkdir(parents=True)
    path.write_text(body, encoding="utf-8")
    return path


def test_invalid_manifest_names_the_field(tmp_path):
    path = make_app(tmp_path, "bad", 'id = "bad"\nname = "Bad"\n[model]\ncontext = "huge"\n')
    with pytest.raises(ManifestError, match=r"model\.context"):
        AppManifest.from_toml(path)
    path.write_text('id = "Bad Id"\nname = "x"\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="id"):
        AppManifest.from_toml(path)
    path.write_text('id = "x"\nname = "x"\ncolour = 1\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="colour"):
        AppManifest.from_toml(path)


def test_a_broken_app_is_skipped_not_fatal(tmp_path):
    make_app(tmp_path, "broken", "id = = \n")
    make_app(tmp_path, "notes", 'id = "notes"\nname = "Notes"\n')
    registry = AppRegistry([resource_path("apps"), tmp_path])
    builtin = {path.parent.name for path in resource_path("apps").glob("*/app.toml")}
    assert {"chat", "coder", "librarian", "planner", "vision", "writer"} <= builtin
    assert {app.id for app in registry} == builtin | {"notes"}
    assert len(registry.errors) == 1 and "broken" in registry.errors[0]
    installed = ", ".join(sorted(builtin | {"notes"}))
    with pytest.raises(AppNotFound, match=f"Installed apps: {installed}"):
        registry.get("nope")


def test_a_user_app_replaces_a_builtin_of_the_same_id(tmp_path):
    make_app(tmp_path, "chat", 'id = "chat"\nname = "My Chat"\n')
    assert AppRegistry([resource_path("apps"), tmp_path]).get("chat").name == "My Chat"


async def test_desktop_tools_are_not_agent_processes(tmp_path, make_kernel):
    from llmos.kernel.errors import NotAnAgent

    path = make_app(tmp_path, "console", 'id = "console"\nname = "Console"\nkind = "shell"\n')
    console = AppManifest.from_toml(path)
    assert console.kind == "shell"
    with pytest.raises(NotAnAgent, match="Console is a desktop tool"):
        await make_kernel().spawn(console)
    path.write_text('id = "x"\nname = "X"\nkind = "daemon"\n', encoding="utf-8")
    with pytest.raises(ManifestError, match="kind"):
        AppManifest.from_toml(path)
