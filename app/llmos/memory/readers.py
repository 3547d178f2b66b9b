"""Text out of files: which formats memory reads, and a plain reason when it cannot.

Plain text, Markdown, reStructuredText, source code, CSV and JSON are decoded here; PDF goes
through pypdf (page by page, so chunks know their pages); HTML, DOCX, PPTX, XLSX and EPUB go
through markitdown's converters, which turn them into Markdown. Everything here is blocking and
runs in the ingestion workers, never on the event loop.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
TEXT_SUFFIXES = frozenset(
    {".txt", ".text", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml",
     ".toml", ".ini", ".cfg", ".conf", ".xml", ".tex", ".org", ".adoc", ".srt", ".vtt", ".log"}
)  # fmt: skip
CODE_SUFFIXES = frozenset(
    {".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".c", ".h", ".cc", ".cpp",
     ".cxx", ".hpp", ".hh", ".java", ".kt", ".kts", ".scala", ".go", ".rs", ".rb", ".php", ".pl",
     ".pm", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".sql", ".swift", ".m", ".mm", ".cs", ".fs",
     ".lua", ".r", ".jl", ".dart", ".zig", ".nim", ".hs", ".ml", ".mli", ".ex", ".exs", ".erl",
     ".clj", ".el", ".lisp", ".scm", ".f90", ".f", ".cmake", ".css", ".scss", ".less", ".vue",
     ".svelte", ".proto", ".graphql", ".tf", ".nix", ".v", ".vhd", ".asm", ".s", ".bat"}
)  # fmt: skip
CODE_NAMES = frozenset(
    {"makefile", "dockerfile", "containerfile", "rakefile", "gemfile", "justfile", "cmakelists.txt",
     "readme", "license", "copying", "authors", "changelog", "notice", "install", "todo"}
)  # fmt: skip
CONVERTED = {
    ".html": ("text/html", "HtmlConverter"),
    ".htm": ("text/html", "HtmlConverter"),
    ".xhtml": ("application/xhtml+xml", "HtmlConverter"),
    ".docx": (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "DocxConverter",
    ),
    ".pptx": (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "PptxConverter",
    ),
    ".xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "XlsxConverter"),
    ".epub": ("application/epub+zip", "EpubConverter"),
}
MEDIA_TYPES = {
    ".md": "text/markdown", ".markdown": "text/markdown", ".rst": "text/x-rst",
    ".csv": "text/csv", ".tsv": "text/tab-separated-values", ".json": "application/json",
    ".jsonl": "application/jsonl", ".yaml": "application/yaml", ".yml": "application/yaml",
    ".toml": "application/toml", ".xml": "application/xml", ".pdf": "application/pdf",
}  # fmt: skip
BINARY_HINTS = {
    ".png": "an image", ".jpg": "an image", ".jpeg": "an image", ".gif": "an image",
    ".webp": "an image", ".bmp": "an image", ".tif": "an image", ".tiff": "an image",
    ".mp3": "audio", ".wav": "audio", ".flac": "audio", ".ogg": "audio", ".m4a": "audio",
    ".mp4": "a video", ".mkv": "a video", ".mov": "a video", ".avi": "a video", ".webm": "a video",
    ".zip": "an archive", ".gz": "an archive", ".tar": "an archive", ".7z": "an archive",
    ".xz": "an archive", ".bz2": "an archive", ".rar": "an archive",
    ".doc": "an old Word file (save it as .docx)", ".ppt": "an old PowerPoint file (save as .pptx)",
    ".xls": "an old Excel file (save it as .xlsx)",
}  # fmt: skip


_SLIDE_MARK = re.compile(r"<!--\s*Slide number:\s*(\d+)\s*-->")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


class UnreadableFile(Exception):
    """The file cannot become memory; ``str(error)`` is the reason in plain words."""


@dataclass(slots=True)
class Extracted:
    """A file's text, ready to be chunked."""

    text: str
    media_type: str
    title: str
    structure: str
    """``markdown`` (headings give positions), ``lines`` (line ranges) or ``pages`` (PDF)."""
    page_starts: list[int] = field(default_factory=list)
    """For ``pages``: the character offset where each page's text starts."""


