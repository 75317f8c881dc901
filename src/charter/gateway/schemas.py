"""The OpenAI wire format at the edge (requests validated here; responses built as plain dicts
so that unknown fields from newer clients pass through harmlessly)."""

from __future__ import annotations

import time
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, ... are accepted and ignored
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # sampling knobs we do not implement are ignored
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1024)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=1)  # one choice per request
    stop: Union[str, list[str], None] = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)  # OpenAI's range (int64)
    user: str | None = Field(None, max_length=256)

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s][:4]


class SuspendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=200)  # none: every model
    tenant: str | None = Field(None, min_length=1, max_length=200)  # instead: only this tenant's access
    reason: str = Field("suspended by an administrator", max_length=2000)


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=200)
    tenant: str | None = Field(None, min_length=1, max_length=200)


class ViolationReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=4000)


def completion(rid: str, model: str, content: str, finish_reason: str, usage: dict, extra: dict) -> dict:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
        "charter": extra,
    }


def chunk(
    rid: str, model: str, created: int, delta: dict, finish_reason: str | None = None, extra: dict | None = None
) -> dict:
    c = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if extra:
        c["charter"] = extra
    return c


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
