"""Get the Milvus 2.4.x docs (download once, cache, validate) and cut them into passages.

Two chunkers: `naive_split`, the tutorial's `text.split("# ")` kept as the teaching baseline, and
`markdown_chunks`, which keeps each question heading with its answer and drops the noise.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from helpers.config import DATA_DIR, Settings, get_settings
from helpers.passage import Passage, stable_id

ARCHIVE_NAME = "milvus_docs_2.4.x_en.zip"
FAQ_PREFIX = "en/faq/"
SAMPLE_DIR = DATA_DIR / "sample_faq"
CORPORA = ("milvus-faq", "sample")
CHUNKERS = ("markdown", "naive")
BOILERPLATE_TITLES = {"still have questions?"}
STALE_PART_S = 600  # a `.part` download untouched this long was left by a killed process


class DataError(RuntimeError):
    """The corpus could not be read; the message says why and what to do."""


@dataclass(frozen=True)
class Document:
    """One markdown file: where it came from and its text."""

    source: str
    text: str


@dataclass(frozen=True)
class Corpus:
    """A named list of documents plus a line that says where they came from."""

    name: str
    documents: list[Document]
    origin: str


# --- the archive ---------------------------------------------------------------------------------


def validate_archive(path: Path) -> int:
    """Check that `path` is an intact docs archive with FAQ markdown; return the number of FAQ files."""
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not a zip archive (truncated or corrupt download?). Delete it and retry.")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path} is damaged ({exc}). Delete it and download it again.") from None
    if bad is not None:
        raise DataError(
            f"{path} is damaged: member {bad} fails its CRC check. Delete it and download it again."
        )
    faq = [n for n in names if n.startswith(FAQ_PREFIX) and n.endswith(".md")]
    if not faq:
        raise DataError(f"{path} holds no {FAQ_PREFIX}*.md files: it is not the Milvus docs archive.")
    return len(faq)


def download_archive(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Download `url` to `dest` atomically: a temporary file is validated, then renamed into place."""
    import http.client
    import urllib.request

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    size = 0
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                expected = resp.headers.get("Content-Length")
                while block := resp.read(1 << 16):
                    out.write(block)
                    size += len(block)
        except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
            received = size + len(getattr(exc, "partial", b"") or b"")
            raise DataError(
                f"Download of {url} was interrupted after {received} bytes ({type(exc).__name__}); "
                "nothing was saved. Run again to retry, or set MILVUS_DOCS_ZIP to a local copy."
            ) from None
        if expected is not None and size != int(expected):
            raise DataError(
                f"Download of {url} was interrupted after {size} of {expected} bytes; nothing was saved. "
                "Run again to retry, or set MILVUS_DOCS_ZIP to a local copy."
            )
        validate_archive(tmp)
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_parts(dest: Path, older_than_s: float = STALE_PART_S) -> list[Path]:
    """Delete `dest`'s temporary `.part` downloads left by killed processes; return what was removed."""
    removed = []
    for part in dest.parent.glob(f"{dest.name}.*.part"):
        try:
            if time.time() - part.stat().st_mtime > older_than_s:
                part.unlink()
                removed.append(part)
        except FileNotFoundError:  # another process finished or removed it meanwhile
            pass
    return removed


def find_archive(settings: Settings | None = None, download: bool = True) -> tuple[Path | None, str]:
    """Locate the docs archive: `MILVUS_DOCS_ZIP`, else the cache, else a download. Returns (path, why)."""
    settings = settings or get_settings()
    if settings.docs_zip:
        path = Path(settings.docs_zip).expanduser()
        try:
            validate_archive(path)
        except DataError as exc:
            raise DataError(f"MILVUS_DOCS_ZIP points at an unusable file: {exc}") from None
        remember_archive(path, Path(settings.cache_dir) / ARCHIVE_NAME)
        return path, f"MILVUS_DOCS_ZIP={path}"
    cached = Path(settings.cache_dir) / ARCHIVE_NAME
    if cached.exists():
        try:
            validate_archive(cached)
            return cached, f"cache {cached}"
        except DataError as exc:
            warnings.warn(f"Cached archive is unusable and was removed: {exc}", stacklevel=2)
            cached.unlink(missing_ok=True)
    if not download:
        return None, "no MILVUS_DOCS_ZIP and no cached archive (download disabled)"
    remove_stale_parts(cached)
    try:
        return download_archive(settings.docs_url, cached), f"downloaded from {settings.docs_url}"
    except Exception as exc:  # network down, HTTP error, bad content: all mean "not available"
        return None, f"download from {settings.docs_url} failed ({type(exc).__name__}: {exc})"


