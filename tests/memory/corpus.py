"""Real files of every format memory reads, and broken ones, built by the tests themselves.

Office files come from the libraries users' files come from (openpyxl, python-pptx) or are
assembled as the zip-of-XML they are (DOCX, EPUB); PDFs are real PDF syntax, and the
encrypted one is encrypted by pypdf.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

GOOD = {
    "notes.txt": "alpha plain text",
    "guide.md": "bravo markdown",
    "manual.rst": "charlie restructured",
    "tool.py": "delta python",
    "page.html": "echo hypertext",
    "paper.pdf": "foxtrot portable",
    "letter.docx": "golf wordprocessing",
    "slides.pptx": "hotel presentation",
    "sheet.xlsx": "india spreadsheet",
    "table.csv": "juliet commaseparated",
    "data.json": "kilo javascriptobject",
    "book.epub": "lima electronicbook",
}
"""File name -> a phrase only that file contains (to search for)."""


def pdf_bytes(pages: list[str]) -> bytes:
    """A real PDF with one line of text per page (Helvetica, WinAnsi)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content.decode()}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode())
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode())
    out.write(f"startxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def encrypted_pdf_bytes() -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf_bytes(["secret"]))))
    writer.encrypt(user_password="open sesame", owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(paragraphs: list[str]) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{p}</w:t></w:r></w:p>" for p in paragraphs)
    files = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org'
            '/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.'
            'openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="'
            'application/xml"/><Override PartName="/word/document.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
            'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
            'Target="word/document.xml"/></Relationships>'
        ),
        "word/document.xml": (
            '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.'
            f'openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>'
        ),
    }
    return _zip(files)


def epub_bytes(chapter: str) -> bytes:
    files = {
        "mimetype": "application/epub+zip",
        "META-INF/container.xml": (
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument'
            ':xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="'
            'application/oebps-package+xml"/></rootfiles></container>'
        ),
        "OEBPS/content.opf": (
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
            'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<dc:title>Test Book</dc:title><dc:identifier id="id">test</dc:identifier>'
            '<dc:language>en</dc:language></metadata><manifest><item id="c1" href="c1.xhtml" '
            'media-type="application/xhtml+xml"/></manifest><spine><itemref idref="c1"/></spine>'
            "</package>"
        ),
        "OEBPS/c1.xhtml": (
            '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>One'
            f"</title></head><body><h1>Chapter One</h1><p>{chapter}</p></body></html>"
        ),
    }
    return _zip(files)


def _zip(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def write_good(folder: Path) -> dict[str, str]:
    """One real file per supported format in ``folder``; returns name -> distinctive phrase."""
    import openpyxl
    import pptx

    folder.mkdir(parents=True, exist_ok=True)
    p = GOOD
    (folder / "notes.txt").write_text(f"Plain notes.\n{p['notes.txt']} is here.\n")
    (folder / "guide.md").write_text(
        f"# Guide\n\nIntro.\n\n## Install\n\nRun the {p['guide.md']} installer.\n"
    )
    (folder / "manual.rst").write_text(f"Manual\n======\n\nThe {p['manual.rst']} section.\n")
    (folder / "tool.py").write_text(f'def main():\n    return "{p["tool.py"]}"\n')
    (folder / "page.html").write_text(
        f"<html><head><title>Page</title></head><body><h1>Head</h1><p>{p['page.html']}"
        "</p><script>var hidden = 1;</script></body></html>"
    )
    (folder / "paper.pdf").write_bytes(pdf_bytes(["Cover page", f"The {p['paper.pdf']} page"]))
    (folder / "letter.docx").write_bytes(docx_bytes(["Dear reader,", f"{p['letter.docx']} here."]))
    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = "Slide title"
    slide.placeholders[1].text = p["slides.pptx"]
    deck.save(folder / "slides.pptx")
    book = openpyxl.Workbook()
    book.active.append(["name", "value"])
    book.active.append([p["sheet.xlsx"], 42])
    book.save(folder / "sheet.xlsx")
    (folder / "table.csv").write_text(f"name,value\n{p['table.csv']},1\n")
    (folder / "data.json").write_text(json.dumps({"key": p["data.json"]}))
    (folder / "book.epub").write_bytes(epub_bytes(f"The {p['book.epub']} chapter."))
    return dict(p)


BROKEN = {
    "corrupt.pdf": "the PDF is damaged",
    "locked.pdf": "the PDF is encrypted",
    "binary.txt": "binary",
    "empty.md": "the file is empty",
    "huge.txt": "too large",
    "latin.txt": None,  # Latin-1 text is readable: it must be stored, not refused
    "garbled.txt": "encoding",
    "broken-link.txt": "broken symbolic link",
    "loop-a": "symbolic link loop",
    "fake.docx": "the DOCX file is damaged",
    "picture.png": "an image",
}
"""File name -> words its failure reason contains (None: it must be stored)."""


def write_broken(folder: Path, max_bytes: int) -> dict[str, str | None]:
    """Files memory must refuse, each with its own reason; needs ``max_bytes`` as the limit."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Cat" + b"\x00" * 64)
    (folder / "locked.pdf").write_bytes(encrypted_pdf_bytes())
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (folder / "empty.md").write_bytes(b"")
    (folder / "huge.txt").write_bytes(b"x" * (max_bytes + 1))
    (folder / "latin.txt").write_bytes("Café crème, déjà vu, naïve façade.".encode("latin-1"))
    (folder / "garbled.txt").write_bytes(bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0xFF, 0xFE]) * 50)
    os.symlink(folder / "nowhere.txt", folder / "broken-link.txt")
    os.symlink(folder / "loop-b", folder / "loop-a")
    os.symlink(folder / "loop-a", folder / "loop-b")
    (folder / "fake.docx").write_bytes(b"PK\x03\x04 this is not really a zip archive")
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    expected = dict(BROKEN)
    expected["loop-b"] = "symbolic link loop"
    return expected
