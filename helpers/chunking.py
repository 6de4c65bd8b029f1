"""The corpus and its chunkers (notebook 01): the Milvus 2.4.x docs, downloaded once, cut into passages.

`load_corpus` reads the docs archive's FAQ (or the sample corpus when the archive cannot be had);
`naive_split` is the tutorial's chunker, `markdown_chunks` ours; every stage after passes on `Passage`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import textwrap
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from helpers.config import DATA_DIR, Settings

ARCHIVE_NAME = "milvus_docs_2.4.x_en.zip"
FAQ_PREFIX = "en/faq/"
SAMPLE_DIR = DATA_DIR / "sample_faq"
CORPORA = ("milvus-faq", "sample")
CHUNKERS = ("markdown", "naive")
BOILERPLATE_TITLES = {"still have questions?"}


class DataError(RuntimeError):
    """The corpus could not be read; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)  # keyword-only: a title never lands in the text's place unnoticed
class Passage:
    """A passage: chunked (id, text, source, title), retrieved (`score`), reranked (`rerank_score`)."""

    id: str
    text: str
    source: str = ""
    title: str = ""
    score: float | None = None  # under the retrieval that found it: cosine, BM25 or RRF
    rerank_score: float | None = None  # the reranker's P("yes")


def stable_id(source: str, text: str) -> str:
    """A 16-hex-digit id derived from the passage's source and content (same input, same id)."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:16]


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


def validate_archive(path: Path) -> int:
    """Check that `path` is an intact docs archive with FAQ markdown; return the number of FAQ files."""
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    again = "Delete it and download it again."
    try:
        with zipfile.ZipFile(path) as zf:
            bad, names = zf.testzip(), zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{path} is not an intact zip archive ({exc}). {again}") from None
    if bad is not None:
        raise DataError(f"{path} is damaged: member {bad} fails its CRC check. {again}")
    faq = [n for n in names if n.startswith(FAQ_PREFIX) and n.endswith(".md")]
    if not faq:
        raise DataError(f"{path} holds no {FAQ_PREFIX}*.md files: it is not the Milvus docs archive.")
    return len(faq)


def download_archive(url: str, cache_dir: Path, timeout: float = 30.0) -> Path:
    """Download the archive into `cache_dir` with pooch; a download that fails validation is deleted."""
    import pooch
    import requests

    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=False)
    try:  # no known hash (it could not be recorded offline): the zip's own CRCs are checked instead
        path = Path(pooch.retrieve(url, None, ARCHIVE_NAME, cache_dir, downloader=downloader))
    except (requests.RequestException, OSError) as exc:
        raise DataError(
            f"Download of {url} failed ({type(exc).__name__}); nothing was saved. Run again to retry, or set "
            "MILVUS_DOCS_ZIP to a local copy."
        ) from None
    try:
        validate_archive(path)
    except DataError:
        path.unlink(missing_ok=True)
        raise
    return path


def find_archive(settings: Settings, download: bool = True) -> tuple[Path | None, str]:
    """Locate the docs archive: `MILVUS_DOCS_ZIP`, else the cache, else a download. Returns (path, why)."""
    cached = Path(settings.cache_dir) / ARCHIVE_NAME
    if settings.docs_zip:
        path = Path(settings.docs_zip).expanduser()
        try:
            validate_archive(path)
        except DataError as exc:
            raise DataError(f"MILVUS_DOCS_ZIP points at an unusable file: {exc}") from None
        _copy_into_cache(path, cached)
        return path, f"MILVUS_DOCS_ZIP={path}"
    if cached.exists():
        try:
            validate_archive(cached)
            return cached, f"cache {cached}"
        except DataError as exc:
            warnings.warn(f"Cached archive is unusable and was removed: {exc}", stacklevel=2)
            cached.unlink(missing_ok=True)
    if not download:
        return None, "no MILVUS_DOCS_ZIP and no cached archive (download disabled)"
    try:
        return download_archive(settings.docs_url, cached.parent), f"downloaded from {settings.docs_url}"
    except DataError as exc:  # network down, HTTP error, bad content: all mean "not available"
        return None, str(exc)


def _copy_into_cache(path: Path, cached: Path) -> None:
    """Copy a validated MILVUS_DOCS_ZIP into the cache, so later runs without the variable use it too."""
    if cached.is_file() and cached.stat().st_size == path.stat().st_size:
        return
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(path, tmp)
        os.replace(tmp, cached)  # atomic: a reader never sees half a file
    finally:
        tmp.unlink(missing_ok=True)


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


def read_archive_faq(path: Path) -> list[Document]:
    """Read `en/faq/*.md` from the archive, sorted by name (the tutorial's glob, made deterministic)."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith(FAQ_PREFIX) and n.endswith(".md"))
        return [Document(n, text) for n in names if (text := _decode(zf.read(n), n)) is not None]


def read_markdown_dir(folder: Path) -> list[Document]:
    """Read every `*.md` under `folder` (recursively, sorted); non-UTF-8 or binary files are skipped."""
    texts = (
        (p.relative_to(folder).as_posix(), _decode(p.read_bytes(), str(p)))
        for p in sorted(folder.rglob("*.md"))
    )
    return [Document(name, text) for name, text in texts if text is not None]


def load_corpus(name: str, settings: Settings | None = None, download: bool = True) -> Corpus:
    """Load a corpus by name (`milvus-faq`, which needs the settings; `sample`) or path (folder or zip)."""
    if name == "sample":
        return Corpus("sample", read_markdown_dir(SAMPLE_DIR), f"project sample corpus {SAMPLE_DIR}")
    if name == "milvus-faq":
        if settings is None:
            raise ValueError("load_corpus('milvus-faq', settings): the settings say where the archive is.")
        path, why = find_archive(settings, download=download)
        if path is None:
            line = "=" * 78
            print(
                f"{line}\nWARNING: the Milvus docs archive is not available: {why}\n"
                "Using the project's SAMPLE corpus (data/sample_faq) instead. To use the real FAQ,\n"
                f"connect to the internet or set MILVUS_DOCS_ZIP=/path/to/{ARCHIVE_NAME}.\n{line}",
                file=sys.stderr,
            )
            return load_corpus("sample")
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


def naive_split(documents: list[Document]) -> list[str]:
    """The tutorial's chunker, verbatim: every file's text split on the string "# "."""
    pieces: list[str] = []
    for doc in documents:
        pieces += doc.text.split("# ")
    return pieces


def naive_chunks(documents: list[Document]) -> list[Passage]:
    """The tutorial's pieces as `Passage`s (blank pieces dropped, since there is nothing to embed)."""
    pieces = [(doc.source, piece) for doc in documents for piece in naive_split([doc]) if piece.strip()]
    return _dedupe([_passage(source, text, text.strip().splitlines()[0][:200]) for source, text in pieces])


def _passage(source: str, text: str, title: str) -> Passage:
    return Passage(id=stable_id(source, text), text=text, source=source, title=title)


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
    """Each heading with its answer (section titles become a title path; long ones split at paragraphs)."""
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
            chunks += [
                _passage(doc.source, f"{heading}\n\n{part}", title) for part in _split_long(body, max_chars)
            ]
    return _dedupe(chunks)


def _split_long(body: str, max_chars: int) -> list[str]:
    """Cut a body at blank lines outside code fences so each part stays under `max_chars` if it can."""
    if len(body) <= max_chars:
        return [body]
    paragraphs: list[list[str]] = [[]]
    in_fence = False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        if line.strip() or in_fence:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    parts: list[str] = []
    for para in ("\n".join(lines) for lines in paragraphs if lines):
        if parts and len(parts[-1]) + len(para) + 2 <= max_chars:
            parts[-1] += "\n\n" + para
        else:
            parts.append(para)
    return parts


def _dedupe(chunks: list[Passage]) -> list[Passage]:
    """Drop exact repeats (same source and text give the same id), keeping first occurrences."""
    seen: set[str] = set()
    return [c for c in chunks if not (c.id in seen or seen.add(c.id))]


def chunk_documents(documents: list[Document], chunker: str = "markdown") -> list[Passage]:
    """Run the named chunker (`markdown` or `naive`)."""
    if chunker not in CHUNKERS:
        raise ValueError(f"Unknown chunker {chunker!r}: use {' or '.join(CHUNKERS)}.")
    return markdown_chunks(documents) if chunker == "markdown" else naive_chunks(documents)