def extract(path: Path, data: bytes) -> Extracted:
    """The text of ``path``, whose bytes are ``data``. Raises :class:`UnreadableFile`."""
    suffix = path.suffix.lower()
    if not data:
        raise UnreadableFile("the file is empty")
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        return _pdf(path, data)
    if suffix in CONVERTED:
        return _converted(path, data, suffix)
    if suffix in BINARY_HINTS:
        raise UnreadableFile(f"it is {BINARY_HINTS[suffix]}, not a document memory can read")
    text = decode_text(data)
    if suffix in MARKDOWN_SUFFIXES:
        return _finish(text, "text/markdown", path, "markdown")
    if suffix in TEXT_SUFFIXES or suffix in CODE_SUFFIXES or path.name.lower() in CODE_NAMES:
        media = MEDIA_TYPES.get(
            suffix, "text/x-source" if suffix in CODE_SUFFIXES else "text/plain"
        )
        return _finish(text, media, path, "lines")
    # An unknown suffix that decodes cleanly is text (dotfiles, READMEs without suffix, .nfo).
    return _finish(text, "text/plain", path, "lines")


def decode_text(data: bytes) -> str:
    """``data`` as text: UTF-8 (with or without BOM), UTF-16 with BOM, else a detected charset."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise UnreadableFile("the text is not valid UTF-16") from None
    if b"\x00" in data[:8192]:
        raise UnreadableFile("it is a binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(data[: 1 << 20]))
    if not matches or matches[0].chaos > 0.2:
        raise UnreadableFile("the text is in no encoding memory can recognise (not UTF-8)")
    best = matches[0]
    # Short texts often fit several code pages equally well; Windows-1252 (Western Europe)
    # is by far the likeliest of them, so it wins ties.
    tied = [m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    encoding = "cp1252" if "cp1252" in tied else best.encoding
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise UnreadableFile(f"the text does not decode as {encoding}") from None


def _finish(text: str, media_type: str, path: Path, structure: str, title: str = "") -> Extracted:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if not text.strip():
        raise UnreadableFile("it contains no text")
    return Extracted(text, media_type, title.strip() or _title(text, path, structure), structure)


def _title(text: str, path: Path, structure: str) -> str:
    if structure == "markdown":
        for line in text.splitlines()[:50]:
            if line.startswith("# "):
                return line[2:].strip()[:200]
    return path.name


def _pdf(path: Path, data: bytes) -> Extracted:
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    # pypdf logs every oddity of real-world PDFs as a warning; the result says what matters.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("the PDF is encrypted (open it, save an unprotected copy)")
        texts = [page.extract_text() or "" for page in reader.pages]
        metadata: Any = reader.metadata or {}
        title = str(metadata.get("/Title") or "")
    except UnreadableFile:
        raise
    except FileNotDecryptedError:
        raise UnreadableFile("the PDF is encrypted (open it, save an unprotected copy)") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        raise UnreadableFile(f"the PDF is damaged ({_short(error)})") from None
    except RecursionError:
        raise UnreadableFile("the PDF is damaged (its structure loops)") from None
    starts, parts, offset = [], [], 0
    for text in texts:
        text = text.replace("\x00", "")
        starts.append(offset)
        parts.append(text)
        offset += len(text) + 2
    full = "\n\n".join(parts)
    if not full.strip():
        raise UnreadableFile("the PDF has no text layer (scanned pages need OCR first)")
    title = title.strip() if title.strip() and len(title) < 200 else path.name
    return Extracted(full, "application/pdf", title, "pages", starts)


def _converted(path: Path, data: bytes, suffix: str) -> Extracted:
    import markitdown
    from markitdown import converters

    media_type, converter_name = CONVERTED[suffix]
    converter = getattr(converters, converter_name)()
    info = markitdown.StreamInfo(extension=suffix, mimetype=media_type, filename=path.name)
    kind = suffix.lstrip(".").upper()
    try:
        if converter_name == "HtmlConverter":
            result = converter.convert_string(decode_text(data))
        else:
            result = converter.convert(io.BytesIO(data), info)
    except UnreadableFile:
        raise
    except Exception as error:
        # Office files are zip archives of XML; a damaged one fails deep inside its reader with
        # any of a dozen exception types. The reason names the format and the library's words.
        reason = f"the {kind} file is damaged or not really {kind} ({_short(error)})"
        raise UnreadableFile(reason) from None
    # markitdown marks slides with HTML comments; keep the slide number as text, drop the rest.
    text = _SLIDE_MARK.sub(r"(slide \1)", result.markdown or "")
    text = _COMMENT.sub("", text)
    return _finish(text, media_type, path, "markdown", result.title or "")


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:160]