def remember_archive(path: Path, cached: Path) -> None:
    """Copy a validated MILVUS_DOCS_ZIP into the cache, so later runs without the variable use it too."""
    import shutil

    if cached.is_file() and cached.stat().st_size == path.stat().st_size:
        return
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=cached.name + ".", suffix=".part", dir=cached.parent)
    os.close(fd)
    try:
        shutil.copyfile(path, tmp_name)
        os.replace(tmp_name, cached)  # atomic: a reader never sees half a file
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def read_archive_faq(path: Path) -> list[Document]:
    """Read `en/faq/*.md` from the archive, sorted by name (the tutorial's glob, made deterministic)."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith(FAQ_PREFIX) and n.endswith(".md"))
        return [Document(n, text) for n in names if (text := _decode(zf.read(n), n)) is not None]


def _decode(raw: bytes, name: str) -> str | None:
    """UTF-8 text, or None (with a warning) for binary or non-UTF-8 files."""
    if b"\x00" in raw:
        warnings.warn(f"Skipped {name}: it looks binary, not markdown.", stacklevel=3)
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        warnings.warn(f"Skipped {name}: not UTF-8 ({exc.reason} at byte {exc.start}).", stacklevel=3)
        return None


def read_markdown_dir(folder: Path) -> list[Document]:
    """Read every `*.md` under `folder` (recursively, sorted); non-UTF-8 or binary files are skipped."""
    docs = []
    for path in sorted(folder.rglob("*.md")):
        text = _decode(path.read_bytes(), str(path))
        if text is not None:
            docs.append(Document(path.relative_to(folder).as_posix(), text))
    return docs


def load_corpus(name: str = "milvus-faq", settings: Settings | None = None, download: bool = True) -> Corpus:
    """Load a corpus by name (`milvus-faq`, `sample`) or path (a folder of markdown or a docs zip)."""
    settings = settings or get_settings()
    if name == "sample":
        return Corpus("sample", read_markdown_dir(SAMPLE_DIR), f"project sample corpus {SAMPLE_DIR}")
    if name == "milvus-faq":
        path, why = find_archive(settings, download=download)
        if path is None:
            print(
                "=" * 78 + f"\nWARNING: the Milvus docs archive is not available: {why}.\n"
                "Using the project's SAMPLE corpus (data/sample_faq) instead. To use the real FAQ,\n"
                "connect to the internet or set MILVUS_DOCS_ZIP=/path/to/milvus_docs_2.4.x_en.zip.\n"
                + "="
                * 78,
                file=sys.stderr,
            )
            return load_corpus("sample", settings)
        return Corpus("milvus-faq", read_archive_faq(path), why)
    path = Path(name).expanduser()
    if path.is_dir():
        docs = read_markdown_dir(path)
    elif path.is_file() and zipfile.is_zipfile(path):
        validate_archive(path)
        docs = read_archive_faq(path)
    elif path.exists():
        raise DataError(f"{path} is neither a folder of markdown files nor a docs zip archive.")
    else:
        raise DataError(f"Unknown corpus {name!r}: use {' or '.join(CORPORA)}, or a path to a folder or zip.")
    if not docs:
        raise DataError(f"{path} holds no readable UTF-8 markdown (*.md) files.")
    return Corpus(path.name, docs, f"path {path}")


# --- chunkers ------------------------------------------------------------------------------------


def naive_split(documents: list[Document]) -> list[str]:
    """The tutorial's chunker, verbatim: every file's text split on the string "# "."""
    pieces: list[str] = []
    for doc in documents:
        pieces += doc.text.split("# ")
    return pieces


def naive_chunks(documents: list[Document]) -> list[Passage]:
    """The tutorial's pieces as `Passage`s (blank pieces dropped, since there is nothing to embed)."""
    chunks = []
    for doc in documents:
        for piece in doc.text.split("# "):
            if piece.strip():
                title = piece.strip().splitlines()[0][:200]
                chunks.append(
                    Passage(id=stable_id(doc.source, piece), text=piece, source=doc.source, title=title)
                )
    return _dedupe(chunks)


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_INCLUDE = re.compile(r"\{\{\s*fragments/[^}]*\}\}")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ *(```|~~~)")


def _sections(text: str) -> list[tuple[int, str, list[str]]]:
    """Split markdown into (level, heading, body lines), ignoring '#' lines inside code fences."""
    sections: list[tuple[int, str, list[str]]] = [(0, "", [])]
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _HEADING.match(line)
        if match:
            sections.append((len(match.group(1)), match.group(2).strip(), []))
        else:
            sections[-1][2].append(line)
    return sections


def _clean_body(lines: list[str]) -> str:
    body = "\n".join(lines)
    body = _INCLUDE.sub("", _HTML_COMMENT.sub("", body))
    body = re.sub(r"\n{3,}", "\n\n", body)
    # The troubleshooting page indents whole sections by two spaces; strip a common indent.
    return textwrap.dedent(body).strip()


def markdown_chunks(documents: list[Document], max_chars: int = 2000) -> list[Passage]:
    """Heading-aware chunks: each question heading with its answer, front matter and boilerplate dropped.

    A heading with no text of its own (a section title) becomes part of the title path of the
    sections below it. Sections longer than `max_chars` are split at paragraph boundaries.
    """
    chunks = []
    for doc in documents:
        text = _FRONT_MATTER.sub("", doc.text.replace("\r\n", "\n"), count=1)
        path: dict[int, str] = {}
        for level, heading, lines in _sections(text):
            if level:
                path = {lvl: h for lvl, h in path.items() if lvl < level}
                path[level] = heading
            body = _clean_body(lines)
            if not heading or not body or heading.lower() in BOILERPLATE_TITLES:
                continue
            title = " > ".join(path[lvl] for lvl in sorted(path))
            for part in _split_long(body, max_chars):
                passage = f"{heading}\n\n{part}"
                chunks.append(
                    Passage(id=stable_id(doc.source, passage), text=passage, source=doc.source, title=title)
                )
    return _dedupe(chunks)


def _split_long(body: str, max_chars: int) -> list[str]:
    """Cut a body at blank lines outside code fences so each part stays under `max_chars` if it can."""
    if len(body) <= max_chars:
        return [body]
    paragraphs, current, in_fence = [], [], False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence and current:
            paragraphs.append("\n".join(current))
            current = []
        elif line.strip() or in_fence:
            current.append(line)
    if current:
        paragraphs.append("\n".join(current))
    parts, buf = [], ""
    for para in paragraphs:
        if buf and len(buf) + len(para) + 2 > max_chars:
            parts.append(buf)
            buf = para
        else:
            buf = f"{buf}\n\n{para}" if buf else para
    if buf:
        parts.append(buf)
    return parts


def _dedupe(chunks: list[Passage]) -> list[Passage]:
    """Drop exact repeats (same source and text give the same id), keeping first occurrences."""
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]


def chunk_documents(documents: list[Document], chunker: str = "markdown") -> list[Passage]:
    """Run the named chunker (`markdown` or `naive`)."""
    if chunker == "markdown":
        return markdown_chunks(documents)
    if chunker == "naive":
        return naive_chunks(documents)
    raise ValueError(f"Unknown chunker {chunker!r}: use {' or '.join(CHUNKERS)}.")


__all__ = [
    "Corpus",
    "DataError",
    "Document",
    "Passage",
    "chunk_documents",
    "find_archive",
    "load_corpus",
    "markdown_chunks",
    "naive_chunks",
    "naive_split",
    "validate_archive",
]
