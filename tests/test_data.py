"""Corpus loading, archive validation and download, and both chunkers."""

from __future__ import annotations

import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from helpers.chunking import (
    ARCHIVE_NAME,
    DataError,
    Document,
    chunk_documents,
    download_archive,
    find_archive,
    load_corpus,
    markdown_chunks,
    naive_split,
    stable_id,
    validate_archive,
)

FAQ_MD = """---
id: demo_faq.md
title: Demo FAQ
---

# Demo FAQ

<!-- TOC -->

<!-- /TOC -->

#### How do I install it?

Run this:

```bash
# install the client
pip install pymilvus
```

#### Is there an include?

{{fragments/cpu_support.md}}

#### What does BM25 do?

It scores keyword matches.

#### Still have questions?

Ask on the forum.
"""


# --- the shared archive (skipped without it) -----------------------------------------------------


def test_tutorial_split_gives_72_pieces(archive_zip, base_settings):
    corpus = load_corpus("milvus-faq", base_settings)
    assert corpus.name == "milvus-faq"
    assert [d.source for d in corpus.documents] == [
        "en/faq/operational_faq.md",
        "en/faq/performance_faq.md",
        "en/faq/product_faq.md",
        "en/faq/troubleshooting.md",
    ]
    assert len(naive_split(corpus.documents)) == 72


def test_markdown_chunker_on_the_faq(archive_zip, base_settings):
    docs = load_corpus("milvus-faq", base_settings).documents
    chunks = markdown_chunks(docs)
    assert len(chunks) == 57
    assert len({c.id for c in chunks}) == len(chunks)
    for c in chunks:
        assert not c.text.startswith("---"), "front matter leaked"
        assert "<!--" not in c.text and "{{fragments" not in c.text
        assert not c.title.endswith("Still have questions?")
    questions = [c.text.split("\n", 1)[0] for c in chunks]
    assert "Where does Milvus store data?" in questions
    # A question and its answer stay together.
    where = next(c for c in chunks if c.text.startswith("Where does Milvus store data?"))
    assert "etcd" in where.text and where.source == "en/faq/product_faq.md"
    assert where.title == "Product FAQ > Where does Milvus store data?"


def test_naive_split_breaks_code_comments_markdown_chunker_does_not(archive_zip, base_settings):
    docs = load_corpus("milvus-faq", base_settings).documents
    naive = naive_split(docs)
    # The troubleshooting page has a shell comment "# delete the pvc..." inside a code block.
    assert any(p.startswith("delete the pvc") for p in naive)
    chunks = markdown_chunks(docs)
    assert any("# delete the pvc" in c.text for c in chunks)
    assert not any(c.text.startswith("delete the pvc") for c in chunks)


# --- the project's own sample corpus -------------------------------------------------------------


def test_sample_corpus():
    corpus = load_corpus("sample")
    assert len(corpus.documents) == 3
    chunks = markdown_chunks(corpus.documents)
    assert len(chunks) >= 30
    assert all(c.text.split("\n", 1)[0].endswith("?") for c in chunks)


def test_fallback_to_sample_when_archive_unreachable(base_settings, tmp_path, capsys):
    s = base_settings.with_overrides(
        docs_zip="", cache_dir=str(tmp_path), docs_url="http://127.0.0.1:9/nothing.zip"
    )
    corpus = load_corpus("milvus-faq", s)
    assert corpus.name == "sample"
    assert "SAMPLE corpus" in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a failed download must leave no file behind"


# --- the markdown chunker's rules ----------------------------------------------------------------


def test_markdown_chunker_rules():
    chunks = markdown_chunks([Document("demo_faq.md", FAQ_MD)])
    texts = [c.text for c in chunks]
    # Front matter, the empty page title, the include-only answer and the boilerplate are gone.
    assert [t.split("\n", 1)[0] for t in texts] == ["How do I install it?", "What does BM25 do?"]
    # A '#' line inside a code fence is code, not a heading.
    assert "# install the client" in texts[0]
    assert chunks[0].title == "Demo FAQ > How do I install it?"
    assert chunks[0].source == "demo_faq.md"


