"""How the mock provider answers (``MockSettings``) and how one request misbehaves on purpose (``Fault``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DEFAULT_MODELS", "ChatTemplate", "Fault", "MockSettings"]

ChatTemplate = Literal["openai", "llama3"]

DEFAULT_MODELS = ("mock-small", "mock-large", "mock-embed")


class MockSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[str, ...] = Field(DEFAULT_MODELS, description="Listed by GET /v1/models; any name is accepted.")
    chunk_delay_s: float = Field(0.0, ge=0, description="Pause between streamed chunks; 0 streams at full speed.")
    stream_chunks: int | None = Field(
        None, ge=1, description="Exact number of content pieces of a generated answer (default: 20 to 50)."
    )
    min_answer_tokens: int = Field(20, ge=1)
    max_answer_tokens: int = Field(50, ge=1)
    embedding_dim: int = Field(256, ge=1, le=65536)
    api_key: str | None = Field(
        None,
        description="When set, requests must carry `Authorization: Bearer <api_key>` (or, on Anthropic paths, "
        "`x-api-key: <api_key>`).",
    )
    cached_tokens: int | None = Field(
        None,
        ge=0,
        description="When set, usage reports this many cached prompt tokens (capped at the prompt); Anthropic reports "
        "them as `cache_read_input_tokens`, outside `input_tokens`.",
    )
    cache_creation_tokens: int | None = Field(
        None,
        ge=0,
        description="Anthropic only: report this many prompt tokens as `cache_creation_input_tokens` (capped at what "
        "cache reads leave of the prompt), outside `input_tokens`.",
    )
    chat_template: ChatTemplate = Field(
        "openai",
        description="How chat prompts are counted: `openai` (3 tokens a message, 3 for the reply) or `llama3` (as "
        "Llama 3.1's template: a system preamble, 5 tokens a message, tool-calling instructions with tools).",
    )
    keep_requests: int = Field(100, ge=0, description="How many recent requests the stats keep.")
    engine_metrics: bool = Field(
        False,
        description="Serve `GET /metrics` with vLLM's own `vllm:*` series, measured on this mock's chat and Messages "
        "requests, so it stands in for a self-hosted vLLM engine (see `engine_metrics`).",
    )
    max_num_seqs: int = Field(
        256, ge=1, description="With engine metrics: requests one model runs at once; the rest wait (vLLM's limit)."
    )
    kv_cache_tokens: int = Field(
        16384, ge=1, description="With engine metrics: the KV-cache capacity, in tokens, of each model's engine."
    )
    block_size: int = Field(16, ge=1, le=1024, description="With engine metrics: tokens per KV-cache block (vLLM's).")
    prefix_caching: bool = Field(
        True, description="With engine metrics: reuse the KV blocks of a prompt prefix seen before (vLLM's default)."
    )
    prefill_s_per_token: float = Field(
        0.0, ge=0, le=1, description="With engine metrics: prefill time per prompt token not in the prefix cache."
    )
    decode_s_per_token: float = Field(
        0.0, ge=0, le=10, description="With engine metrics: one decode step, the time per output token."
    )

    @model_validator(mode="after")
    def _answer_range(self) -> MockSettings:
        if self.min_answer_tokens > self.max_answer_tokens:
            raise ValueError("min_answer_tokens must not exceed max_answer_tokens")
        return self


class Fault(BaseModel):
    """One request's misbehaviour; the fields combine (e.g. a delay, then a 503 with ``Retry-After``).

    Errors take the envelope of the API the request was made to (OpenAI, or Anthropic under ``/v1/messages``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int | None = Field(None, ge=400, le=599, description="Answer with this error status and envelope.")
    message: str | None = Field(None, description="Error message; a default per status otherwise.")
    code: str | None = Field(None, description="The OpenAI envelope's `code`; a default per status otherwise.")
    error_type: str | None = Field(
        None,
        description="The envelope's error `type` (e.g. `overloaded_error`); a default per status and API otherwise.",
    )
    retry_after: float | None = Field(None, ge=0, description="Seconds, sent as the `Retry-After` header.")
    delay_s: float = Field(0.0, ge=0, description="Wait before sending the response headers.")
    first_token_delay_s: float = Field(0.0, ge=0, description="Streaming: headers at once, then this wait.")
    chunk_delay_s: float | None = Field(None, ge=0, description="Streaming: overrides the settings' pacing.")
    drop_after_chunks: int | None = Field(
        None, ge=0, description="Streaming: close the connection after this many chunks, without [DONE]."
    )
    stream_error_after_chunks: int | None = Field(
        None,
        ge=0,
        description="Streaming: after this many chunks send an in-stream error (Anthropic: `event: error`, "
        '`overloaded_error` by default; OpenAI: a `data: {"error": ...}` chunk, then [DONE]) and end the stream.',
    )
    omit_usage: bool = Field(False, description="No usage anywhere, even when the request asks for it.")
    off_schema: bool = Field(
        False, description="Answer JSON (structured output, tool arguments) that ignores the request's schemas."
    )
