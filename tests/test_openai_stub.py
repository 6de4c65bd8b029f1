"""Tests proving tests/openai_stub.py works with the real openai client."""

from __future__ import annotations

import sys
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openai_stub import OpenAIStub

MESSAGES = [{"role": "user", "content": "How does Milvus store data?"}]


def _client(stub: OpenAIStub, max_retries: int = 0, timeout: float = 5.0) -> openai.OpenAI:
    """Build a real openai client pointed at the stub."""
    return openai.OpenAI(api_key="test-key", base_url=stub.base_url, max_retries=max_retries, timeout=timeout)


def test_non_streaming_returns_reply_and_records_request() -> None:
    """A plain completion returns stub.reply and the request is recorded."""
    with OpenAIStub() as stub:
        resp = _client(stub).chat.completions.create(model="gpt-test", messages=MESSAGES)
        assert resp.choices[0].message.content == stub.reply == "Milvus stores data in segments [1]."
        assert resp.choices[0].message.role == "assistant"
        assert resp.choices[0].finish_reason == "stop"
        assert resp.model == "gpt-test"
        assert resp.usage is not None and resp.usage.total_tokens == (
            resp.usage.prompt_tokens + resp.usage.completion_tokens
        )
        assert len(stub.requests) == 1
        recorded = stub.requests[0]
        assert recorded["json"]["messages"] == MESSAGES
        assert recorded["json"]["model"] == "gpt-test"
        assert recorded["headers"]["authorization"] == "Bearer test-key"


def test_stub_binds_loopback_only() -> None:
    """The base URL points at 127.0.0.1 on a concrete port."""
    with OpenAIStub() as stub:
        assert stub.base_url.startswith("http://127.0.0.1:")
        assert stub.base_url.endswith("/v1")
        assert stub._server is not None and stub._server.server_address[0] == "127.0.0.1"


def test_streaming_chunks_join_to_reply() -> None:
    """Streaming yields several chunks whose content joins to stub.reply."""
    with OpenAIStub() as stub:
        stub.reply = "Segments hold vectors and scalars [2]."
        stream = _client(stub).chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
        chunks = list(stream)
        pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
        assert "".join(pieces) == stub.reply
        assert sum(1 for p in pieces if p) > 1
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert stub.requests[0]["json"]["stream"] is True