def test_ids_are_stable_and_content_derived():
    a = markdown_chunks([Document("demo_faq.md", FAQ_MD)])
    b = markdown_chunks([Document("demo_faq.md", FAQ_MD)])
    assert [c.id for c in a] == [c.id for c in b]
    assert a[0].id == stable_id("demo_faq.md", a[0].text)
    edited = markdown_chunks([Document("demo_faq.md", FAQ_MD.replace("keyword matches", "keywords"))])
    assert edited[0].id == a[0].id and edited[1].id != a[1].id


def test_long_sections_are_split_at_paragraphs():
    body = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(10))
    chunks = markdown_chunks([Document("long.md", f"#### A long question?\n\n{body}\n")], max_chars=800)
    assert len(chunks) > 1
    assert all(len(c.text) <= 800 + len("A long question?\n\n") for c in chunks)
    assert all(c.text.startswith("A long question?") for c in chunks)


def test_unknown_chunker():
    with pytest.raises(ValueError, match="Unknown chunker"):
        chunk_documents([], "sentences")


# --- archive validation and download -------------------------------------------------------------


def _make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_validate_archive(tmp_path):
    good = _make_zip(tmp_path / "good.zip", {"en/faq/a.md": FAQ_MD.encode()})
    assert validate_archive(good) == 1
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"not a zip|damaged"):
        validate_archive(truncated)
    wrong = _make_zip(tmp_path / "wrong.zip", {"readme.txt": b"hi"})
    with pytest.raises(DataError, match="no en/faq"):
        validate_archive(wrong)


def test_bad_docs_zip_setting_is_a_clear_error(tmp_path, base_settings):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="MILVUS_DOCS_ZIP"):
        find_archive(base_settings.with_overrides(docs_zip=str(bad)))


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Files(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_is_atomic_and_validated(file_server, tmp_path):
    root, url = file_server
    _make_zip(root / "docs.zip", {"en/faq/a.md": FAQ_MD.encode()})
    (root / "broken.zip").write_bytes((root / "docs.zip").read_bytes()[:-40])
    good, bad = tmp_path / "good", tmp_path / "bad"
    dest = download_archive(f"{url}/docs.zip", good)
    assert dest == good / ARCHIVE_NAME and validate_archive(dest) == 1
    with pytest.raises(DataError, match=r"damaged|not an intact"):
        download_archive(f"{url}/broken.zip", bad)
    assert not list(bad.iterdir()), "no half or broken file may stay in the cache"
    with pytest.raises(DataError, match=r"Download of .* failed"):
        download_archive(f"{url}/missing.zip", bad)  # a 404
    assert not list(bad.iterdir())


def test_find_archive_downloads_once_then_uses_cache(file_server, tmp_path, base_settings):
    root, url = file_server
    _make_zip(root / "docs.zip", {"en/faq/a.md": FAQ_MD.encode()})
    s = base_settings.with_overrides(docs_zip="", cache_dir=str(tmp_path / "c"), docs_url=f"{url}/docs.zip")
    path, why = find_archive(s)
    assert why.startswith("downloaded")
    (root / "docs.zip").unlink()  # the server no longer has it: the cache must serve
    path2, why2 = find_archive(s)
    assert path2 == path and why2.startswith("cache")


def test_corpus_from_a_folder_skips_bad_files(tmp_path):
    (tmp_path / "good.md").write_text(FAQ_MD, encoding="utf-8")
    (tmp_path / "latin1.md").write_bytes("#### Caf\xe9?\n\nOui.".encode("latin-1"))
    (tmp_path / "binary.md").write_bytes(b"\x00\x01\x02")
    with pytest.warns(UserWarning) as record:
        corpus = load_corpus(str(tmp_path))
    assert [d.source for d in corpus.documents] == ["good.md"]
    messages = " ".join(str(w.message) for w in record)
    assert "latin1.md" in messages and "binary.md" in messages


def test_unknown_corpus_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="Unknown corpus"):
        load_corpus("no-such-corpus")
    with pytest.raises(DataError, match="no readable"):
        load_corpus(str(tmp_path))
