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
    MODEL_HELP,
    TRAINABLE_MODEL_HELP,
    ModelSpec,
    embedded_gguf_path,
    llamacpp_available,
    load_backend,
)

__all__ = [
    "MODEL_HELP",
    "TRAINABLE_MODEL_HELP",
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
