"""Model backends behind one interface: batched chat generation and continuation scoring."""

from charter.backends.base import (
    Backend,
    BackendInfo,
    Conversation,
    Generation,
    Message,
    SamplingConfig,
    ScoreRequest,
)
from charter.backends.spec import (
    ModelSpec,
    embedded_gguf_path,
    llamacpp_available,
    load_backend,
)

__all__ = [
    "Backend",
    "BackendInfo",
    "Conversation",
    "Generation",
    "Message",
    "ModelSpec",
    "SamplingConfig",
    "ScoreRequest",
    "embedded_gguf_path",
    "llamacpp_available",
    "load_backend",
]
