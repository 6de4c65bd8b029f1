"""OpenAI-compatible HTTP endpoints: one client recipe and one way to explain their failures.

Used for the chat model (`generate`) and for served embedding and reranking models (`remote`). The
`openai` client does the retrying: exponential back-off on 429, 5xx, time-outs and lost connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served, and the variables that configure it (named in error messages)."""

    what: str  # "LLM endpoint", "embedding server", "rerank server"
    base_url: str  # "" means api.openai.com
    model: str
    timeout_s: float
    max_retries: int
    url_var: str
    key_var: str
    model_var: str
    api_key: str = field(default="", repr=False)

    @property
    def where(self) -> str:
        """The server, for messages."""
        return self.base_url or "api.openai.com"

    def client(self):
        """An `openai.OpenAI` client with bounded retries and a timeout."""
        from openai import OpenAI

        return OpenAI(
            # Local servers (vLLM, TEI, Infinity, Ollama) accept any key; the client insists on one.
            api_key=self.api_key or "not-needed",
            base_url=self.base_url or None,
            max_retries=self.max_retries,
            timeout=self.timeout_s,
        )

    def explain(self, exc: Exception) -> str:
        """One line on what went wrong and what to do; never contains the key."""
        import openai

        n = self.max_retries + 1
        tries = f"{n} attempt" if n == 1 else f"{n} attempts"
        head = f"The {self.what} {self.where}"
        if isinstance(exc, openai.AuthenticationError):
            return f"{head} rejected the API key (401). Check {self.key_var}."
        if isinstance(exc, openai.PermissionDeniedError):
            return f"{head} refused access (403) to model {self.model!r}."
        if isinstance(exc, openai.NotFoundError):
            return (
                f"{head} has no model {self.model!r} or no such route (404). "
                f"Check {self.model_var} and {self.url_var}."
            )
        if isinstance(exc, openai.RateLimitError):
            return f"{head} kept answering 429 (rate limit or quota) after {tries}."
        if isinstance(exc, openai.APITimeoutError):
            return f"{head} did not answer within {self.timeout_s:g} s ({tries})."
        if isinstance(exc, openai.APIConnectionError):
            return (
                f"Could not connect to the {self.what} {self.where} ({tries}). "
                f"Is the server running? Check {self.url_var}."
            )
        if isinstance(exc, openai.APIStatusError):
            if exc.status_code < 500:  # the server says what it refused (e.g. an unknown model name)
                detail = " ".join(str(exc.message).split())[:300]
                return (
                    f"{head} refused the request for model {self.model!r} "
                    f"(HTTP {exc.status_code}: {detail}). Check {self.model_var}."
                )
            return f"{head} answered HTTP {exc.status_code} after {tries}."
        return f"The call to the {self.what} {self.where} failed: {type(exc).__name__}."
